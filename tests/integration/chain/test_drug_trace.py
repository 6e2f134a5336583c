"""The DrugTrace contract on both nodes: batches, shipments, receipts, dispenses (by
quantity and by serialized unit), recalls and their notices, adverse-event notices; stock
reconciled on chain; every custom error with its arguments; gas budgets."""

from __future__ import annotations

import os

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from emrshare.chain import (
    NO_UNIT,
    Action,
    AdverseEventReported,
    BatchRegistered,
    Capability,
    Dispensed,
    RecallNotice,
    Received,
    Role,
    ShipmentCancelled,
    ShipmentState,
    Shipped,
    batch_id_of,
    link_of,
    shipment_id_of,
)
from emrshare.chain.bindings import DrugTrace
from emrshare.devnet import dev_private_keys
from emrshare.errors import SupplyRefused
from emrshare.trace import SerialList, gtin14

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_C, Net, reverts

pytestmark = pytest.mark.integration

MANUFACTURER, DISTRIBUTOR, DISTRIBUTOR_2, PHARMACY, REGULATOR = 10, 11, OUTSIDER, INSURER, PROXY_C
GTIN = gtin14("09506000134352")  # GS1's example GTIN, valid check digit
YEAR = 365 * 86_400
Z = bytes(32)


@pytest.fixture
def sc(net: Net) -> Net:
    """The session deployment with a supply chain (reverted after the test): a
    manufacturer, two distributors, a pharmacy, a regulator, and the hospital's own
    pharmacy (Provider with CAP_PHARMACY)."""
    n = Net(net.w3, net.node, net.deployment, dev_private_keys(12))
    newcomers = (
        (MANUFACTURER, Role.MANUFACTURER),
        (DISTRIBUTOR, Role.DISTRIBUTOR),
        (DISTRIBUTOR_2, Role.DISTRIBUTOR),
    )
    for i, role in newcomers:
        n.as_(i).registry.apply(os.urandom(33), os.urandom(32), "")
        n.pass_proposal(Action.ADMIT, i, role)
    n.pass_proposal(Action.CHANGE_ROLE, PHARMACY, Role.PHARMACY)
    n.pass_proposal(Action.CHANGE_ROLE, REGULATOR, Role.REGULATOR)
    n.as_(0).registry.propose_capabilities(n.addr(HOSPITAL), Capability.PHARMACY)
    pid = n.as_(0).registry.proposal_count() - 1
    n.as_(1).registry.approve(pid)
    n.as_(0).registry.execute(pid)
    return n


def _dt(n: Net, i: int) -> DrugTrace:
    return n.as_(i).drug_trace


def _register(n: Net, lot: str = "L1", quantity: int = 100, **kw: object) -> bytes:
    args: dict[str, object] = {
        "gtin": GTIN,
        "lot": lot,
        "expiry": n.chain_time() + YEAR,
        "quantity": quantity,
        "unit": "pack",
        "certificate_digest": os.urandom(32),
    }
    args.update(kw)
    r = _dt(n, MANUFACTURER).register_batch(**args)  # type: ignore[arg-type]
    return bytes(r.event(BatchRegistered).batch_id)


def _ship(n: Net, sender: int, to: int, batch: bytes, qty: int) -> tuple[bytes, bytes]:
    waybill = os.urandom(32)
    r = _dt(n, sender).ship(n.addr(to), batch, qty, waybill, os.urandom(32))
    return bytes(r.event(Shipped).shipment_id), waybill


def _move(n: Net, sender: int, to: int, batch: bytes, qty: int) -> bytes:
    sid, _ = _ship(n, sender, to, batch, qty)
    _dt(n, to).confirm_receipt(sid, qty)
    return sid


def test_factory_to_patient_reconciles_stock(sc: Net) -> None:
    batch = _register(sc, quantity=100)
    assert batch == batch_id_of(GTIN, "L1")
    b = _dt(sc, PATIENT).batch(batch)
    assert b is not None and b.manufacturer == sc.addr(MANUFACTURER) and b.quantity == 100
    assert _dt(sc, PATIENT).batch(os.urandom(32)) is None
    sid, waybill = _ship(sc, MANUFACTURER, DISTRIBUTOR, batch, 60)
    assert sid == shipment_id_of(sc.addr(MANUFACTURER), waybill)
    view = _dt(sc, PATIENT).shipment(sid)
    assert (view.recipient, view.batch_id, view.quantity) == (sc.addr(DISTRIBUTOR), batch, 60)
    assert view.state is ShipmentState.IN_TRANSIT
    r = _dt(sc, DISTRIBUTOR).confirm_receipt(sid, 58)  # two packs lost in transit
    ev = r.event(Received)
    assert (ev.quantity, ev.discrepancy, ev.recipient) == (58, 2, sc.addr(DISTRIBUTOR))
    assert _dt(sc, PATIENT).shipment(sid).state is ShipmentState.RECEIVED
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 50)
    _move(sc, DISTRIBUTOR, HOSPITAL, batch, 8)  # the hospital's own pharmacy
    link = link_of(os.urandom(32))
    rx = os.urandom(32)
    d = _dt(sc, PHARMACY).dispense(batch, 2, link, rx).event(Dispensed)
    assert (d.link, d.quantity, d.unit_index, d.prescription_id) == (link, 2, NO_UNIT, rx)
    _dt(sc, HOSPITAL).dispense(batch, 8, link_of(os.urandom(32)))
    stock = {i: _dt(sc, PATIENT).stock(batch, sc.addr(i)) for i in (MANUFACTURER, DISTRIBUTOR)}
    assert stock == {MANUFACTURER: 40, DISTRIBUTOR: 0}
    assert _dt(sc, PATIENT).stock(batch, sc.addr(PHARMACY)) == 48
    assert _dt(sc, PATIENT).stock(batch, sc.addr(HOSPITAL)) == 0
    reverts(
        lambda: _dt(sc, HOSPITAL).dispense(batch, 1, link),
        "Trace_InsufficientStock",
        batchId=batch,
        holder=sc.addr(HOSPITAL),
        available=0,
        requested=1,
    )


def test_registration_rules(sc: Net) -> None:
    now = sc.chain_time()
    m = _dt(sc, MANUFACTURER)
    good = {
        "gtin": GTIN,
        "lot": "L2",
        "expiry": now + YEAR,
        "quantity": 10,
        "unit": "vial",
        "certificate_digest": b"\x01" * 32,
    }

    def reg(i: int = MANUFACTURER, **over: object) -> object:
        return _dt(sc, i).register_batch(**{**good, **over})  # type: ignore[arg-type]

    reverts(lambda: reg(DISTRIBUTOR), "Trace_NotManufacturer", caller=sc.addr(DISTRIBUTOR))
    reverts(lambda: reg(gtin=GTIN + 1), "Trace_InvalidGtin", gtin=GTIN + 1)
    reverts(lambda: reg(gtin=10**14), "Trace_InvalidGtin", gtin=10**14)
    reverts(lambda: reg(gtin=0), "Trace_InvalidGtin", gtin=0)
    reverts(lambda: reg(lot=""), "Trace_InvalidLot", length=0)
    reverts(lambda: reg(lot="X" * 21), "Trace_InvalidLot", length=21)
    reverts(lambda: reg(unit=""), "Trace_InvalidUnit", length=0)
    reverts(lambda: reg(unit="u" * 17), "Trace_InvalidUnit", length=17)
    reverts(
        lambda: reg(expiry=now - 1),
        "Trace_InvalidExpiry",
        expiry=now - 1,
        chainTime=lambda t: t >= now,
    )
    reverts(lambda: reg(quantity=0), "Trace_InvalidQuantity")
    reverts(lambda: reg(certificate_digest=Z), "Trace_MissingDigest", which=1)
    reverts(
        lambda: reg(serial_root=b"\x02" * 32, serial_count=9),
        "Trace_InvalidSerials",
        serialCount=9,
        quantity=10,
    )
    reverts(lambda: reg(serial_count=10), "Trace_InvalidSerials", serialCount=10, quantity=10)
    batch = bytes(m.register_batch(**good).event(BatchRegistered).batch_id)  # type: ignore[arg-type]
    reverts(lambda: reg(), "Trace_BatchExists", batchId=batch)
    # The first registration binds the GTIN: another manufacturer cannot squat it.
    assert m.gtin_owner(GTIN) == sc.addr(MANUFACTURER) and m.gtin_owner(GTIN + 10) is None
    sc.pass_proposal(Action.CHANGE_ROLE, DISTRIBUTOR_2, Role.MANUFACTURER)
    rogue = _dt(sc, DISTRIBUTOR_2)
    reverts(
        lambda: rogue.register_batch(**{**good, "lot": "FAKE"}),  # type: ignore[arg-type]
        "Trace_GtinOwned",
        gtin=GTIN,
        owner=sc.addr(MANUFACTURER),
    )
    # The registry's pharmacy bit is the one DrugTrace tests.
    assert sc.as_(0).registry._call("CAP_PHARMACY")[0] == Capability.PHARMACY == 2
    # a suspended or removed manufacturer registers nothing more
    sc.pass_proposal(Action.REMOVE, MANUFACTURER)
    reverts(lambda: reg(lot="L3"), "Trace_NotManufacturer", caller=sc.addr(MANUFACTURER))


def test_shipping_rules(sc: Net) -> None:
    batch = _register(sc, quantity=10)
    m = _dt(sc, MANUFACTURER)
    to = sc.addr(DISTRIBUTOR)
    unknown = os.urandom(32)
    w, inv = os.urandom(32), os.urandom(32)
    reverts(lambda: m.ship(to, unknown, 1, w, inv), "Trace_UnknownBatch", batchId=unknown)
    reverts(lambda: m.ship(to, batch, 0, w, inv), "Trace_InvalidQuantity")
    zero = "0x" + "00" * 20
    reverts(lambda: m.ship(zero, batch, 1, w, inv), "Trace_InvalidRecipient", to=zero)
    me = sc.addr(MANUFACTURER)
    reverts(lambda: m.ship(me, batch, 1, w, inv), "Trace_InvalidRecipient", to=me)
    reverts(lambda: m.ship(to, batch, 1, Z, inv), "Trace_MissingDigest", which=2)
    reverts(lambda: m.ship(to, batch, 1, w, Z), "Trace_MissingDigest", which=3)
    reverts(
        lambda: m.ship(to, batch, 11, w, inv),
        "Trace_InsufficientStock",
        batchId=batch,
        holder=me,
        available=10,
        requested=11,
    )
    sid = bytes(m.ship(to, batch, 4, w, inv).event(Shipped).shipment_id)
    reverts(lambda: m.ship(to, batch, 1, w, inv), "Trace_ShipmentExists", shipmentId=sid)
    # a distributor cannot pass on what it has not confirmed
    reverts(
        lambda: _dt(sc, DISTRIBUTOR).ship(sc.addr(PHARMACY), batch, 1, w, inv),
        "Trace_InsufficientStock",
        batchId=batch,
        holder=to,
        available=0,
        requested=1,
    )


def test_receipt_rules(sc: Net) -> None:
    batch = _register(sc, quantity=10)
    sid, waybill = _ship(sc, MANUFACTURER, DISTRIBUTOR, batch, 5)
    d = _dt(sc, DISTRIBUTOR)
    unknown = os.urandom(32)
    reverts(lambda: d.confirm_receipt(unknown, 1), "Trace_UnknownShipment", shipmentId=unknown)
    reverts(
        lambda: _dt(sc, PHARMACY).confirm_receipt(sid, 5),
        "Trace_NotRecipient",
        shipmentId=sid,
        caller=sc.addr(PHARMACY),
    )
    reverts(
        lambda: d.confirm_receipt(sid, 6),
        "Trace_OverReceipt",
        shipmentId=sid,
        shipped=5,
        received=6,
    )
    d.confirm_receipt(sid, 5)
    reverts(
        lambda: d.confirm_receipt(sid, 5),
        "Trace_AlreadyReceived",
        shipmentId=sid,
        state=int(ShipmentState.RECEIVED),
    )
    reverts(
        lambda: _dt(sc, MANUFACTURER).cancel_shipment(waybill),
        "Trace_AlreadyReceived",
        shipmentId=sid,
        state=int(ShipmentState.RECEIVED),
    )
    # shipped to a non-member (the patient): never confirmed, taken back by the sender
    wrong, w2 = _ship(sc, MANUFACTURER, PATIENT, batch, 3)
    reverts(
        lambda: _dt(sc, PATIENT).confirm_receipt(wrong, 3),
        "Trace_NotConsignee",
        caller=sc.addr(PATIENT),
    )
    # a plain Provider without CAP_PHARMACY is no consignee either
    sc.as_(0).registry.propose_capabilities(sc.addr(HOSPITAL), Capability.NONE)
    pid = sc.as_(0).registry.proposal_count() - 1
    sc.as_(1).registry.approve(pid)
    sc.as_(0).registry.execute(pid)
    hosp, _ = _ship(sc, MANUFACTURER, HOSPITAL, batch, 1)
    reverts(
        lambda: _dt(sc, HOSPITAL).confirm_receipt(hosp, 1),
        "Trace_NotConsignee",
        caller=sc.addr(HOSPITAL),
    )
    other = os.urandom(32)
    reverts(
        lambda: _dt(sc, MANUFACTURER).cancel_shipment(other),
        "Trace_UnknownShipment",
        shipmentId=shipment_id_of(sc.addr(MANUFACTURER), other),
    )
    c = _dt(sc, MANUFACTURER).cancel_shipment(w2).event(ShipmentCancelled)
    assert (c.shipment_id, c.quantity) == (wrong, 3)
    assert _dt(sc, PATIENT).stock(batch, sc.addr(MANUFACTURER)) == 4  # 10 - 5 - 3 + 3 - 1
    reverts(
        lambda: _dt(sc, MANUFACTURER).cancel_shipment(w2),
        "Trace_AlreadyReceived",
        shipmentId=wrong,
        state=int(ShipmentState.CANCELLED),
    )


def test_dispense_rules(sc: Net) -> None:
    batch = _register(sc, quantity=10)
    _move(sc, MANUFACTURER, DISTRIBUTOR, batch, 10)
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 5)
    p = _dt(sc, PHARMACY)
    link = link_of(os.urandom(32))
    reverts(
        lambda: _dt(sc, DISTRIBUTOR).dispense(batch, 1, link),
        "Trace_NotPharmacy",
        caller=sc.addr(DISTRIBUTOR),
    )
    reverts(
        lambda: _dt(sc, PATIENT).dispense(batch, 1, link),
        "Trace_NotPharmacy",
        caller=sc.addr(PATIENT),
    )
    unknown = os.urandom(32)
    reverts(lambda: p.dispense(unknown, 1, link), "Trace_UnknownBatch", batchId=unknown)
    reverts(lambda: p.dispense(batch, 0, link), "Trace_InvalidQuantity")
    reverts(lambda: p.dispense(batch, 1, Z), "Trace_MissingLink")
    reverts(
        lambda: p.dispense(batch, 6, link),
        "Trace_InsufficientStock",
        batchId=batch,
        holder=sc.addr(PHARMACY),
        available=5,
        requested=6,
    )
    reverts(
        lambda: p.dispense_unit(batch, 0, "S0", [], link),
        "Trace_NotSerialized",
        batchId=batch,
    )


def test_expired_batch_is_neither_shipped_nor_dispensed(sc: Net) -> None:
    batch = _register(sc, quantity=4, expiry=sc.chain_time() + 600)
    _move(sc, MANUFACTURER, DISTRIBUTOR, batch, 2)
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 2)
    sc.advance_time(700)
    expiry = _dt(sc, PATIENT).batch(batch).expiry  # type: ignore[union-attr]
    late = {"batchId": batch, "expiry": expiry, "chainTime": lambda t: t >= expiry}
    reverts(lambda: _ship(sc, MANUFACTURER, DISTRIBUTOR, batch, 1), "Trace_Expired", **late)
    reverts(
        lambda: _dt(sc, PHARMACY).dispense(batch, 1, link_of(os.urandom(32))),
        "Trace_Expired",
        **late,
    )


def test_serialized_units_and_counterfeits(sc: Net) -> None:
    serials = SerialList.of(f"SN{i:05d}" for i in range(7))
    batch = _register(sc, lot="SER1", quantity=7, serial_root=serials.root, serial_count=7)
    _move(sc, MANUFACTURER, DISTRIBUTOR, batch, 7)
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 7)
    p = _dt(sc, PHARMACY)
    public = _dt(sc, PATIENT)
    for i in range(7):
        assert public.verify_unit(batch, i, serials.serials[i], serials.proof(i))
    assert not public.verify_unit(batch, 3, "FAKE123", serials.proof(3))  # counterfeit
    assert not public.verify_unit(batch, 2, serials.serials[3], serials.proof(3))  # moved
    assert not public.verify_unit(os.urandom(32), 0, serials.serials[0], serials.proof(0))
    link = link_of(os.urandom(32))
    reverts(lambda: p.dispense(batch, 1, link), "Trace_SerializedBatch", batchId=batch)
    reverts(
        lambda: p.dispense_unit(batch, 3, "FAKE123", serials.proof(3), link),
        "Trace_UnknownSerial",
        batchId=batch,
        index=3,
    )
    reverts(
        lambda: p.dispense_unit(batch, 7, "SN00007", [], link),
        "Trace_UnknownSerial",
        batchId=batch,
        index=7,
    )
    reverts(
        lambda: p.dispense_unit(batch, 3, serials.serials[3], serials.proof(3), Z),
        "Trace_MissingLink",
    )
    d = p.dispense_unit(batch, 3, serials.serials[3], serials.proof(3), link).event(Dispensed)
    assert (d.unit_index, d.quantity) == (3, 1)
    assert public.unit_dispensed(batch, 3) and not public.unit_dispensed(batch, 4)
    reverts(
        lambda: p.dispense_unit(batch, 3, serials.serials[3], serials.proof(3), link),
        "Trace_SerialDispensed",
        batchId=batch,
        index=3,
    )
    assert public.stock(batch, sc.addr(PHARMACY)) == 6


def test_recall_notices_and_adverse_events(sc: Net) -> None:
    batch = _register(sc, quantity=10)
    _move(sc, MANUFACTURER, DISTRIBUTOR, batch, 10)
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 6)
    links = [link_of(os.urandom(32)) for _ in range(3)]
    for link in links:
        _dt(sc, PHARMACY).dispense(batch, 1, link)
    reason = keccak(b"synthetic: particulate matter found")
    unknown = os.urandom(32)
    reverts(
        lambda: _dt(sc, REGULATOR).recall(unknown, reason), "Trace_UnknownBatch", batchId=unknown
    )
    reverts(
        lambda: _dt(sc, DISTRIBUTOR).recall(batch, reason),
        "Trace_NotRecaller",
        batchId=batch,
        caller=sc.addr(DISTRIBUTOR),
    )
    reverts(
        lambda: _dt(sc, REGULATOR).notify_recall(batch, links),
        "Trace_NotRecalled",
        batchId=batch,
    )
    reverts(lambda: _dt(sc, REGULATOR).recall(batch, Z), "Trace_MissingDigest", which=4)
    # another manufacturer may not recall this one's batch
    sc.as_(PATIENT).registry.apply(os.urandom(33), os.urandom(32), "")
    sc.pass_proposal(Action.ADMIT, PATIENT, Role.MANUFACTURER)
    reverts(
        lambda: _dt(sc, PATIENT).recall(batch, reason),
        "Trace_NotRecaller",
        batchId=batch,
        caller=sc.addr(PATIENT),
    )
    _dt(sc, MANUFACTURER).recall(batch, reason)
    reverts(
        lambda: _dt(sc, REGULATOR).recall(batch, reason), "Trace_AlreadyRecalled", batchId=batch
    )
    reverts(lambda: _dt(sc, PHARMACY).dispense(batch, 1, links[0]), "Trace_Recalled", batchId=batch)
    reverts(lambda: _ship(sc, DISTRIBUTOR, PHARMACY, batch, 1), "Trace_Recalled", batchId=batch)
    reverts(lambda: _dt(sc, REGULATOR).notify_recall(batch, []), "Trace_InvalidLinks", count=0)
    reverts(
        lambda: _dt(sc, REGULATOR).notify_recall(batch, [Z] * 257),
        "Trace_InvalidLinks",
        count=257,
    )
    reverts(
        lambda: _dt(sc, PHARMACY).notify_recall(batch, links),
        "Trace_NotRecaller",
        batchId=batch,
        caller=sc.addr(PHARMACY),
    )
    r = _dt(sc, REGULATOR).notify_recall(batch, links)
    assert [e.link for e in r.events if isinstance(e, RecallNotice)] == links
    mine = list(_dt(sc, PATIENT).events(RecallNotice, link=links[1]))
    assert [(e.link, e.batch_id) for e in mine] == [(links[1], batch)]
    # adverse events: a clinician (Provider) only, on a known batch
    digest = os.urandom(32)
    reverts(
        lambda: _dt(sc, PHARMACY).report_adverse_event(batch, digest, 2),
        "Trace_NotClinician",
        caller=sc.addr(PHARMACY),
    )
    h = _dt(sc, HOSPITAL)
    reverts(
        lambda: h.report_adverse_event(unknown, digest, 2), "Trace_UnknownBatch", batchId=unknown
    )
    reverts(lambda: h.report_adverse_event(batch, Z, 2), "Trace_MissingDigest", which=5)
    reverts(
        lambda: h.report_adverse_event(batch, digest, 0), "Trace_InvalidSeriousness", seriousness=0
    )
    reverts(
        lambda: h.report_adverse_event(batch, digest, 5), "Trace_InvalidSeriousness", seriousness=5
    )
    ev = h.report_adverse_event(batch, digest, 3).event(AdverseEventReported)
    assert (ev.batch_id, ev.reporter, ev.report_digest, ev.seriousness) == (
        batch,
        sc.addr(HOSPITAL),
        digest,
        3,
    )


def test_refusals_are_supply_refused_with_a_hint(sc: Net) -> None:
    with pytest.raises(SupplyRefused) as info:
        _dt(sc, PHARMACY).dispense(os.urandom(32), 1, link_of(os.urandom(32)))
    assert "counterfeit" in str(info.value) and "Trace_UnknownBatch" in str(info.value)


def test_on_chain_ids_match_the_off_chain_formulas(sc: Net) -> None:
    secret = os.urandom(32)
    assert link_of(secret) == keccak(
        encode(["string", "bytes32"], ["emrshare-drug-link/1", secret])
    )
    assert batch_id_of(GTIN, "L9") == keccak(encode(["uint64", "string"], [GTIN, "L9"]))


def test_gas_budgets(sc: Net) -> None:
    """Issue 17: ship <= 60,000 gas and dispense <= 50,000 (benchmarks/gas_report.py prints
    every figure)."""
    batch = _register(sc, quantity=1000)
    sid, _ = _ship(sc, MANUFACTURER, DISTRIBUTOR, batch, 500)  # first ship of the batch
    _dt(sc, DISTRIBUTOR).confirm_receipt(sid, 500)
    _move(sc, DISTRIBUTOR, PHARMACY, batch, 100)
    r = _dt(sc, DISTRIBUTOR).ship(sc.addr(PHARMACY), batch, 10, os.urandom(32), os.urandom(32))
    assert r.gas_used <= 60_000, r.gas_used
    _dt(sc, PHARMACY).dispense(batch, 1, link_of(os.urandom(32)))
    r = _dt(sc, PHARMACY).dispense(batch, 1, link_of(os.urandom(32)), os.urandom(32))
    assert r.gas_used <= 50_000, r.gas_used
