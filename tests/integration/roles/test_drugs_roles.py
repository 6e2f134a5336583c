"""Drug traceability through the facades (issue 17) on the in-process network: a
manufacturer registers batches (one serialized), shipments move with salted invoices
and waybills kept 0600 by their senders, recipients confirm, a pharmacy and a hospital's
own pharmacy dispense to a patient's blinded links, the regulator runs the two-invoice
check (with and without the plaintexts handed in), traces a revealed dispense to the
factory, recalls and notifies, and the patient sees its dispenses, the notice and what
a pack check says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from hashlib import sha256
from typing import Any

import pytest

from emrshare import ConsortiumAdmin, Patient, Provider, Regulator, Requester
from emrshare.chain import Capability, Role, ShipmentState, link_of, prescription_link_of
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.errors import InvalidInput, NotFound, SupplyRefused
from emrshare.fhir.adverse_event import read_adverse_event
from emrshare.roles import PackStatus, SentShipment
from emrshare.roles._drug_checks import read_ledger
from emrshare.roles._drugs import ADVERSE_CATEGORY
from emrshare.trace import Invoice, unit_uri

pytestmark = pytest.mark.integration

GTIN = "09506000134352"
SERIALS = [f"SN{i:03d}" for i in range(5)]


@dataclass
class World:
    net: LocalNetwork
    maker: Requester
    dist: Requester
    dist2: Requester
    pharmacy: Requester
    hospital: Provider
    regulator: Regulator
    patient: Patient


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("drugs-roles")
    net = LocalNetwork.start(tmp / "net", proxies=2, threshold=2)
    admin = ConsortiumAdmin(net, net.admin_key)
    k = net.dev_keys

    def member(cls: type[Any], i: int, name: str) -> Any:
        return cls(net, MemberKeys.generate(ethereum_key=k[i]), state_dir=tmp / name)

    w = World(
        net,
        member(Requester, 0, "maker"),
        member(Requester, 1, "dist"),
        member(Requester, 2, "dist2"),
        member(Requester, 4, "pharmacy"),
        member(Provider, 5, "hospital"),
        member(Regulator, 6, "regulator"),
        Patient(net, PatientKeys(os.urandom(32), ethereum_key=k[3]), state_dir=tmp / "p"),
    )
    roles = (
        (w.maker, Role.MANUFACTURER),
        (w.dist, Role.DISTRIBUTOR),
        (w.dist2, Role.DISTRIBUTOR),
        (w.pharmacy, Role.PHARMACY),
        (w.hospital, Role.PROVIDER),
        (w.regulator, Role.REGULATOR),
    )
    try:
        for m, role in roles:
            m.apply()
            admin.admit(m.address, role)
        admin.set_capabilities(w.hospital.address, Capability.PHARMACY)
        w.patient.register()
        w.patient.authorize_writer(w.hospital.address, ADVERSE_CATEGORY)
        yield w
    finally:
        for m, _ in roles:
            m.close()
        w.patient.close()
        net.close()


def _ship(sender: Requester | Provider, to: str, batch: bytes, qty: int, n: int) -> SentShipment:
    return sender.drugs.ship(
        to, batch, qty, invoice_number=f"INV-{n}", amount_minor=1000 * n, tax_id="91310000MA1K"
    )


def test_supply_chain_audit_trace_recall(world: World) -> None:
    w = world
    lot = "L" + os.urandom(3).hex()
    batch = w.maker.drugs.register_batch(
        GTIN, lot, expiry=date.today() + timedelta(days=365), quantity=100, certificate=b"%PDF"
    )
    bid = batch.batch_id
    s1 = _ship(w.maker, w.dist.address, bid, 70, 1)
    assert w.dist.drugs.receive(s1.shipment_id) == 0
    s2 = _ship(w.dist, w.pharmacy.address, bid, 30, 2)
    s3 = _ship(w.dist, w.hospital.address, bid, 20, 3)
    s4 = _ship(w.dist, w.dist2.address, bid, 20, 4)
    for m, s in ((w.pharmacy, s2), (w.hospital, s3), (w.dist2, s4)):
        m.drugs.receive(s.shipment_id)
    s5 = _ship(w.dist2, w.pharmacy.address, bid, 10, 5)
    assert w.pharmacy.drugs.receive(s5.shipment_id, 9) == 1  # one pack broken in transit

    # The plaintexts are kept private by their senders, and only there.
    for m, s in ((w.maker, s1), (w.dist, s2)):
        assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o700
        assert m.drugs.invoices([s.shipment_id]) == [s.invoice]
    with pytest.raises(NotFound, match="sent no shipment"):
        w.pharmacy.drugs.invoices([s1.shipment_id])

    # The patient's links: a fresh one per dispense, unlinkable without its keys.
    l1, l2 = w.patient.drugs.new_link(), w.patient.drugs.new_link()
    assert l1.index + 1 == l2.index and l1.link != l2.link
    rx = os.urandom(32)  # one prescription, two fills: not tied together on chain
    w.pharmacy.drugs.dispense(bid, 2, l1.link, prescription_id=rx)
    w.hospital.drugs.dispense(bid, 1, l2.link, prescription_id=rx)
    mine = w.patient.drugs.dispenses()
    recorded = [bytes(d.event.prescription_id) for d in mine]
    assert recorded == [prescription_link_of(l1.link, rx), prescription_link_of(l2.link, rx)]
    assert rx not in recorded and recorded[0] != recorded[1]
    assert [(d.index, d.event.quantity) for d in mine] == [(l1.index, 2), (l2.index, 1)]
    assert not any(d.recalled or d.notified for d in mine)

    # The two-invoice check: three hospital receipts; the one via dist2 has three invoices
    # and a short receipt.
    report = w.regulator.two_invoice_report()
    by_id = {f.shipment_id: f for f in report.findings}
    assert set(by_id) >= {s2.shipment_id, s3.shipment_id, s5.shipment_id}
    assert by_id[s2.shipment_id].ok and by_id[s3.shipment_id].ok
    assert by_id[s5.shipment_id].reasons == ("extra_intermediary", "quantity_mismatch")
    assert s4.shipment_id not in by_id  # a distributor's receipt is not a hospital's
    # With the plaintexts handed in: all match, but dist2's was not handed in.
    handed = [*w.maker.drugs.invoices(), *w.dist.drugs.invoices()]
    checked = {f.shipment_id: f for f in w.regulator.two_invoice_report(handed).findings}
    assert checked[s2.shipment_id].ok
    assert "invoice_missing" in checked[s5.shipment_id].reasons
    forged = Invoice(
        "INV-2", 1, "91310000MA1K", bid, 30, s2.invoice.salt, shipment_id=s2.shipment_id
    )
    checked = {f.shipment_id: f for f in w.regulator.two_invoice_report([forged]).findings}
    assert "invoice_mismatch" in checked[s2.shipment_id].reasons

    # After a reaction the patient reveals one link's secret; the regulator traces it.
    [t] = w.regulator.trace_dispense([w.patient.drugs.reveal(l1.index)])
    assert t.manufacturer == w.maker.address and t.lot == lot
    [route] = t.chains
    assert [leg.shipment_id for leg in route.legs or ()] == [s1.shipment_id, s2.shipment_id]

    # The clinician's report: a FHIR AdverseEvent record for the patient, a notice on chain
    # naming the batch and the record's digest, never the patient.
    rep = w.hospital.drugs.report_adverse_event(
        w.patient.address, bid, description="urticaria after the second dose", seriousness=3
    )
    [ae] = w.regulator.drugs.adverse_events(bid)
    assert (ae.reporter, ae.seriousness, bytes(ae.report_digest)) == (
        w.hospital.address,
        3,
        rep.digest,
    )
    record = w.patient.read(rep.record_id)
    assert sha256(record).digest() == rep.digest
    assert read_adverse_event(record) == (bid, 3)
    assert w.patient.address.lower()[2:] not in repr(ae).lower()

    # Where every unit went: the holders, down to the pharmacies and their patients.
    bt = w.regulator.drugs.trace_batch(bid)
    held = {
        h.account: (h.received, h.shipped, h.dispensed, h.patients, h.stock) for h in bt.holders
    }
    assert held[w.maker.address] == (0, 70, 0, 0, 30)
    assert held[w.dist.address] == (70, 70, 0, 0, 0)
    assert held[w.pharmacy.address] == (39, 0, 2, 1, 37)
    assert held[w.hospital.address] == (20, 0, 1, 1, 19)
    assert (bt.dispensed, bt.patients, len(bt.hops)) == (3, 2, 5)

    # Recall with notices: each dispensed link once; the patient sees them.
    code = f"(01){GTIN}(10){lot}"
    assert w.patient.drugs.check(code).status is PackStatus.GENUINE
    assert w.regulator.recall(bid, "stability failure at 18 months") == 2
    assert w.regulator.drugs.notify_recall(bid) == 0  # nobody is told twice
    assert {bytes(n.link) for n in w.patient.drugs.recall_notices()} == {l1.link, l2.link}
    assert all(d.recalled and d.notified for d in w.patient.drugs.dispenses())
    check = w.patient.drugs.check(code)
    assert check.status is PackStatus.RECALLED and check.genuine
    with pytest.raises(SupplyRefused, match="recalled") as info:
        w.pharmacy.drugs.dispense(bid, 1, w.patient.drugs.new_link().link)
    assert info.value.name == "Trace_Recalled"


def test_serialized_units_and_the_counterfeit_check(world: World) -> None:
    w = world
    lot = "S" + os.urandom(3).hex()
    b = w.maker.drugs.register_batch(
        GTIN,
        lot,
        expiry=date.today() + timedelta(days=30),
        quantity=5,
        certificate=b"c",
        serials=SERIALS,
    )
    assert b.serials is not None
    s = _ship(w.maker, w.pharmacy.address, b.batch_id, 5, 9)
    w.pharmacy.drugs.receive(s.shipment_id)
    link = w.patient.drugs.new_link().link
    assert w.pharmacy.drugs.dispense_unit(b.batch_id, b.serials, "SN003", link) == 3
    with pytest.raises(SupplyRefused) as info:
        w.pharmacy.drugs.dispense_unit(b.batch_id, b.serials, "SN003", link)
    assert info.value.name == "Trace_SerialDispensed"
    with pytest.raises(InvalidInput, match="not in this batch"):
        w.pharmacy.drugs.dispense_unit(b.batch_id, b.serials, "FAKE1", link)
    good = w.patient.drugs.check(unit_uri(GTIN, lot, "SN001"), serials=b.serials)
    assert good.status is PackStatus.GENUINE and good.unit_dispensed is False
    copied = w.patient.drugs.check(unit_uri(GTIN, lot, "SN003"), serials=b.serials)
    assert copied.status is PackStatus.GENUINE and copied.unit_dispensed is True
    fake = w.patient.drugs.check(unit_uri(GTIN, lot, "SN999"), serials=b.serials)
    assert fake.status is PackStatus.UNKNOWN_SERIAL and not fake.genuine
    unknown = w.patient.drugs.check(f"(01){GTIN}(10)NOSUCHLOT")
    assert unknown.status is PackStatus.UNKNOWN_BATCH and unknown.batch is None
    with pytest.raises(InvalidInput, match="serial list"):
        w.patient.drugs.check(unit_uri(GTIN, lot, "SN001"))
    with pytest.raises(InvalidInput, match="one serial per unit"):
        w.maker.drugs.register_batch(
            GTIN, "X1", expiry=date.today(), quantity=6, certificate=b"c", serials=SERIALS
        )


def test_cancel_and_refusals(world: World) -> None:
    w = world
    lot = "C" + os.urandom(3).hex()
    b = w.maker.drugs.register_batch(
        GTIN, lot, expiry=date.today() + timedelta(days=30), quantity=10, certificate=b"c"
    )
    s = _ship(w.maker, w.patient.address, b.batch_id, 10, 7)
    with pytest.raises(SupplyRefused) as info:
        _ship(w.maker, w.dist.address, b.batch_id, 1, 8)
    assert info.value.name == "Trace_InsufficientStock"
    w.maker.drugs.cancel(s.shipment_id)
    assert w.maker.drugs.shipment_state(s.shipment_id) is ShipmentState.CANCELLED
    _ship(w.maker, w.dist.address, b.batch_id, 10, 8)
    with pytest.raises(InvalidInput, match="GTIN"):
        w.maker.drugs.register_batch("09506000134353", "L", expiry=0, quantity=1, certificate=b"c")
    with pytest.raises(InvalidInput, match="patient link"):
        w.pharmacy.drugs.dispense(b.batch_id, 1, bytes(32))
    with pytest.raises(SupplyRefused) as info:
        w.dist.drugs.register_batch(
            GTIN, "D1", expiry=date.today() + timedelta(days=9), quantity=1, certificate=b"c"
        )
    assert info.value.name == "Trace_NotManufacturer"


def test_a_restored_patient_continues_after_its_used_links(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    w = world
    used = [w.patient.drugs.new_link() for _ in range(3)]
    lot = "R" + os.urandom(3).hex()
    b = w.maker.drugs.register_batch(
        GTIN, lot, expiry=date.today() + timedelta(days=30), quantity=3, certificate=b"c"
    )
    s = _ship(w.maker, w.pharmacy.address, b.batch_id, 3, 6)
    w.pharmacy.drugs.receive(s.shipment_id)
    w.pharmacy.drugs.dispense(b.batch_id, 1, used[-1].link)
    again = Patient(w.net, w.patient.keys, state_dir=tmp_path_factory.mktemp("restored"))
    try:
        nxt = again.drugs.new_link()
        assert nxt.index == used[-1].index + 1
        assert link_of(again.drugs.reveal(nxt.index)) == nxt.link
        assert any(d.index == used[-1].index for d in again.drugs.dispenses())
    finally:
        again.close()
    assert len(read_ledger(w.net.contracts.drug_trace).batches) >= 4
