"""The two-invoice check and the dispense trace, on ledgers of DrugTrace events built by
hand (the chain's own event classes; the integration tests feed real ones)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pytest

from emrshare.chain import (
    NO_UNIT,
    BatchRegistered,
    Dispensed,
    Received,
    ShipmentCancelled,
    Shipped,
    batch_id_of,
)
from emrshare.trace import (
    REASONS,
    Invoice,
    Ledger,
    TwoInvoiceReport,
    trace_dispenses,
    two_invoice_check,
)

FACTORY, D1, D2, HOSP, PHARM, FAKE = (f"0x{i:040x}" for i in range(1, 7))
GTIN = 9506000134352


@dataclass
class Book:
    """Builds a ledger in chain order, one event per block; keeps each shipment's invoice."""

    block: int = 0
    batches: list[BatchRegistered] = field(default_factory=list)
    shipped: list[Shipped] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    cancelled: list[ShipmentCancelled] = field(default_factory=list)
    dispensed: list[Dispensed] = field(default_factory=list)
    invoices: dict[bytes, Invoice] = field(default_factory=dict)

    def _at(self) -> tuple[int, bytes, int]:
        self.block += 1
        return (self.block, self.block.to_bytes(32, "big"), 0)  # one event per transaction

    def batch(self, lot: str = "L1", quantity: int = 100, by: str = FACTORY) -> bytes:
        bid = batch_id_of(GTIN, lot)
        self.batches.append(
            BatchRegistered(
                *self._at(), bid, by, GTIN, lot, 0, quantity, "pack", b"", bytes(32), 0, 0
            )
        )
        return bid

    def ship(
        self,
        src: str,
        dst: str,
        batch: bytes,
        qty: int,
        *,
        invoiced_batch: bytes | None = None,
        invoiced_qty: int | None = None,
    ) -> bytes:
        sid = os.urandom(32)
        inv = Invoice.new(
            f"INV-{self.block}", qty * 100, "TAX", invoiced_batch or batch, invoiced_qty or qty
        )
        self.invoices[sid] = inv
        self.shipped.append(
            Shipped(*self._at(), sid, batch, src, dst, qty, os.urandom(32), inv.digest())
        )
        return sid

    def receive(self, sid: bytes, qty: int | None = None) -> None:
        ship = next(s for s in self.shipped if s.shipment_id == sid)
        got = ship.quantity if qty is None else qty
        self.received.append(
            Received(*self._at(), sid, ship.batch_id, ship.recipient, got, ship.quantity - got)
        )

    def move(self, src: str, dst: str, batch: bytes, qty: int) -> bytes:
        sid = self.ship(src, dst, batch, qty)
        self.receive(sid)
        return sid

    def cancel(self, sid: bytes) -> None:
        ship = next(s for s in self.shipped if s.shipment_id == sid)
        self.cancelled.append(
            ShipmentCancelled(*self._at(), sid, ship.batch_id, ship.sender, ship.quantity)
        )

    def dispense(self, by: str, batch: bytes, qty: int, link: bytes) -> None:
        self.dispensed.append(Dispensed(*self._at(), batch, by, link, qty, NO_UNIT, bytes(32)))

    def ledger(self, *, without_batches: bool = False) -> Ledger:
        return Ledger(
            () if without_batches else self.batches,
            self.shipped,
            self.received,
            self.cancelled,
            self.dispensed,
        )


def check(book: Book, invoices: Iterable[Invoice] | None = None) -> TwoInvoiceReport:
    return two_invoice_check(book.ledger(), [HOSP, PHARM], invoices)


def test_two_invoices_pass() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 60)
    sid = b.move(D1, HOSP, batch, 40)
    report = check(b, invoices=b.invoices.values())
    assert report.ok and len(report.findings) == 1  # the distributor's receipt is not checked
    f = report.findings[0]
    assert (f.shipment_id, f.supplier, f.hospital, f.received) == (sid, D1, HOSP, 40)
    assert f.invoice_counts == (2,) and (f.gtin, f.lot) == (GTIN, "L1")
    [route] = f.chains
    assert route.quantity == 40 and route.legs is not None
    assert [leg.sender for leg in route.legs] == [FACTORY, D1]


def test_straight_from_the_factory_is_one_invoice_too_few() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, HOSP, batch, 10)
    [f] = check(b).findings
    assert f.reasons == ("too_few_invoices",) and f.invoice_counts == (1,)


def test_a_second_distributor_is_a_shadow_third_invoice() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 50)
    b.move(D1, D2, batch, 50)  # the shadow intermediary
    b.move(D2, PHARM, batch, 30)
    [f] = check(b).findings
    assert f.reasons == ("extra_intermediary",) and f.invoice_counts == (3,)


def test_fifo_splits_one_receipt_over_its_routes() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 10)  # first in: two-invoice route
    b.move(FACTORY, D2, batch, 20)
    b.move(D2, D1, batch, 20)  # then 20 via a second distributor
    b.move(D1, HOSP, batch, 15)  # 10 by the first route, 5 by the second
    b.move(D1, HOSP, batch, 15)  # all 15 by the second
    first, second = check(b).findings
    assert sorted((c.quantity, c.invoices) for c in first.chains) == [(5, 3), (10, 2)]
    assert first.reasons == ("extra_intermediary",) and first.invoice_counts == (2, 3)
    assert [(c.quantity, c.invoices) for c in second.chains] == [(15, 3)]


def test_a_short_receipt_is_a_quantity_mismatch() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 20)
    sid = b.ship(D1, HOSP, batch, 20)
    b.receive(sid, 18)
    [f] = check(b).findings
    assert f.reasons == ("quantity_mismatch",) and (f.shipped, f.received) == (20, 18)
    assert sum(c.quantity for c in f.chains) == 20  # the routes of all that was shipped


def test_units_from_outside_the_ledger_have_no_factory_shipment() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 20)
    b.move(D1, HOSP, batch, 20)
    [f] = two_invoice_check(b.ledger(without_batches=True), [HOSP]).findings
    assert "no_factory_shipment" in f.reasons and f.gtin is None
    # A distributor shipping stock the ledger never saw arrive.
    b2 = Book()
    batch2 = b2.batch()
    b2.move(D2, HOSP, batch2, 5)
    [g] = check(b2).findings
    assert g.reasons == ("no_factory_shipment",) and [c.legs for c in g.chains] == [None]


def test_a_cancelled_shipment_returns_its_lots_first_in_line() -> None:
    b = Book()
    batch = b.batch(quantity=30)
    b.move(FACTORY, D1, batch, 10)
    b.move(FACTORY, D2, batch, 10)
    b.move(D2, D1, batch, 10)
    wrong = b.ship(D1, FAKE, batch, 10)  # takes D1's first lot (two-invoice route)
    b.cancel(wrong)
    b.move(D1, HOSP, batch, 10)  # gets that lot back first
    [f] = check(b).findings
    assert f.ok and f.invoice_counts == (2,)


def test_invoice_plaintexts_are_checked_against_the_chain() -> None:
    b = Book()
    batch = b.batch()
    s1 = b.move(FACTORY, D1, batch, 60)
    s2 = b.move(D1, HOSP, batch, 60)
    real = b.invoices
    # All handed in, matched by digest: clean.
    assert check(b, invoices=list(real.values())).ok
    # The distributor's is missing.
    [f] = check(b, invoices=[real[s1]]).findings
    assert f.reasons == ("invoice_missing",)
    # An edited plaintext handed in for the factory shipment.
    edited = Invoice(
        real[s1].number, real[s1].amount_minor - 1, real[s1].tax_id, batch, 60, real[s1].salt
    ).for_shipment(s1)
    report = check(b, invoices=[edited, real[s2]])
    assert report.findings[0].reasons == ("invoice_mismatch",) and not report.ok
    # Not named and matching no digest: left over, and the report is not clean.
    stray = Invoice.new("INV-X", 1, "TAX", batch, 1)
    report = check(b, invoices=[*real.values(), stray])
    assert report.findings[0].ok and report.unmatched_invoices == (stray,) and not report.ok


def test_an_invoice_committed_for_another_quantity_or_batch() -> None:
    b = Book()
    batch = b.batch()
    other = b.batch(lot="L2")
    b.move(FACTORY, D1, batch, 60)
    s1 = b.shipped[-1].shipment_id
    b.move(FACTORY, D1, other, 10)
    sid = b.ship(D1, HOSP, batch, 50, invoiced_qty=40)  # the invoice says 40
    b.receive(sid)
    [f] = check(b, invoices=b.invoices.values()).findings
    assert f.reasons == ("quantity_mismatch",)
    b2 = Book()
    bb = b2.batch()
    ob = b2.batch(lot="L2")
    b2.move(FACTORY, D1, bb, 60)
    sid2 = b2.ship(D1, HOSP, bb, 10, invoiced_batch=ob)  # invoiced against the other batch
    b2.receive(sid2)
    [g] = check(b2, invoices=b2.invoices.values()).findings
    assert g.reasons == ("batch_mismatch",)
    assert s1 in {leg.shipment_id for c in f.chains for leg in c.legs or ()}


def test_outputs_carry_every_finding() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 50)
    b.move(D1, HOSP, batch, 10)
    b.move(FACTORY, PHARM, batch, 10)
    report = check(b)
    doc = report.to_json()
    assert (doc["receipts"], doc["flagged"]) == (2, 1)
    assert set(doc["reasons"]) == set(REASONS) and doc["reasons"]["too_few_invoices"] == 1
    assert doc["findings"][1]["reasons"] == ["too_few_invoices"]
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["result"] for r in rows] == ["ok", "flagged"]
    assert rows[0]["gtin"] == "09506000134352" and rows[1]["reasons"] == "too_few_invoices"
    assert rows[0]["shipment_id"] == "0x" + report.findings[0].shipment_id.hex()
    table = report.table()
    assert len(table) == 3 and table[2][-1] == "too_few_invoices"


def test_trace_a_dispense_back_to_the_factory() -> None:
    b = Book()
    batch = b.batch()
    f1 = b.move(FACTORY, D1, batch, 30)
    d1 = b.move(D1, PHARM, batch, 30)
    mine, other = os.urandom(32), os.urandom(32)
    b.dispense(PHARM, batch, 2, other)
    b.dispense(PHARM, batch, 1, mine)
    [t] = trace_dispenses(b.ledger(), links=[mine])
    assert t.manufacturer == FACTORY and (t.gtin, t.lot) == (GTIN, "L1")
    [route] = t.chains
    assert route.quantity == 1 and [leg.shipment_id for leg in route.legs or ()] == [f1, d1]
    assert len(trace_dispenses(b.ledger(), batch_id=batch)) == 2
    assert trace_dispenses(b.ledger(), batch_id=os.urandom(32)) == []


def test_one_pass_over_a_large_ledger() -> None:
    b = Book()
    batch = b.batch(quantity=10**6)
    for _ in range(500):
        b.move(FACTORY, D1, batch, 20)
    for _ in range(1000):
        b.move(D1, HOSP, batch, 10)
    report = check(b)
    assert len(report.findings) == 1000 and report.ok and report.events == 1 + 3000


@pytest.mark.parametrize("hospital_case", [HOSP.upper().replace("0X", "0x"), HOSP])
def test_hospital_addresses_match_in_any_case(hospital_case: str) -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 5)
    b.move(D1, HOSP, batch, 5)
    assert len(two_invoice_check(b.ledger(), [hospital_case]).findings) == 1


def test_a_window_reports_its_receipts_with_routes_from_before_it() -> None:
    b = Book()
    batch = b.batch()
    early = b.ship(FACTORY, HOSP, batch, 10)  # last month: one invoice, not yet received
    b.block = 100
    b.receive(early)  # this month
    [f] = two_invoice_check(b.ledger(), [HOSP], from_block=50).findings
    assert f.reasons == ("too_few_invoices",)
    assert two_invoice_check(b.ledger(), [HOSP], from_block=200).findings == ()
    # A ledger cut at the window still reports the receipt, as coming from nowhere known.
    cut = Ledger(b.batches, [], b.received, [], [])
    [g] = two_invoice_check(cut, [HOSP]).findings
    assert g.reasons == ("no_factory_shipment",) and g.supplier == ""


def test_one_invoice_for_two_loads_is_flagged() -> None:
    b = Book()
    batch = b.batch()
    s1 = b.move(FACTORY, D1, batch, 10)
    s2 = b.ship(FACTORY, D1, batch, 10)
    b.shipped[-1] = replace(b.shipped[-1], invoice_digest=b.shipped[-2].invoice_digest)
    b.receive(s2)
    b.move(D1, HOSP, batch, 20)
    [f] = check(b).findings
    assert f.reasons == ("invoice_reused",)
    assert {leg.shipment_id for c in f.chains for leg in c.legs or ()} >= {s1, s2}


@pytest.mark.parametrize("forged_first", [True, False])
def test_two_plaintexts_for_one_shipment_fail_in_either_order(forged_first: bool) -> None:
    b = Book()
    batch = b.batch()
    s1 = b.move(FACTORY, D1, batch, 10)
    s2 = b.move(D1, HOSP, batch, 10)
    real = b.invoices[s1].for_shipment(s1)
    forged = Invoice.new("FORGED", 1, "TAX", batch, 10).for_shipment(s1)
    handed = [forged, real] if forged_first else [real, forged]
    [f] = check(b, [*handed, b.invoices[s2]]).findings
    assert f.reasons == ("invoice_mismatch",)


def test_the_one_intermediary_must_be_a_distributor() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, PHARM, batch, 10)
    b.move(PHARM, HOSP, batch, 10)  # a pharmacy reselling to a hospital
    b.move(FACTORY, D1, batch, 10)
    b.move(D1, HOSP, batch, 10)
    report = two_invoice_check(b.ledger(), [HOSP, PHARM], distributors=[D1, D2])
    reasons = [f.reasons for f in report.findings]
    assert reasons == [("too_few_invoices",), ("not_via_distributor",), ()]


def test_a_round_trip_between_distributors_is_four_invoices() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 10)
    b.move(D1, D2, batch, 10)
    b.move(D2, D1, batch, 10)
    b.move(D1, HOSP, batch, 10)
    [f] = check(b).findings
    assert f.reasons == ("extra_intermediary",) and f.invoice_counts == (4,)


def test_a_receipt_of_nothing_is_still_checked_for_its_route() -> None:
    b = Book()
    batch = b.batch()
    sid = b.ship(FACTORY, HOSP, batch, 10)
    b.receive(sid, 0)  # diverted on the way: nothing arrived
    [f] = check(b).findings
    assert f.reasons == ("too_few_invoices", "quantity_mismatch")


def test_one_paper_invoice_salted_twice_is_still_one_invoice() -> None:
    b = Book()
    batch = b.batch()
    s1 = b.move(FACTORY, D1, batch, 10)
    s2 = b.move(FACTORY, D1, batch, 10)
    paper = b.invoices[s1]
    b.invoices[s2] = replace(paper, salt=os.urandom(32))  # same number, tax id, amount
    b.shipped[1] = replace(b.shipped[1], invoice_digest=b.invoices[s2].digest())
    b.move(D1, HOSP, batch, 20)
    [f] = check(b, b.invoices.values()).findings
    assert f.reasons == ("invoice_reused",)


def test_a_duplicated_receipt_event_credits_nothing() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 10)
    b.received.append(replace(b.received[-1], block_number=b.block + 1, log_index=1))
    b.block += 1
    b.move(D1, HOSP, batch, 10)
    report = check(b)
    assert [f.reasons for f in report.findings] == [()]


def test_an_account_both_hospital_and_distributor_is_a_distributor() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 10)
    b.move(D1, HOSP, batch, 10)
    report = two_invoice_check(b.ledger(), [HOSP, D1], distributors=[D1])
    assert [(f.hospital, f.reasons) for f in report.findings] == [(HOSP, ())]
