"""Reads of drug traceability that need no key: a pack's check against the chain
(:func:`check_pack`, the counterfeit check anyone runs), the DrugTrace events as a
:class:`~emrshare.trace.Ledger` (:func:`read_ledger`), and where every unit of a batch
went (:func:`batch_trace`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from emrshare.chain import (
    BatchRegistered,
    BatchState,
    Dispensed,
    DrugTrace,
    Recalled,
    Received,
    ShipmentCancelled,
    ShipmentState,
    Shipped,
    batch_id_of,
)
from emrshare.chain.events import ChainEvent
from emrshare.errors import InvalidInput, NotFound
from emrshare.trace import (
    Ledger,
    PackCode,
    SerialList,
    epcis_document,
    gtin14,
    parse_pack_code,
    validate_lot,
)

__all__ = [
    "BatchTrace",
    "Holder",
    "Hop",
    "PackCheck",
    "PackStatus",
    "batch_trace",
    "check_pack",
    "epcis_export",
    "read_ledger",
]

E = TypeVar("E", bound=ChainEvent)


class PackStatus(Enum):
    """What the chain says of a pack (:func:`check_pack`)."""

    GENUINE = "genuine"
    UNKNOWN_BATCH = "unknown_batch"  # no manufacturer registered it: counterfeit
    UNKNOWN_SERIAL = "unknown_serial"  # not one of the batch's serials: counterfeit
    RECALLED = "recalled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PackCheck:
    """A pack's check: ``status``, the code read, the batch (``None`` if unknown) and, for
    a serialized pack, whether that unit was dispensed already (a copied code)."""

    status: PackStatus
    code: PackCode
    batch: BatchState | None
    unit_dispensed: bool | None = None

    @property
    def genuine(self) -> bool:
        """Registered (and, if serialized, one of its units); recalled or expired too."""
        return self.status not in (PackStatus.UNKNOWN_BATCH, PackStatus.UNKNOWN_SERIAL)

    @property
    def message(self) -> str:
        return {
            PackStatus.GENUINE: "registered by its manufacturer; not recalled, not expired",
            PackStatus.UNKNOWN_BATCH: "no manufacturer registered this batch: do not use it, "
            "report it to the pharmacy and the regulator",
            PackStatus.UNKNOWN_SERIAL: "this serial is not one of the batch's: do not use it, "
            "report it to the pharmacy and the regulator",
            PackStatus.RECALLED: "the batch is recalled: do not use it; ask your pharmacy",
            PackStatus.EXPIRED: "the batch is past its expiry: do not use it",
        }[self.status]


def check_pack(
    trace: DrugTrace, code: str | PackCode, *, serials: SerialList | None = None
) -> PackCheck:
    """Check a pack against the chain: its code (Digital Link, GS1 element string or the
    scanner's raw form) names a registered batch and, for a serialized batch, a serial of
    the manufacturer's list (``serials``, checked against the registered root)."""
    pack = parse_pack_code(code) if isinstance(code, str) else code
    batch = trace.batch(_batch_id(pack.gtin, pack.lot))
    if batch is None:
        return PackCheck(PackStatus.UNKNOWN_BATCH, pack, None)
    dispensed = None
    if batch.serial_count:
        if pack.serial is None:
            raise InvalidInput("this batch is serialized: scan the pack's code with its serial")
        if serials is None or serials.root != batch.serial_root:
            raise InvalidInput(
                "checking a serial needs the batch's serial list from its manufacturer "
                "(the one whose root is on chain)"
            )
        index = serials.index_of(pack.serial)
        if index is None or not trace.verify_unit(
            batch.batch_id, index, pack.serial, serials.proof(index)
        ):
            return PackCheck(PackStatus.UNKNOWN_SERIAL, pack, batch)
        dispensed = trace.unit_dispensed(batch.batch_id, index)
    if batch.recalled:
        return PackCheck(PackStatus.RECALLED, pack, batch, dispensed)
    if batch.expiry <= trace.client.chain_time():
        return PackCheck(PackStatus.EXPIRED, pack, batch, dispensed)
    return PackCheck(PackStatus.GENUINE, pack, batch, dispensed)


def _batch_id(gtin: str | int, lot: str) -> bytes:
    return batch_id_of(gtin14(gtin), validate_lot(lot))


def read_ledger(
    trace: DrugTrace,
    *,
    from_block: int | None = None,
    to_block: int | None = None,
    batch_id: bytes | None = None,
) -> Ledger:
    """The DrugTrace events from ``from_block`` to ``to_block`` (default: the newest
    block with the client's confirmations, the same one for every kind); with
    ``batch_id``, that batch's only (every event indexes its batch)."""
    end = trace.client.safe_block() if to_block is None else to_block
    only: dict[str, Any] = {} if batch_id is None else {"batch_id": batch_id}

    def ev(cls: type[E]) -> list[E]:
        return list(trace.events(cls, from_block=from_block, to_block=end, **only))

    return Ledger(
        batches=ev(BatchRegistered),
        shipped=ev(Shipped),
        received=ev(Received),
        cancelled=ev(ShipmentCancelled),
        dispensed=ev(Dispensed),
    )


@dataclass(slots=True)
class Holder:
    """One holder of a batch: what it received, shipped on, dispensed (to how many
    patient links) and holds now."""

    account: str
    received: int = 0
    shipped: int = 0
    dispensed: int = 0
    patients: int = 0
    stock: int = 0


@dataclass(frozen=True, slots=True)
class Hop:
    """One shipment of the batch: ``received`` is ``None`` while in transit, and for a
    cancelled one."""

    shipment_id: bytes
    sender: str
    recipient: str
    shipped: int
    received: int | None
    state: ShipmentState


@dataclass(frozen=True, slots=True)
class BatchTrace:
    """Where every unit of a batch went (``drugs trace BATCH``): its registration, every
    shipment, and each holder down to the pharmacies and their patients."""

    batch: BatchState
    gtin: int | None
    lot: str | None
    hops: tuple[Hop, ...]
    holders: tuple[Holder, ...]  # the manufacturer first, then in order of first receipt

    @property
    def dispensed(self) -> int:
        return sum(h.dispensed for h in self.holders)

    @property
    def patients(self) -> int:
        return sum(h.patients for h in self.holders)


def epcis_export(
    trace: DrugTrace,
    *,
    batch_id: bytes | None = None,
    serials: Mapping[bytes, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The DrugTrace events (of one batch, or all) as an EPCIS 2.0 document
    (:func:`~emrshare.trace.epcis_document`), read at one block, with block times."""
    end = trace.client.safe_block()
    ledger = read_ledger(trace, to_block=end, batch_id=batch_id)
    only: dict[str, Any] = {} if batch_id is None else {"batch_id": batch_id}
    recalls = list(trace.events(Recalled, to_block=end, **only))
    times: dict[int, int] = {}

    def block_time(n: int) -> int:
        if n not in times:
            times[n] = trace.client.block_time(n)
        return times[n]

    return epcis_document(ledger, block_time, recalls=recalls, serials=serials)


def batch_trace(trace: DrugTrace, batch_id: bytes) -> BatchTrace:
    """The batch's trace, all read at one block (``NotFound`` for an unknown batch)."""
    end = trace.client.safe_block()
    state = trace.batch(batch_id, block=end)
    if state is None:
        raise NotFound(f"no batch 0x{batch_id.hex()[:12]}… is registered")
    ledger = read_ledger(trace, to_block=end, batch_id=batch_id)
    holders: dict[str, Holder] = {state.manufacturer.lower(): Holder(state.manufacturer)}

    def holder(a: str) -> Holder:
        return holders.setdefault(a.lower(), Holder(a))

    received = {bytes(r.shipment_id): r for r in ledger.received}
    cancelled = {bytes(c.shipment_id) for c in ledger.cancelled}
    hops = []
    for s in ledger.shipped:
        sid = bytes(s.shipment_id)
        r = received.get(sid)
        st = (
            ShipmentState.RECEIVED
            if r is not None
            else ShipmentState.CANCELLED
            if sid in cancelled
            else ShipmentState.IN_TRANSIT
        )
        hops.append(
            Hop(sid, s.sender, s.recipient, s.quantity, None if r is None else r.quantity, st)
        )
        if st is not ShipmentState.CANCELLED:
            holder(s.sender).shipped += s.quantity
        if r is not None:
            holder(s.recipient).received += r.quantity
    links: dict[str, set[bytes]] = {}
    for d in ledger.dispensed:
        holder(d.pharmacy).dispensed += d.quantity
        links.setdefault(d.pharmacy.lower(), set()).add(bytes(d.link))
    for key, h in holders.items():
        h.patients = len(links.get(key, ()))
        h.stock = trace.stock(batch_id, h.account, block=end)
    first = ledger.batches[0] if ledger.batches else None
    return BatchTrace(
        state,
        None if first is None else first.gtin,
        None if first is None else first.lot,
        tuple(hops),
        tuple(holders.values()),
    )
