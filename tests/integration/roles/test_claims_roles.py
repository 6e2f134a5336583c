"""Insurance claims through the facades (issue 16) on the in-process network with real
proxies: a hospital files a FHIR Claim record and its commitment, the patient consents to
that claim only, the insurer reads the claim and its records (and nothing else of the
category) and adjudicates once, settlement follows, the patient lists each claim and its
steps, and the insurance bureau aggregates and checks billed against dispensed items."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from emrshare import ConsortiumAdmin, Patient, Provider, Requester
from emrshare.chain import ClaimStatus, Role
from emrshare.crypto import MemberKeys, PatientKeys, SealedEntry
from emrshare.devnet import LocalNetwork
from emrshare.errors import AccessDenied, ClaimRefused, ConfigurationError, InvalidInput
from emrshare.roles import ClaimItem, ClaimReason
from emrshare.roles._common import run_blocking
from emrshare.roles._reads import inline

pytestmark = pytest.mark.integration

CATEGORY = "encounters"


@dataclass
class World:
    net: LocalNetwork
    patient: Patient
    hospital: Provider
    stranger: Provider
    insurer: Requester
    other_insurer: Requester
    pharmacy: Requester
    bureau: Requester


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("claims-roles")
    net = LocalNetwork.start(tmp / "net", proxies=2, threshold=2)
    admin = ConsortiumAdmin(net, net.admin_key)
    k = net.dev_keys
    hospital = Provider(net, MemberKeys.generate(ethereum_key=k[0]), state_dir=tmp / "h")
    stranger = Provider(net, MemberKeys.generate(ethereum_key=k[1]), state_dir=tmp / "s")
    insurer = Requester(net, MemberKeys.generate(ethereum_key=k[2]), state_dir=tmp / "i")
    other = Requester(net, MemberKeys.generate(ethereum_key=k[4]), state_dir=tmp / "i2")
    pharmacy = Requester(net, MemberKeys.generate(ethereum_key=k[5]), state_dir=tmp / "ph")
    bureau = Requester(net, MemberKeys.generate(ethereum_key=k[6]), state_dir=tmp / "b")
    patient = Patient(net, PatientKeys(os.urandom(32), ethereum_key=k[3]), state_dir=tmp / "p")
    members = (
        (hospital, Role.PROVIDER),
        (stranger, Role.PROVIDER),
        (insurer, Role.INSURER),
        (other, Role.INSURER),
        (pharmacy, Role.PHARMACY),
        (bureau, Role.REGULATOR),
    )
    try:
        for m, role in members:
            m.apply()
            admin.admit(m.address, role)
        patient.register()
        patient.authorize_writer(hospital.address, CATEGORY)
        patient.authorize_writer(hospital.address, "prescriptions")
        patient.grant(pharmacy.address, "prescriptions", expires=timedelta(days=2))
        yield World(net, patient, hospital, stranger, insurer, other, pharmacy, bureau)
    finally:
        for x in (hospital, stranger, insurer, other, pharmacy, bureau, patient):
            x.close()
        net.close()


def _encounter(world: World, n: int = 2) -> list[bytes]:
    return [
        bytes(
            world.hospital.add_record(world.patient.address, CATEGORY, os.urandom(64) + b"%d" % i)
        )
        for i in range(n)
    ]


def test_file_consent_read_adjudicate_partial_settle_list_report(world: World) -> None:
    p, h, ins = world.patient, world.hospital, world.insurer
    records = _encounter(world)
    unrelated = _encounter(world, 1)[0]  # same category, not in the claim
    dispensed = h.prescriptions.issue(p.address, "amoxicillin 500 mg", dosage="3 a day")
    world.pharmacy.prescriptions.dispense(p.address, dispensed.record_id)
    never = h.prescriptions.issue(p.address, "ibuprofen 400 mg", dosage="as needed")
    items = [
        ClaimItem("consultation", 20_000),
        ClaimItem("amoxicillin", 1_500, dispensed.prescription_id),
        ClaimItem("ibuprofen", 800, never.prescription_id),
    ]
    filed = h.claims.file(p.address, ins.address, CATEGORY, records=records, items=items)
    assert filed.amount == 22_300
    assert set(filed.records) == {*records, bytes(filed.record_id)}
    assert filed.items == (dispensed.prescription_id, never.prescription_id)

    (listed,) = [c for c in p.claims.list() if c.claim_id == filed.claim_id]
    assert (listed.status, listed.amount, listed.hospital, listed.insurer) == (
        ClaimStatus.FILED, 22_300, h.address, ins.address
    )  # fmt: skip
    assert [c.claim_id for c in ins.claims.incoming(open_only=True)] == [filed.claim_id]

    # Before consent the insurer reads nothing of it.
    with pytest.raises(AccessDenied):
        ins.claims.read(filed.claim_id)

    grant = p.claims.consent(filed.claim_id, expires=timedelta(days=14))
    assert sorted(bytes(r) for r in grant.records) == sorted(bytes(r) for r in filed.records)
    assert p.claims.get(filed.claim_id).status is ClaimStatus.CONSENTED

    read = ins.claims.read(filed.claim_id)
    assert read.document_record == filed.record_id
    assert read.document.total == 22_300 and read.document.patient == p.address
    assert {bytes(r) for r, _ in read.records} == set(records)
    # A record of the same category outside the claim: not readable under the claim.
    with pytest.raises(AccessDenied):
        run_read(world, unrelated)

    info = ins.claims.adjudicate(filed.claim_id, 20_000, ClaimReason.EXCEEDS_LIMIT)
    assert (info.status, info.approved, info.reason) == (
        ClaimStatus.PARTIALLY_APPROVED, 20_000, ClaimReason.EXCEEDS_LIMIT
    )  # fmt: skip
    with pytest.raises(ClaimRefused) as twice:
        ins.claims.adjudicate(filed.claim_id, 20_000, ClaimReason.EXCEEDS_LIMIT)
    assert twice.value.name == "Claims_AlreadyAdjudicated"

    steps = [s for s in p.claims.history() if s.claim_id == filed.claim_id]
    assert [s.kind for s in steps] == ["filed", "consented", "adjudicated", "settled"]
    assert steps[-1].who == ins.address and "20000" in steps[-1].detail
    assert p.claims.get(filed.claim_id).status is ClaimStatus.PARTIALLY_APPROVED
    # The insurer's reads are in the patient's audit trail.
    served = {bytes(r) for e in p.audit() if e.requester == ins.address for r in e.record_ids}
    assert set(filed.records) <= served and unrelated not in served

    report = world.bureau.claims.report()
    hosp, insurer_row = report.by_hospital[h.address], report.by_insurer[ins.address]
    for row in (hosp, insurer_row):
        assert row["filed"] >= 1 and row["partially_approved"] >= 1
        assert row["billed"] >= 22_300 and row["paid"] >= 20_000
    mine = [m for m in report.mismatches if m.claim_id == filed.claim_id]
    assert [m.prescription_id for m in mine] == [never.prescription_id]
    assert mine[0].hospital == h.address


def run_read(world: World, record: bytes) -> None:
    """The insurer reads ``record`` through its client: no grant covers it."""
    reads = world.insurer._reads
    run_blocking(reads.open(world.patient.address, record, inline), "test")


def test_attack_insurer_reads_a_record_outside_the_claim_through_the_proxies(
    world: World,
) -> None:
    p, h, ins = world.patient, world.hospital, world.insurer
    records = _encounter(world)
    outside = _encounter(world, 1)[0]
    filed = h.claims.file(
        p.address, ins.address, CATEGORY, records=records, items=[ClaimItem("visit", 5_000)]
    )
    p.claims.consent(filed.claim_id, expires=timedelta(days=1))
    reads = ins._reads
    plan = reads.plan(p.address, records[0])
    other = reads.entry_event(p.address, outside)
    forged = dataclasses.replace(
        plan, event=other, sealed=SealedEntry.from_bytes(bytes(other.entry))
    )

    async def ask() -> object:
        client = reads.client()
        async with client:
            return await reads._reencrypt(client, forged)

    with pytest.raises(AccessDenied) as refused:
        run_blocking(ask(), "test")
    assert set(refused.value.reasons.values()) == {"record_not_in_scope"}


def test_refusals_through_the_facades(world: World) -> None:
    p, h, ins = world.patient, world.hospital, world.insurer
    records = _encounter(world)
    # A hospital with no writer authorization for the patient.
    with pytest.raises(AccessDenied):
        world.stranger.claims.file(
            p.address, ins.address, CATEGORY, records=records, items=[ClaimItem("x", 1)]
        )
    with pytest.raises(InvalidInput):
        h.claims.file(p.address, ins.address, CATEGORY, records=records, items=[])
    before = len(p.records(CATEGORY))
    with pytest.raises(InvalidInput, match="not an active Insurer"):
        h.claims.file(
            p.address, world.pharmacy.address, CATEGORY, records=records, items=[ClaimItem("x", 1)]
        )
    assert len(p.records(CATEGORY)) == before  # refused before the document was written
    filed = h.claims.file(
        p.address, ins.address, CATEGORY, records=records, items=[ClaimItem("visit", 9_000)]
    )
    # Not the claim's insurer.
    with pytest.raises(ClaimRefused) as wrong:
        world.other_insurer.claims.adjudicate(filed.claim_id, 0, ClaimReason.NOT_COVERED)
    assert wrong.value.name == "Claims_NotInsurer"
    assert wrong.value.args_by_name["caller"] == world.other_insurer.address
    # Approval before consent; a denial needs none.
    with pytest.raises(ClaimRefused) as early:
        ins.claims.adjudicate(filed.claim_id, 9_000)
    assert early.value.name == "Claims_NotConsented"
    denied = ins.claims.adjudicate(filed.claim_id, 0, "no-consent")
    assert (denied.status, denied.reason) == (ClaimStatus.DENIED, ClaimReason.NO_CONSENT)
    with pytest.raises(ConfigurationError):
        p.claims.consent(filed.claim_id, expires=timedelta(days=1))
    with pytest.raises(InvalidInput):
        ClaimReason.of("diagnosis")
