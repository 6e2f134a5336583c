"""Drug supply traceability for the member facades (issue 17): a manufacturer registers a
batch, each party ships with a waybill and a salted invoice and its recipient confirms,
a pharmacy dispenses to a patient's blinded link, the manufacturer or a regulator recalls
and notifies, a clinician reports an adverse event, and the regulator runs the
two-invoice check and traces a dispense back to the factory.

``member.drugs`` is a :class:`MemberDrugs`. The shipper keeps each shipment's invoice and
waybill in plaintext under ``state_dir/drugs/shipments/`` (0600): that is what it hands
the regulator (:meth:`MemberDrugs.invoices`). The chain holds only their digests.
:func:`check_pack` (a pack's 2D code against the chain) needs no key at all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from hashlib import sha256
from pathlib import Path

from emrshare._addresses import checksum
from emrshare._files import damaged, private_dir, read_json_object, write_atomically
from emrshare.chain import (
    AdverseEventReported,
    BatchRegistered,
    Contracts,
    Dispensed,
    MemberAdmitted,
    MemberRoleChanged,
    Recalled,
    RecallNotice,
    Received,
    Role,
    ShipmentState,
    link_of,
    prescription_link_of,
    shipment_id_of,
)
from emrshare.errors import (
    ConfigurationError,
    ContractRevert,
    InvalidInput,
    LocalStateError,
    NotFound,
)
from emrshare.fhir import FhirVersion
from emrshare.fhir.adverse_event import AdverseEventDoc, adverse_event_resource
from emrshare.network import Network
from emrshare.roles._common import id32
from emrshare.roles._drug_checks import BatchTrace, PackCheck, batch_trace, check_pack, read_ledger
from emrshare.roles._prescriptions import WriteRecord
from emrshare.trace import (
    DispenseTrace,
    Invoice,
    Ledger,
    SerialList,
    TwoInvoiceReport,
    Waybill,
    gtin14,
    trace_dispenses,
    two_invoice_check,
    validate_lot,
)
from emrshare.types import Address, RecordId

__all__ = [
    "ADVERSE_CATEGORY",
    "MAX_LINKS",
    "AdverseReport",
    "MemberDrugs",
    "RegisteredBatch",
    "SentShipment",
]

#: The category adverse-event reports are written in (where FHIR files AdverseEvent).
ADVERSE_CATEGORY = "allergies"

#: Most links one recall notice transaction names (``DrugTrace.MAX_LINKS``).
MAX_LINKS = 256


@dataclass(frozen=True, slots=True)
class RegisteredBatch:
    """A batch just registered (``serials``: its serial list, to hand to pharmacies)."""

    batch_id: bytes
    gtin: str
    lot: str
    expiry: int
    quantity: int
    serials: SerialList | None


@dataclass(frozen=True, slots=True)
class AdverseReport:
    """An adverse-event report just filed: the patient's record and the on-chain notice."""

    record_id: RecordId
    batch_id: bytes
    digest: bytes
    seriousness: int


@dataclass(frozen=True, slots=True)
class SentShipment:
    """A shipment just sent, with the plaintexts its sender keeps (``path``)."""

    shipment_id: bytes
    batch_id: bytes
    recipient: Address
    quantity: int
    invoice: Invoice
    waybill: Waybill
    path: Path


def _expiry_seconds(expiry: date | int) -> int:
    if isinstance(expiry, int):
        return expiry
    # A pack is usable through its expiry day (GS1 AI 17), to the end of it in UTC.
    return int(datetime.combine(expiry, time.max, UTC).timestamp())


class MemberDrugs:
    """A member's side of drug traceability (``member.drugs``).

    Example::

        b = maker.drugs.register_batch("09506000134352", "L24A", expiry=date(2028, 6, 30),
                                       quantity=1000, certificate=release_pdf)
        s = maker.drugs.ship(distributor, b.batch_id, 600, invoice_number="INV-1",
                             amount_minor=1_200_000, tax_id="91310000MA1K")
        distributor_member.drugs.receive(s.shipment_id)
        report = regulator.drugs.two_invoice_report()
    """

    def __init__(self, network: Network, signed: Contracts, state_dir: Path) -> None:
        self.network = network
        self._signed = signed.drug_trace
        self._read = network.contracts.drug_trace
        self.address = Address(signed.drug_trace.client.address or "")
        self._dir = Path(state_dir) / "drugs" / "shipments"
        #: How this member writes a record; set by a :class:`~emrshare.roles.Provider`.
        self.write: WriteRecord | None = None

    # -- the manufacturer ---------------------------------------------------------------

    def register_batch(
        self,
        gtin: str,
        lot: str,
        *,
        expiry: date | int,
        quantity: int,
        certificate: bytes,
        unit: str = "pack",
        serials: SerialList | Iterable[str] | None = None,
    ) -> RegisteredBatch:
        """Register a production batch (a Manufacturer): ``certificate`` is the batch
        release certificate (its sha256 goes on chain); ``serials``, one per unit (or a
        :class:`~emrshare.trace.SerialList` already made of them), makes the batch
        serialized (their Merkle root goes on chain)."""
        g = gtin14(gtin)
        validate_lot(lot)
        if not certificate:
            raise InvalidInput("give the batch release certificate (its digest goes on chain)")
        listed = serials if isinstance(serials, SerialList | None) else SerialList.of(serials)
        if listed is not None and len(listed) != quantity:
            raise InvalidInput(
                f"a serialized batch lists one serial per unit: {len(listed)} serials "
                f"for {quantity} units"
            )
        seconds = _expiry_seconds(expiry)
        r = self._signed.register_batch(
            g,
            lot,
            seconds,
            quantity,
            unit,
            sha256(certificate).digest(),
            listed.root if listed is not None else bytes(32),
            len(listed) if listed is not None else 0,
        )
        ev = r.event(BatchRegistered)
        return RegisteredBatch(bytes(ev.batch_id), f"{g:014d}", lot, seconds, quantity, listed)

    def recall(self, batch: bytes | str, reason: str) -> bytes:
        """Recall a batch (its manufacturer or a regulator). The reason stays off chain:
        the chain gets ``sha256(salt || reason)`` with a random salt, so a guessed reason
        cannot be confirmed; reason and salt are kept (0600) under
        ``state_dir/drugs/recalls/`` to show whoever should see them. Returns the digest."""
        if not reason.strip():
            raise InvalidInput("give the recall's reason (its digest goes on chain)")
        _utf8(reason, "the recall's reason")
        bid = id32(batch)
        state = self._read.batch(bid)
        if state is not None and state.recalled:
            raise InvalidInput(f"batch 0x{bid.hex()[:12]}… is recalled already")
        salt = os.urandom(32)
        digest = sha256(salt + reason.encode()).digest()
        # One file per attempt, never overwritten: a retried recall whose first transaction
        # landed after all still finds the reason and salt its on-chain digest opens.
        path = private_dir(self._dir.parent / "recalls") / f"{bid.hex()}-{digest.hex()[:16]}.json"
        doc = {"batch": "0x" + bid.hex(), "reason": reason, "salt": "0x" + salt.hex()}
        write_atomically(path, json.dumps(doc, ensure_ascii=False))
        self._signed.recall(bid, digest)
        return digest

    def notify_recall(self, batch: bytes | str) -> int:
        """Send a recall notice to every patient link a recalled batch was dispensed to
        (its manufacturer or a regulator), at most :data:`MAX_LINKS` per transaction, and
        only to links not notified yet. Returns how many notices were sent."""
        bid = id32(batch)
        end = self._read.client.safe_block()
        links = dict.fromkeys(
            bytes(e.link) for e in self._read.events(Dispensed, batch_id=bid, to_block=end)
        )
        for e in self._read.events(RecallNotice, batch_id=bid, to_block=end):
            links.pop(bytes(e.link), None)
        todo = list(links)
        for i in range(0, len(todo), MAX_LINKS):
            self._signed.notify_recall(bid, todo[i : i + MAX_LINKS])
        return len(todo)

    # -- every holder -------------------------------------------------------------------

    def ship(
        self,
        to: str,
        batch: bytes | str,
        quantity: int,
        *,
        invoice_number: str,
        amount_minor: int,
        tax_id: str,
        waybill_number: str | None = None,
        carrier: str = "own transport",
    ) -> SentShipment:
        """Ship units this member holds to ``to``, with the invoice's digest and the
        waybill's on chain; both plaintexts are kept (0600) for the regulator."""
        bid = id32(batch)
        invoice = Invoice.new(invoice_number, amount_minor, tax_id, bid, quantity)
        waybill = Waybill(
            waybill_number or f"WB-{invoice_number}", carrier, self.address, to, bid, quantity
        )
        sid = shipment_id_of(self.address, waybill.digest())
        invoice = invoice.for_shipment(sid)
        path = _save(self._dir, sid, invoice, waybill)  # first: a crash leaves a file, not a loss
        try:
            self._signed.ship(to, bid, quantity, waybill.digest(), invoice.digest())
        except ContractRevert:
            path.unlink(missing_ok=True)  # refused, so never on chain: nothing to keep
            raise
        return SentShipment(sid, bid, Address(to), quantity, invoice, waybill, path)

    def receive(self, shipment: bytes | str, quantity: int | None = None) -> int:
        """Confirm a shipment to this member: ``quantity`` arrived (default: all that was
        shipped). Returns the discrepancy (units short)."""
        sid = id32(shipment)
        shipped = self._read.shipment(sid)
        got = shipped.quantity if quantity is None else quantity
        r = self._signed.confirm_receipt(sid, got)
        return int(r.event(Received).discrepancy)

    def cancel(self, shipment: bytes | str) -> None:
        """Take back a shipment of this member's that was never confirmed."""
        _, waybill = _load(self._dir, id32(shipment))
        self._signed.cancel_shipment(waybill.digest())

    def invoices(self, shipments: Sequence[bytes] | None = None) -> list[Invoice]:
        """The invoice plaintexts this member keeps (all, or those of ``shipments``), to
        hand to the regulator."""
        if shipments is None:
            if not self._dir.is_dir():
                return []
            names = (p.stem for p in sorted(self._dir.glob("*.json")))
            shipments = [bytes.fromhex(n) for n in names if re.fullmatch(r"[0-9a-f]{64}", n)]
        return [_load(self._dir, bytes(s))[0] for s in shipments]

    # -- the pharmacy -------------------------------------------------------------------

    def dispense(
        self,
        batch: bytes | str,
        quantity: int,
        link: bytes,
        *,
        prescription_id: bytes | None = None,
    ) -> None:
        """Dispense units of an unserialized batch to a patient's link (the patient shows
        it: ``patient.drugs.new_link()``), naming the prescription filled if any (blinded
        by the link on chain: :func:`~emrshare.chain.prescription_link_of`)."""
        who = _link(link)
        self._signed.dispense(id32(batch), quantity, who, _rx(who, prescription_id))

    def dispense_unit(
        self,
        batch: bytes | str,
        serials: SerialList,
        serial: str,
        link: bytes,
        *,
        prescription_id: bytes | None = None,
    ) -> int:
        """Dispense one serialized pack to a patient's link; returns its unit index."""
        index = serials.index_of(serial)
        if index is None:
            raise InvalidInput(f"serial {serial!r} is not in this batch's list: do not dispense")
        who = _link(link)
        self._signed.dispense_unit(
            id32(batch), index, serial, serials.proof(index), who, _rx(who, prescription_id)
        )
        return index

    def check(self, code: str, *, serials: SerialList | None = None) -> PackCheck:
        """A pack's check against the chain (:func:`check_pack`)."""
        return check_pack(self._read, code, serials=serials)

    # -- clinicians ---------------------------------------------------------------------

    def report_adverse_event(
        self, patient: str, batch: bytes | str, *, description: str, seriousness: int
    ) -> AdverseReport:
        """A clinician's report of a reaction suspected of a batch (a Provider the patient
        authorized for :data:`ADVERSE_CATEGORY`): a FHIR ``AdverseEvent`` record in the
        patient's index, then a notice on chain naming the batch and the record's SHA-256,
        never the patient."""
        if self.write is None:
            raise ConfigurationError("only a Provider reports adverse events; open one")
        _utf8(description, "the description")
        bid = id32(batch)
        state = self._read.batch(bid)
        if state is None:
            raise InvalidInput(f"no batch 0x{bid.hex()[:12]}… is registered: check the pack")
        event = self._read.events(BatchRegistered, batch_id=bid)
        registered = next(event, None)
        doc = AdverseEventDoc(
            patient=checksum(patient),
            recorder=self.address,
            batch_id=bid,
            gtin="?" if registered is None else f"{registered.gtin:014d}",
            lot="?" if registered is None else registered.lot,
            description=description,
            seriousness=seriousness,
            recorded=self.network.chain_time(),
        )
        data = adverse_event_resource(doc)
        record = self.write(doc.patient, ADVERSE_CATEGORY, data, FhirVersion.R4.media_type)
        digest = sha256(data).digest()
        self._signed.report_adverse_event(bid, digest, seriousness)
        return AdverseReport(record, bid, digest, seriousness)

    # -- the regulator ------------------------------------------------------------------

    def ledger(self, *, from_block: int | None = None, to_block: int | None = None) -> Ledger:
        """The DrugTrace events, all read up to one block (:func:`read_ledger`)."""
        return read_ledger(self._read, from_block=from_block, to_block=to_block)

    def trace_batch(self, batch: bytes | str) -> BatchTrace:
        """Where every unit of a batch went (:func:`~emrshare.roles._drug_checks.batch_trace`)."""
        return batch_trace(self._read, id32(batch))

    def distributors(self) -> list[Address]:
        """Every account that was ever admitted as, or changed into, a distributor (the one
        intermediary a route may have): one removed since still counts for its history."""
        registry = self.network.contracts.registry
        admitted = registry.events(MemberAdmitted)
        changed = registry.events(MemberRoleChanged)
        found = {a.account for a in admitted if a.role is Role.DISTRIBUTOR}
        found |= {c.account for c in changed if Role.DISTRIBUTOR in (c.old_role, c.new_role)}
        return sorted(Address(a) for a in found)

    def two_invoice_report(
        self, invoices: Iterable[Invoice] | None = None, *, from_block: int = 0
    ) -> TwoInvoiceReport:
        """The two-invoice check (:func:`~emrshare.trace.two_invoice_check`) of every
        hospital receipt from ``from_block`` on, each route replayed from the deployment;
        with ``invoices`` (plaintexts the parties handed in) checked against their digests.

        A hospital receipt is one by any account that is not a distributor now: only
        pharmacies (and providers with the pharmacy capability) can confirm a receipt
        besides distributors, so a pharmacy removed since is still audited."""
        ledger = self.ledger()
        distributors = self.distributors()
        known = {d.lower() for d in distributors}
        hospitals = {r.recipient for r in ledger.received if r.recipient.lower() not in known}
        return two_invoice_check(
            ledger, hospitals, invoices, distributors=distributors, from_block=from_block
        )

    def trace_dispense(self, secrets: Iterable[bytes]) -> list[DispenseTrace]:
        """The dispenses to the links of these secrets (a patient reveals them:
        ``patient.drugs.reveal(...)``), each traced back to the factory."""
        links = [link_of(bytes(s)) for s in secrets]
        return trace_dispenses(self.ledger(), links=links)

    def adverse_events(self, batch: bytes | str | None = None) -> list[AdverseEventReported]:
        """Adverse-event notices (of one batch, or all)."""
        if batch is None:
            return list(self._read.events(AdverseEventReported))
        return list(self._read.events(AdverseEventReported, batch_id=id32(batch)))

    def recalls(self) -> list[Recalled]:
        """Every recall, oldest first."""
        return list(self._read.events(Recalled))

    def shipment_state(self, shipment: bytes | str) -> ShipmentState:
        return self._read.shipment(id32(shipment)).state


def _save(folder: Path, sid: bytes, invoice: Invoice, waybill: Waybill) -> Path:
    """Keep a shipment's invoice and waybill (0600) in ``folder``."""
    path = private_dir(folder) / f"{sid.hex()}.json"
    doc = {"invoice": json.loads(invoice.to_json()), "waybill": json.loads(waybill.to_json())}
    try:
        write_atomically(path, json.dumps(doc, indent=2))
    except OSError as exc:
        raise LocalStateError(
            path, f"cannot keep the shipment's invoice in {path}: {exc.strerror}"
        ) from exc
    return path


def _load(folder: Path, sid: bytes) -> tuple[Invoice, Waybill]:
    """A kept shipment's invoice and waybill (``NotFound`` if none)."""
    path = folder / f"{sid.hex()}.json"
    try:
        doc = read_json_object(path, "shipment file")
    except FileNotFoundError:
        raise NotFound(
            f"this member sent no shipment 0x{sid.hex()[:12]}… from this data dir"
        ) from None
    if not isinstance(doc.get("invoice"), dict) or not isinstance(doc.get("waybill"), dict):
        raise damaged(path, "shipment file", "no invoice or no waybill")
    return (
        Invoice.from_json(json.dumps(doc["invoice"])),
        Waybill.from_json(json.dumps(doc["waybill"])),
    )


def _utf8(text: str, what: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid text (a lone surrogate); type it again") from None


def _rx(link: bytes, prescription_id: bytes | None) -> bytes:
    """The dispense's prescription field: blinded by the link (zero for none)."""
    if prescription_id is None:
        return bytes(32)
    return prescription_link_of(link, id32(prescription_id))


def _link(link: bytes) -> bytes:
    if not isinstance(link, bytes) or len(link) != 32 or link == bytes(32):
        raise InvalidInput("a patient link is the 32 bytes the patient shows (drugs link)")
    return link
