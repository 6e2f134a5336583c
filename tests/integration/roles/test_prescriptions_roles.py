"""E-prescriptions through the facades (issue 15) on the in-process network: a provider
issues a MedicationRequest record and its commitment, a pharmacy verifies and dispenses
the allowed fills and no more, the prescriber cancels, the regulator counts; forged,
copied and foreign records are refused with a reason each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import ConsortiumAdmin, Patient, Provider, Requester
from emrshare.chain import PrescriptionStatus, Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    NotFound,
    PrescriptionForged,
    PrescriptionRefused,
)
from emrshare.fhir import FhirVersion
from emrshare.fhir.prescription import read_prescription

pytestmark = pytest.mark.integration


@dataclass
class World:
    net: LocalNetwork
    patient: Patient
    doctor: Provider
    other: Provider
    pharmacy: Requester


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rx-roles")
    net = LocalNetwork.start(tmp / "net", proxies=2, threshold=2)
    admin = ConsortiumAdmin(net, net.admin_key)
    keys = net.dev_keys
    doctor = Provider(net, MemberKeys.generate(ethereum_key=keys[0]), state_dir=tmp / "d")
    other = Provider(net, MemberKeys.generate(ethereum_key=keys[1]), state_dir=tmp / "o")
    pharmacy = Requester(net, MemberKeys.generate(ethereum_key=keys[2]), state_dir=tmp / "ph")
    patient = Patient(net, PatientKeys(os.urandom(32), ethereum_key=keys[3]), state_dir=tmp / "p")
    try:
        for m, role in ((doctor, Role.PROVIDER), (other, Role.PROVIDER), (pharmacy, Role.PHARMACY)):
            m.apply()
            admin.admit(m.address, role)
        patient.register()
        patient.authorize_writer(doctor.address, "prescriptions")
        patient.authorize_writer(other.address, "prescriptions")
        patient.grant(pharmacy.address, "prescriptions", expires=timedelta(days=2))
        yield World(net, patient, doctor, other, pharmacy)
    finally:
        for x in (doctor, other, pharmacy, patient):
            x.close()
        net.close()


def test_issue_verify_dispense_the_allowed_fills_and_no_more(world: World) -> None:
    rx = world.doctor.prescriptions.issue(
        world.patient.address,
        "amoxicillin 500 mg capsule",
        dosage="1 capsule 3 times a day for 7 days",
        fills=2,
        code="308191",
    )
    checked = world.pharmacy.prescriptions.verify(world.patient.address, rx.record_id)
    assert checked.prescription_id == rx.prescription_id
    assert checked.document.medication == "amoxicillin 500 mg capsule"
    assert checked.document.prescriber == world.doctor.address
    assert checked.status is PrescriptionStatus.ACTIVE and checked.fills_left == 2
    first = world.pharmacy.prescriptions.dispense(world.patient.address, rx.record_id)
    assert (first.prescription_id, first.record_id, first.fill, first.fills) == (
        rx.prescription_id, rx.record_id, 1, 2
    )  # fmt: skip
    assert world.pharmacy.prescriptions.dispense(world.patient.address, rx.record_id).fill == 2
    with pytest.raises(PrescriptionRefused) as refused:
        world.pharmacy.prescriptions.dispense(world.patient.address, rx.record_id)
    assert refused.value.name == "Prescriptions_AlreadyDispensed"
    assert refused.value.args_by_name["fills"] == 2
    again = world.pharmacy.prescriptions.verify(world.patient.address, rx.record_id)
    assert again.status is PrescriptionStatus.DISPENSED
    # No drug name on chain: the commitment is all the contract holds.
    assert b"amoxicillin" not in rx.prescription_id
    counts = world.pharmacy.prescriptions.counts()
    assert counts.by_pharmacy[world.pharmacy.address]["fills"] >= 2
    assert counts.by_prescriber[world.doctor.address]["dispensed"] >= 1


def test_cancelled_prescription_is_not_dispensed(world: World) -> None:
    rx = world.doctor.prescriptions.issue(
        world.patient.address, "ibuprofen 400 mg", dosage="as needed", fills=1
    )
    world.doctor.prescriptions.cancel(rx.prescription_id)
    with pytest.raises(PrescriptionRefused) as refused:
        world.pharmacy.prescriptions.dispense(world.patient.address, rx.record_id)
    assert refused.value.name == "Prescriptions_Cancelled"
    with pytest.raises(PrescriptionRefused) as not_issuer:
        world.other.prescriptions.cancel(rx.prescription_id)
    assert not_issuer.value.name in {"Prescriptions_NotIssuer", "Prescriptions_Cancelled"}
    counts = world.pharmacy.prescriptions.counts()
    assert counts.by_prescriber[world.doctor.address]["cancelled"] >= 1


def test_a_document_never_issued_on_chain_is_refused(world: World) -> None:
    rx = world.doctor.prescriptions.issue(
        world.patient.address, "paracetamol 500 mg", dosage="2 tablets", fills=1
    )
    data = world.pharmacy.read(world.patient.address, rx.record_id)
    # The same prescriber writes a tampered copy (more fills): its commitment is unknown.
    tampered = data.replace(b'"numberOfRepeatsAllowed":0', b'"numberOfRepeatsAllowed":5')
    assert tampered != data and read_prescription(tampered).fills == 6
    rid = world.doctor.add_record(
        world.patient.address, "prescriptions", tampered, media_type=FhirVersion.R4.media_type
    )
    with pytest.raises(PrescriptionForged) as forged:
        world.pharmacy.prescriptions.dispense(world.patient.address, rid)
    assert forged.value.reason == "unknown_commitment"


def test_a_copy_written_by_another_provider_is_refused(world: World) -> None:
    rx = world.doctor.prescriptions.issue(
        world.patient.address, "salbutamol inhaler", dosage="2 puffs", fills=1
    )
    data = world.pharmacy.read(world.patient.address, rx.record_id)
    rid = world.other.add_record(
        world.patient.address, "prescriptions", data, media_type=FhirVersion.R4.media_type
    )
    with pytest.raises(PrescriptionForged) as forged:
        world.pharmacy.prescriptions.verify(world.patient.address, rid)
    assert forged.value.reason == "wrong_prescriber"


def test_a_record_that_is_not_a_prescription_is_refused(world: World) -> None:
    rid = world.doctor.add_record(
        world.patient.address, "prescriptions", b"take two aspirin", media_type="text/plain"
    )
    with pytest.raises(PrescriptionForged) as forged:
        world.pharmacy.prescriptions.verify(world.patient.address, rid)
    assert forged.value.reason == "not_a_prescription"
    listed = world.pharmacy.prescriptions.readable(world.patient.address)
    assert listed and all(p.record_id != rid for p in listed)


def test_only_a_provider_issues(world: World) -> None:
    with pytest.raises(ConfigurationError):
        world.pharmacy.prescriptions.issue(world.patient.address, "x", dosage="y")


def test_a_pharmacy_granted_one_prescription_reads_and_dispenses_only_that_one(
    world: World, tmp_path: Path
) -> None:
    """The patient scopes a grant to one prescription record: the pharmacy lists, verifies
    and dispenses it, and gets nothing of the patient's other prescriptions."""
    mine = world.doctor.prescriptions.issue(
        world.patient.address, "metformin 500 mg tablet", dosage="1 tablet twice a day"
    )
    other = world.doctor.prescriptions.issue(
        world.patient.address, "sertraline 50 mg tablet", dosage="1 tablet a day"
    )
    admin = ConsortiumAdmin(world.net, world.net.admin_key)
    key = world.net.dev_keys[4]
    pharmacy = Requester(world.net, MemberKeys.generate(ethereum_key=key), state_dir=tmp_path)
    try:
        pharmacy.apply()
        admin.admit(pharmacy.address, Role.PHARMACY)
        g = world.patient.grant(
            pharmacy.address, "prescriptions", expires=timedelta(days=1), records=[mine.record_id]
        )
        assert g.records == (mine.record_id,)
        assert [r.record_id for r in pharmacy.records(world.patient.address)] == [mine.record_id]
        assert pharmacy.prescriptions.dispense(world.patient.address, mine.record_id).fill == 1
        with pytest.raises(AccessDenied):
            pharmacy.prescriptions.verify(world.patient.address, other.record_id)
        assert [v.record_id for v in pharmacy.prescriptions.readable(world.patient.address)] == [
            mine.record_id
        ]
        with pytest.raises(NotFound, match="not one of this patient's 'lab-results' records"):
            world.patient.grant(
                pharmacy.address, "lab-results", expires=timedelta(days=1), records=[mine.record_id]
            )
    finally:
        pharmacy.close()
