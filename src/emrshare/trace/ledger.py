"""The DrugTrace events of a window of the chain (a :class:`Ledger`) and their replay.

The replay (:class:`LedgerReplay`) goes over the events once, in chain order, keeping a
first-in-first-out queue of lots per holder and batch. Each lot remembers the shipments
that brought it there, so every unit a holder receives or dispenses is traced to its
route from the factory (:class:`Chain`). A lot is split at most once per shipment that
takes part of it, so the pass is linear in the events.

The inputs are any objects with the fields of :mod:`emrshare.chain`'s DrugTrace events
(the structural protocols below), so the roles pass the decoded events as they are.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BatchLike",
    "CancelledLike",
    "Chain",
    "DispensedLike",
    "Leg",
    "Ledger",
    "LedgerReplay",
    "ReceivedLike",
    "ShippedLike",
]


class _Event(Protocol):
    @property
    def block_number(self) -> int: ...
    @property
    def log_index(self) -> int: ...


class BatchLike(_Event, Protocol):
    @property
    def batch_id(self) -> bytes: ...
    @property
    def manufacturer(self) -> str: ...
    @property
    def gtin(self) -> int: ...
    @property
    def lot(self) -> str: ...
    @property
    def quantity(self) -> int: ...


class ShippedLike(_Event, Protocol):
    @property
    def shipment_id(self) -> bytes: ...
    @property
    def batch_id(self) -> bytes: ...
    @property
    def sender(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def invoice_digest(self) -> bytes: ...


class ReceivedLike(_Event, Protocol):
    @property
    def shipment_id(self) -> bytes: ...
    @property
    def quantity(self) -> int: ...
    @property
    def discrepancy(self) -> int: ...


class CancelledLike(_Event, Protocol):
    @property
    def shipment_id(self) -> bytes: ...


class DispensedLike(_Event, Protocol):
    @property
    def batch_id(self) -> bytes: ...
    @property
    def pharmacy(self) -> str: ...
    @property
    def link(self) -> bytes: ...
    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Ledger:
    """The DrugTrace events of one window of the chain, by kind."""

    batches: Sequence[BatchLike] = ()
    shipped: Sequence[ShippedLike] = ()
    received: Sequence[ReceivedLike] = ()
    cancelled: Sequence[CancelledLike] = ()
    dispensed: Sequence[DispensedLike] = ()

    def __len__(self) -> int:
        return sum(
            len(x)
            for x in (self.batches, self.shipped, self.received, self.cancelled, self.dispensed)
        )


@dataclass(frozen=True, slots=True)
class Leg:
    """One shipment on a route, that is one invoice."""

    shipment_id: bytes
    sender: str
    recipient: str
    quantity: int  # shipped
    invoice_digest: bytes


@dataclass(frozen=True, slots=True)
class Chain:
    """``quantity`` units that came the same way: ``legs`` from the factory on, or
    ``None`` where the ledger does not say where they came from."""

    quantity: int
    legs: tuple[Leg, ...] | None

    @property
    def invoices(self) -> int | None:
        return None if self.legs is None else len(self.legs)


_Lot = list[Any]  # [quantity, path: tuple[bytes, ...] | None]


class LedgerReplay:
    """The FIFO replay of a ledger (one pass, in chain order)."""

    def __init__(self, ledger: Ledger) -> None:
        self.batches: dict[bytes, BatchLike] = {}
        self.shipments: dict[bytes, ShippedLike] = {}
        self._stock: dict[tuple[str, bytes], deque[_Lot]] = defaultdict(deque)
        self._transit: dict[bytes, list[_Lot]] = {}
        self._ledger = ledger

    def _take(self, holder: str, batch: bytes, quantity: int) -> list[_Lot]:
        q = self._stock[(holder, batch)]
        out: list[_Lot] = []
        need = quantity
        while need and q:
            lot = q[0]
            if lot[0] <= need:
                q.popleft()
                out.append(lot)
                need -= lot[0]
            else:
                lot[0] -= need
                out.append([need, lot[1]])
                need = 0
        if need:
            out.append([need, None])  # the ledger does not say where these came from
        return out

    def run(self) -> Iterator[tuple[str, Any, list[_Lot]]]:
        """Yield ``("received", event, lots)`` and ``("dispensed", event, lots)``."""
        tagged: list[tuple[int, int, int, Any]] = []
        for kind, events in enumerate(
            (
                self._ledger.batches,
                self._ledger.shipped,
                self._ledger.received,
                self._ledger.cancelled,
                self._ledger.dispensed,
            )
        ):
            tagged.extend((e.block_number, e.log_index, kind, e) for e in events)
        tagged.sort(key=lambda t: (t[0], t[1], t[2]))
        for _, _, kind, e in tagged:
            if kind == 0:
                self.batches[bytes(e.batch_id)] = e
                key = (e.manufacturer.lower(), bytes(e.batch_id))
                self._stock[key].append([e.quantity, ()])
            elif kind == 1:
                sid = bytes(e.shipment_id)
                self.shipments[sid] = e
                lots = self._take(e.sender.lower(), bytes(e.batch_id), e.quantity)
                self._transit[sid] = [
                    [n, None if path is None else (*path, sid)] for n, path in lots
                ]
            elif kind == 2:
                sid = bytes(e.shipment_id)
                moving = self._transit.pop(sid, None)
                ship = self.shipments.get(sid)
                if moving is None or ship is None:
                    continue  # its shipment is outside the ledger
                kept = _first(moving, e.quantity)  # the shortfall was lost on the way
                self._stock[(ship.recipient.lower(), bytes(ship.batch_id))].extend(kept)
                yield "received", e, [list(x) for x in kept]
            elif kind == 3:
                sid = bytes(e.shipment_id)
                moving = self._transit.pop(sid, None)
                ship = self.shipments.get(sid)
                if moving is None or ship is None:
                    continue
                back = self._stock[(ship.sender.lower(), bytes(ship.batch_id))]
                for n, path in reversed(moving):
                    back.appendleft([n, None if path is None else path[:-1]])
            else:
                lots = self._take(e.pharmacy.lower(), bytes(e.batch_id), e.quantity)
                yield "dispensed", e, lots

    def chains(self, lots: Iterable[_Lot]) -> tuple[Chain, ...]:
        merged: dict[tuple[bytes, ...] | None, int] = {}
        for n, path in lots:
            merged[path] = merged.get(path, 0) + n
        out = []
        for path, n in merged.items():
            legs = None if path is None else tuple(self._leg(sid) for sid in path)
            out.append(Chain(n, legs))
        return tuple(out)

    def _leg(self, sid: bytes) -> Leg:
        s = self.shipments[sid]
        return Leg(sid, s.sender, s.recipient, s.quantity, bytes(s.invoice_digest))


def _first(lots: list[_Lot], quantity: int) -> list[_Lot]:
    out: list[_Lot] = []
    need = quantity
    for n, path in lots:
        if not need:
            break
        take = min(n, need)
        out.append([take, path])
        need -= take
    return out
