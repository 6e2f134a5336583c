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

import gc
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
    "gc_paused",
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
    def expiry(self) -> int: ...
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
    def batch_id(self) -> bytes: ...
    @property
    def recipient(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def discrepancy(self) -> int: ...


class CancelledLike(_Event, Protocol):
    @property
    def shipment_id(self) -> bytes: ...
    @property
    def batch_id(self) -> bytes: ...


class DispensedLike(_Event, Protocol):
    @property
    def batch_id(self) -> bytes: ...
    @property
    def pharmacy(self) -> str: ...
    @property
    def link(self) -> bytes: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_index(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Ledger:
    """The DrugTrace events of one window of the chain, by kind."""

    batches: Sequence[BatchLike] = ()
    shipped: Sequence[ShippedLike] = ()
    received: Sequence[ReceivedLike] = ()
    cancelled: Sequence[CancelledLike] = ()
    dispensed: Sequence[DispensedLike] = ()

    def of_batches(self, batch_ids: Collection[bytes]) -> Ledger:
        """The events of these batches only."""

        def keep(events: Sequence[Any]) -> list[Any]:
            return [e for e in events if bytes(e.batch_id) in batch_ids]

        return Ledger(
            keep(self.batches),
            keep(self.shipped),
            keep(self.received),
            keep(self.cancelled),
            keep(self.dispensed),
        )

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
        self._routes: dict[tuple[bytes, ...], tuple[Leg, ...]] = {}
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

    def run(
        self, *, received: bool = True, dispensed: bool = True
    ) -> Iterator[tuple[str, Any, list[_Lot]]]:
        """Replay the ledger; yield ``("received", event, lots)`` for each receipt (if
        ``received``: the lots of the whole shipment, received or not) and
        ``("dispensed", event, lots)`` for each dispense (if ``dispensed``): the lots say
        where the units came from."""
        kinds = (
            self._ledger.batches,
            self._ledger.shipped,
            self._ledger.received,
            self._ledger.cancelled,
            self._ledger.dispensed,
        )
        # Plain int tuples sort fastest (no key function, never an event compared).
        order = [
            (e.block_number, e.log_index, kind, i)
            for kind, events in enumerate(kinds)
            for i, e in enumerate(events)
        ]
        order.sort()
        stock, transit, shipments = self._stock, self._transit, self.shipments
        for _, _, kind, i in order:
            e: Any = kinds[kind][i]
            if kind == 0:
                self.batches[bytes(e.batch_id)] = e
                stock[(e.manufacturer.lower(), bytes(e.batch_id))].append([e.quantity, ()])
            elif kind == 1:
                sid = bytes(e.shipment_id)
                shipments[sid] = e
                lots = self._take(e.sender.lower(), bytes(e.batch_id), e.quantity)
                transit[sid] = [[n, None if path is None else (*path, sid)] for n, path in lots]
            elif kind == 2:
                sid = bytes(e.shipment_id)
                moving = transit.pop(sid, None)
                ship = shipments.get(sid)
                if ship is None:
                    # Its shipment is outside the ledger: units from nowhere it knows.
                    kept = [[e.quantity + e.discrepancy, None]]
                    stock[(e.recipient.lower(), bytes(e.batch_id))].append([e.quantity, None])
                    if received:
                        yield "received", e, kept
                    continue
                if moving is None:
                    continue  # received or cancelled already: a duplicated event
                kept = _first(moving, e.quantity)  # the shortfall was lost on the way
                stock[(ship.recipient.lower(), bytes(ship.batch_id))].extend(kept)
                if received:  # the whole shipment's routes: a short receipt is checked too
                    yield "received", e, [list(x) for x in moving]
            elif kind == 3:
                sid = bytes(e.shipment_id)
                moving = transit.pop(sid, None)
                ship = shipments.get(sid)
                if moving is None or ship is None:
                    continue
                back = stock[(ship.sender.lower(), bytes(ship.batch_id))]
                for n, path in reversed(moving):
                    back.appendleft([n, None if path is None else path[:-1]])
            else:
                lots = self._take(e.pharmacy.lower(), bytes(e.batch_id), e.quantity)
                if dispensed:
                    yield "dispensed", e, lots

    def chains(self, lots: Iterable[_Lot]) -> tuple[Chain, ...]:
        """The routes of ``lots``, units that came the same way merged."""
        merged: dict[tuple[bytes, ...] | None, int] = {}
        for n, path in lots:
            merged[path] = merged.get(path, 0) + n
        return tuple(
            Chain(n, None if path is None else self._route(path)) for path, n in merged.items()
        )

    def _route(self, path: tuple[bytes, ...]) -> tuple[Leg, ...]:
        route = self._routes.get(path)
        if route is None:
            route = tuple(self._leg(sid) for sid in path)
            self._routes[path] = route
        return route

    def _leg(self, sid: bytes) -> Leg:
        s = self.shipments[sid]
        return Leg(sid, s.sender, s.recipient, s.quantity, bytes(s.invoice_digest))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector over a replay: it allocates a few small lists
    per event and none of them form cycles, so the collector's passes over a large ledger
    are pure cost (twice the replay's time at 100,000 dispenses)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
