"""The DrugTrace binding: batches, shipments and receipts, dispenses to patient links,
recalls and adverse-event notices (reverts raise :class:`~emrshare.errors.SupplyRefused`)."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.trace_values import (
    AdverseEventReported,
    BatchRegistered,
    BatchState,
    Dispensed,
    Recalled,
    RecallNotice,
    Received,
    ShipmentCancelled,
    ShipmentState,
    ShipmentView,
    Shipped,
)

__all__ = ["DrugTrace"]

_ZERO = bytes(32)


class DrugTrace(Binding):
    """Drug supply traceability: register, ship, confirm, dispense, recall, notify."""

    NAME = "DrugTrace"
    EVENTS = (
        BatchRegistered,
        Shipped,
        Received,
        ShipmentCancelled,
        Dispensed,
        Recalled,
        RecallNotice,
        AdverseEventReported,
    )

    # reads (each at ``block``, default latest)
    def batch(self, batch_id: bytes, *, block: int | None = None) -> BatchState | None:
        """The batch's on-chain state, or ``None`` if no batch has that id."""
        if not self._call("isRegistered", batch_id, block=block)[0]:
            return None
        (b,) = self._call("batchOf", batch_id, block=block)
        return BatchState(
            batch_id=bytes(batch_id),
            manufacturer=normalize_abi_value(b[0]),
            expiry=int(b[1]),
            index=int(b[2]),
            recalled=bool(b[3]),
            quantity=int(b[4]),
            serial_count=int(b[5]),
            serial_root=bytes(b[6]),
        )

    def stock(self, batch_id: bytes, holder: str, *, block: int | None = None) -> int:
        """Units of the batch ``holder`` has in stock."""
        return int(self._call("stockOf", batch_id, holder, block=block)[0])

    def shipment(self, shipment_id: bytes, *, block: int | None = None) -> ShipmentView:
        """A shipment's state (``SupplyRefused`` ``Trace_UnknownShipment`` if none)."""
        (s,) = self._call("shipmentOf", shipment_id, block=block)
        return ShipmentView(
            shipment_id=bytes(shipment_id),
            recipient=normalize_abi_value(s[0]),
            batch_id=bytes(s[1]),
            quantity=int(s[2]),
            state=ShipmentState(int(s[3])),
        )

    def unit_dispensed(self, batch_id: bytes, index: int, *, block: int | None = None) -> bool:
        """Whether the serialized unit at ``index`` was dispensed."""
        return bool(self._call("isUnitDispensed", batch_id, index, block=block)[0])

    def verify_unit(
        self,
        batch_id: bytes,
        index: int,
        serial: str,
        proof: Sequence[bytes],
        *,
        block: int | None = None,
    ) -> bool:
        """Whether ``(index, serial)`` is a unit the manufacturer committed for the batch."""
        return bool(self._call("verifyUnit", batch_id, index, serial, list(proof), block=block)[0])

    def gtin_owner(self, gtin: int, *, block: int | None = None) -> str | None:
        """The manufacturer that first registered ``gtin`` (``None`` if none did)."""
        owner = normalize_abi_value(self._call("gtinOwner", gtin, block=block)[0])
        return None if int(owner, 16) == 0 else owner

    def batch_count(self, *, block: int | None = None) -> int:
        """Number of batches ever registered."""
        return int(self._call("batchCount", block=block)[0])

    # transactions
    def register_batch(
        self,
        gtin: int,
        lot: str,
        expiry: int,
        quantity: int,
        unit: str,
        certificate_digest: bytes,
        serial_root: bytes = _ZERO,
        serial_count: int = 0,
    ) -> Receipt:
        """Register a batch (Manufacturer only); its id is
        ``receipt.event(BatchRegistered).batch_id``."""
        return self._send(
            "registerBatch",
            gtin,
            lot,
            expiry,
            quantity,
            unit,
            certificate_digest,
            serial_root,
            serial_count,
        )

    def ship(
        self,
        recipient: str,
        batch_id: bytes,
        quantity: int,
        waybill_digest: bytes,
        invoice_digest: bytes,
    ) -> Receipt:
        """Ship ``quantity`` units the caller holds to ``recipient``."""
        return self._send("ship", recipient, batch_id, quantity, waybill_digest, invoice_digest)

    def confirm_receipt(self, shipment_id: bytes, quantity: int) -> Receipt:
        """Confirm a shipment to the caller: ``quantity`` units arrived."""
        return self._send("confirmReceipt", shipment_id, quantity)

    def cancel_shipment(self, waybill_digest: bytes) -> Receipt:
        """Take back the caller's unconfirmed shipment with that waybill."""
        return self._send("cancelShipment", waybill_digest)

    def dispense(
        self, batch_id: bytes, quantity: int, link: bytes, prescription_id: bytes = _ZERO
    ) -> Receipt:
        """Dispense units of an unserialized batch to a patient link."""
        return self._send("dispense", batch_id, quantity, link, prescription_id)

    def dispense_unit(
        self,
        batch_id: bytes,
        index: int,
        serial: str,
        proof: Sequence[bytes],
        link: bytes,
        prescription_id: bytes = _ZERO,
    ) -> Receipt:
        """Dispense one serialized unit (with its Merkle proof) to a patient link."""
        return self._send(
            "dispenseUnit", batch_id, index, serial, list(proof), link, prescription_id
        )

    def recall(self, batch_id: bytes, reason_digest: bytes) -> Receipt:
        """Recall a batch (its manufacturer or a regulator)."""
        return self._send("recall", batch_id, reason_digest)

    def notify_recall(self, batch_id: bytes, links: Sequence[bytes]) -> Receipt:
        """Send a recall notice to each link (at most 256 per call)."""
        return self._send("notifyRecall", batch_id, list(links))

    def report_adverse_event(
        self, batch_id: bytes, report_digest: bytes, seriousness: int
    ) -> Receipt:
        """File an adverse-event notice on a batch (a Provider)."""
        return self._send("reportAdverseEvent", batch_id, report_digest, seriousness)
