"""The regulator's two-invoice check (两票制), and the trace of a dispense back to its
factory.

Both replay the ``DrugTrace`` events once, first in first out
(:class:`~emrshare.trace.ledger.LedgerReplay`), so every unit a hospital receives (or a
pharmacy dispenses) is traced to the chain of invoices back to the manufacturer.

A hospital receipt passes the check when each of its units came through exactly two
invoices (manufacturer to distributor, distributor to hospital) and, where the regulator
holds the invoice plaintexts, each plaintext matches its on-chain digest, the batch and
the quantity shipped. Otherwise the finding carries one or more reasons:

``too_few_invoices``
    a unit came straight from the manufacturer (one invoice);
``extra_intermediary``
    a unit passed through more than one distributor (three invoices or more);
``not_via_distributor``
    two invoices, but the one in between is not a distributor (a pharmacy reselling);
``no_factory_shipment``
    units whose route does not start at the batch's manufacturer (the ledger misses the
    registration or the shipment: a ledger that does not start at the deployment);
``quantity_mismatch``
    the hospital confirmed less than was shipped, or an invoice's quantity is not the
    shipment's;
``batch_mismatch``
    an invoice names another batch than its shipment;
``invoice_mismatch``
    the plaintext handed in for a shipment is not the invoice committed to on chain;
``invoice_missing``
    plaintexts were handed in, but none for one of the shipments on the route;
``invoice_reused``
    one invoice digest stands for more than one shipment (one paper invoice, two loads).

Units of one batch are fungible: which of a holder's lots a shipment takes is the
ledger's convention (first in, first out), not a fact the chain records.

Both take a :class:`~emrshare.trace.ledger.Ledger` of the decoded events as they are.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from emrshare.trace.invoices import Invoice
from emrshare.trace.ledger import (
    Chain,
    DispensedLike,
    Ledger,
    LedgerReplay,
    Leg,
    ReceivedLike,
    ShippedLike,
    gc_paused,
)

__all__ = [
    "REASONS",
    "DispenseTrace",
    "Finding",
    "TwoInvoiceReport",
    "trace_dispenses",
    "two_invoice_check",
]

#: Every reason a finding may carry, in the order reports list them.
REASONS = (
    "too_few_invoices",
    "extra_intermediary",
    "not_via_distributor",
    "no_factory_shipment",
    "quantity_mismatch",
    "batch_mismatch",
    "invoice_mismatch",
    "invoice_missing",
    "invoice_reused",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The check of one hospital receipt."""

    shipment_id: bytes
    batch_id: bytes
    gtin: int | None  # None: the batch's registration is outside the ledger
    lot: str | None
    supplier: str
    hospital: str
    shipped: int
    received: int
    block_number: int
    chains: tuple[Chain, ...]
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def invoice_counts(self) -> tuple[int, ...]:
        """The distinct numbers of invoices behind the receipt's units (known routes)."""
        return tuple(sorted({c.invoices for c in self.chains if c.invoices is not None}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "shipmentId": "0x" + self.shipment_id.hex(),
            "batchId": "0x" + self.batch_id.hex(),
            "gtin": None if self.gtin is None else f"{self.gtin:014d}",
            "lot": self.lot,
            "supplier": self.supplier,
            "hospital": self.hospital,
            "shipped": self.shipped,
            "received": self.received,
            "block": self.block_number,
            "invoices": list(self.invoice_counts),
            "ok": self.ok,
            "reasons": list(self.reasons),
            "routes": [
                {
                    "quantity": c.quantity,
                    "shipments": None
                    if c.legs is None
                    else ["0x" + leg.shipment_id.hex() for leg in c.legs],
                }
                for c in self.chains
            ],
        }


@dataclass(frozen=True, slots=True)
class TwoInvoiceReport:
    """The regulator's report: one finding per hospital receipt in the ledger."""

    findings: tuple[Finding, ...]
    events: int
    invoices_checked: bool
    #: Invoice plaintexts handed in that match no shipment of the ledger.
    unmatched_invoices: tuple[Invoice, ...] = field(default=())

    @property
    def flagged(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.ok)

    @property
    def ok(self) -> bool:
        return not self.flagged and not self.unmatched_invoices

    def counts(self) -> dict[str, int]:
        """How many findings carry each reason (every reason listed, zero or not)."""
        out = dict.fromkeys(REASONS, 0)
        for f in self.findings:
            for r in f.reasons:
                out[r] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "receipts": len(self.findings),
            "flagged": len(self.flagged),
            "events": self.events,
            "invoicesChecked": self.invoices_checked,
            "reasons": self.counts(),
            "unmatchedInvoices": ["0x" + i.digest().hex() for i in self.unmatched_invoices],
            "findings": [f.as_dict() for f in self.findings],
        }

    def to_csv(self) -> str:
        """One row per hospital receipt, for the commission's spreadsheet."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            [
                "shipment_id",
                "batch_id",
                "gtin",
                "lot",
                "supplier",
                "hospital",
                "shipped",
                "received",
                "block",
                "invoices",
                "result",
                "reasons",
            ]
        )
        for f in self.findings:
            d = f.as_dict()
            w.writerow(
                [
                    d["shipmentId"],
                    d["batchId"],
                    d["gtin"] or "",
                    d["lot"] or "",
                    f.supplier,
                    f.hospital,
                    f.shipped,
                    f.received,
                    f.block_number,
                    ";".join(map(str, f.invoice_counts)),
                    "ok" if f.ok else "flagged",
                    ";".join(f.reasons),
                ]
            )
        return buf.getvalue()

    def table(self) -> list[tuple[str, ...]]:
        """Rows for a terminal table (the header first); ids shortened."""
        rows: list[tuple[str, ...]] = [
            ("RECEIPT", "BATCH", "SUPPLIER", "HOSPITAL", "QTY", "INVOICES", "RESULT")
        ]
        for f in self.findings:
            batch = f"{f.gtin:014d}/{f.lot}" if f.gtin is not None else _short(f.batch_id)
            qty = str(f.received) if f.received == f.shipped else f"{f.received}/{f.shipped}"
            rows.append(
                (
                    _short(f.shipment_id),
                    batch,
                    _short_addr(f.supplier),
                    _short_addr(f.hospital),
                    qty,
                    ",".join(map(str, f.invoice_counts)) or "?",
                    "ok" if f.ok else ", ".join(f.reasons),
                )
            )
        return rows


@dataclass(frozen=True, slots=True)
class DispenseTrace:
    """One dispense and the routes of its units from the factory."""

    dispense: DispensedLike
    manufacturer: str | None
    gtin: int | None
    lot: str | None
    chains: tuple[Chain, ...]


def _short(b: bytes) -> str:
    return "0x" + b.hex()[:10]


def _short_addr(a: str) -> str:
    return a[:8] + "…" + a[-4:]


@dataclass(frozen=True, slots=True)
class _Context:
    """What every receipt's check consults: the plaintexts, the digests on more than one
    shipment, and the accounts that may be the one intermediary (``None``: any)."""

    invoices: _Invoices | None
    reused: frozenset[bytes]
    distributors: frozenset[str] | None


def _reasons(
    finding_chains: tuple[Chain, ...],
    shipped: int,
    received: int,
    batch_id: bytes,
    manufacturer: str | None,
    ctx: _Context,
) -> tuple[str, ...]:
    found: set[str] = set()
    if received != shipped:
        found.add("quantity_mismatch")
    for c in finding_chains:
        if c.legs is None or not c.legs:
            found.add("no_factory_shipment")
            continue
        if manufacturer is None or c.legs[0].sender.lower() != manufacturer.lower():
            found.add("no_factory_shipment")
        if len(c.legs) < 2:
            found.add("too_few_invoices")
        elif len(c.legs) > 2:
            found.add("extra_intermediary")
        elif ctx.distributors is not None and c.legs[0].recipient.lower() not in ctx.distributors:
            found.add("not_via_distributor")
        for leg in c.legs:
            if leg.invoice_digest in ctx.reused:
                found.add("invoice_reused")
            if ctx.invoices is not None:
                found.update(ctx.invoices.check(leg, batch_id))
    return tuple(r for r in REASONS if r in found)


class _Invoices:
    """The plaintexts handed to the regulator, matched to shipments: by the shipment id an
    invoice names, else by its digest. Two different plaintexts named for one shipment
    are both kept: that shipment's check fails, whichever came first."""

    def __init__(self, invoices: Iterable[Invoice], shipments: dict[bytes, ShippedLike]) -> None:
        self.named: dict[bytes, list[Invoice]] = {}
        self.by_digest: dict[bytes, Invoice] = {}
        papers: dict[tuple[str, str], set[bytes]] = {}
        digests = {bytes(s.invoice_digest) for s in shipments.values()}
        unmatched: list[Invoice] = []
        for inv in invoices:
            if inv.shipment_id is not None:
                if inv.shipment_id in shipments:
                    kept = self.named.setdefault(inv.shipment_id, [])
                    if all(k.digest() != inv.digest() for k in kept):
                        kept.append(inv)
                else:
                    unmatched.append(inv)
            elif inv.digest() in digests:
                self.by_digest[inv.digest()] = inv
            else:
                unmatched.append(inv)
        self.unmatched = tuple(unmatched)
        # One paper invoice (seller's tax id and number) behind two shipments, however salted.
        for sid, s in shipments.items():
            for inv in self._for(sid, bytes(s.invoice_digest)):
                papers.setdefault((inv.tax_id, inv.number), set()).add(sid)
        self.reused = frozenset(sid for sids in papers.values() if len(sids) > 1 for sid in sids)

    def _for(self, sid: bytes, digest: bytes) -> list[Invoice]:
        named = self.named.get(sid)
        if named:
            return named
        found = self.by_digest.get(digest)
        return [] if found is None else [found]

    def check(self, leg: Leg, batch_id: bytes) -> set[str]:
        named = self.named.get(leg.shipment_id)
        if named:
            if len(named) > 1 or not named[0].matches(leg.invoice_digest):
                return {"invoice_mismatch"}
            inv = named[0]
        else:
            found = self.by_digest.get(leg.invoice_digest)
            if found is None:
                return {"invoice_missing"}
            inv = found
        out = {"invoice_reused"} if leg.shipment_id in self.reused else set()
        if inv.quantity != leg.quantity:
            out.add("quantity_mismatch")
        if inv.batch_id != batch_id:
            out.add("batch_mismatch")
        return out


def two_invoice_check(
    ledger: Ledger,
    hospitals: Collection[str],
    invoices: Iterable[Invoice] | None = None,
    *,
    distributors: Collection[str] | None = None,
    from_block: int = 0,
) -> TwoInvoiceReport:
    """Check every receipt by one of ``hospitals`` (addresses of pharmacies and of
    providers with the pharmacy capability) in ``ledger``; with ``invoices``, check the
    plaintexts too; with ``distributors``, the one intermediary must be one of them (see
    the module's reasons).

    ``ledger`` should start at the deployment: a receipt's route may begin long before
    it. ``from_block`` limits the report, never the replay, to the receipts from that
    block on (a month's audit)."""
    wanted = {h.lower() for h in hospitals} - {d.lower() for d in distributors or ()}
    replay = LedgerReplay(ledger)
    pending: list[tuple[ReceivedLike, tuple[Chain, ...]]] = []
    with gc_paused():
        for _, e, lots in replay.run(dispensed=False):
            if e.block_number >= from_block and e.recipient.lower() in wanted:
                pending.append((e, replay.chains(lots)))
    counts = Counter(bytes(s.invoice_digest) for s in ledger.shipped)
    ctx = _Context(
        invoices=None if invoices is None else _Invoices(invoices, replay.shipments),
        reused=frozenset(d for d, n in counts.items() if n > 1),
        distributors=None if distributors is None else frozenset(d.lower() for d in distributors),
    )
    findings = []
    for e, chains in pending:
        ship = replay.shipments.get(bytes(e.shipment_id))
        batch = replay.batches.get(bytes(e.batch_id))
        manufacturer = None if batch is None else batch.manufacturer
        shipped = e.quantity + e.discrepancy if ship is None else ship.quantity
        findings.append(
            Finding(
                shipment_id=bytes(e.shipment_id),
                batch_id=bytes(e.batch_id),
                gtin=None if batch is None else batch.gtin,
                lot=None if batch is None else batch.lot,
                supplier="" if ship is None else ship.sender,
                hospital=e.recipient,
                shipped=shipped,
                received=e.quantity,
                block_number=e.block_number,
                chains=chains,
                reasons=_reasons(chains, shipped, e.quantity, bytes(e.batch_id), manufacturer, ctx),
            )
        )
    return TwoInvoiceReport(
        findings=tuple(findings),
        events=len(ledger),
        invoices_checked=ctx.invoices is not None,
        unmatched_invoices=() if ctx.invoices is None else ctx.invoices.unmatched,
    )


def trace_dispenses(
    ledger: Ledger, *, links: Collection[bytes] | None = None, batch_id: bytes | None = None
) -> list[DispenseTrace]:
    """The dispenses in ``ledger`` (only those to ``links``, or of ``batch_id``, if given),
    each with the routes its units took from the factory."""
    want_links = None if links is None else {bytes(x) for x in links}
    batches = None if batch_id is None else {batch_id}
    if want_links is not None:
        named = {bytes(d.batch_id) for d in ledger.dispensed if bytes(d.link) in want_links}
        batches = named if batches is None else batches & named
    if batches is not None:
        ledger = ledger.of_batches(batches)  # a batch's units never mix with another's
    replay = LedgerReplay(ledger)
    out = []
    with gc_paused():
        for _, e, lots in replay.run(received=False):
            if want_links is not None and bytes(e.link) not in want_links:
                continue
            if batch_id is not None and bytes(e.batch_id) != batch_id:
                continue
            batch = replay.batches.get(bytes(e.batch_id))
            out.append(
                DispenseTrace(
                    dispense=e,
                    manufacturer=None if batch is None else batch.manufacturer,
                    gtin=None if batch is None else batch.gtin,
                    lot=None if batch is None else batch.lot,
                    chains=replay.chains(lots),
                )
            )
    return out
