"""Emergency declarations through the facades (issue 15): a clinician declares with a
sealed justification, the patient sees it in its notifications and ends it, the regulator
reviews it; the refusals are typed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import ConsortiumAdmin, EmergencyRefused, Patient, Requester
from emrshare.chain import (
    Capability,
    EmergencyReview,
    EmergencyStatus,
    Role,
)
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.emergency import Cosignature
from emrshare.devnet import LocalNetwork
from emrshare.errors import InvalidInput
from emrshare.roles import Guardian

pytestmark = pytest.mark.integration

WHY = "unconscious on arrival; allergy check before anaesthesia"


@dataclass
class World:
    net: LocalNetwork
    patient: Patient
    clinic: Requester
    regulator: Requester


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("emergency-notices")
    net = LocalNetwork.start(tmp / "net", proxies=1, threshold=1)
    admin = ConsortiumAdmin(net, net.admin_key)
    clinic = Requester(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp / "c")
    regulator = Requester(
        net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp / "r"
    )
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp / "p"
    )
    try:
        clinic.apply()
        admin.admit(clinic.address, Role.PROVIDER)
        admin.set_capabilities(clinic.address, Capability.EMERGENCY)
        regulator.apply()
        admin.admit(regulator.address, Role.REGULATOR)
        patient.register()
        em_keys = MemberKeys.generate()
        net.contracts_for(net.admin_key).emergency.set_emergency_keys(
            em_keys.receiving_public_key.to_compressed_bytes(), bytes(em_keys.box_public_key)
        )
        generation = patient.emergency.opt_in(
            ["allergies", "medications", "conditions"], timedelta(hours=24)
        )
        assert generation == 1
        em = net.contracts.emergency
        assert em.opens_tag(patient.address, patient.keys.tag("allergies", 0))
        assert not em.opens_tag(patient.address, patient.keys.tag("psychiatry", 0))
        yield World(net, patient, clinic, regulator)
    finally:
        for m in (clinic, regulator, patient):
            m.close()
        net.close()


def test_patient_is_notified_with_who_when_and_why_and_ends_it(world: World) -> None:
    did = world.clinic.emergency.declare(world.patient.address, 1, WHY)
    (n,) = [n for n in world.patient.emergency.notifications() if n.declaration_id == did]
    assert (n.clinician, n.justification, n.purpose_of_use) == (world.clinic.address, WHY, "ETREAT")
    assert n.status is EmergencyStatus.ACTIVE and n.cosigner is None
    assert n.ends_at > 0
    world.patient.emergency.end(did)
    (n,) = [n for n in world.patient.emergency.notifications() if n.declaration_id == did]
    assert n.status is EmergencyStatus.ENDED

    # The regulator lists every declaration with its own copy of the justification.
    (r,) = [r for r in world.regulator.emergency.review() if r.declaration_id == did]
    assert r.justification == WHY and r.review is EmergencyReview.PENDING
    world.regulator.emergency.mark(did, EmergencyReview.DISPUTED)
    (r,) = [r for r in world.regulator.emergency.review() if r.declaration_id == did]
    assert r.review is EmergencyReview.DISPUTED


def test_declaration_by_a_member_without_the_capability_is_refused(world: World) -> None:
    with pytest.raises(EmergencyRefused, match="ask the consortium admins") as info:
        world.regulator.emergency.declare(world.patient.address, 1, WHY)
    assert info.value.name == "Emergency_NotCapable"


def test_review_by_a_non_regulator_is_refused(world: World) -> None:
    with pytest.raises(EmergencyRefused, match="only the regulator") as info:
        world.clinic.emergency.mark(1, EmergencyReview.REVIEWED)
    assert info.value.name == "Emergency_NotRegulator"


def test_a_guardian_ends_a_declaration_in_the_patients_name(world: World, tmp_path: Path) -> None:
    admin = ConsortiumAdmin(world.net, world.net.admin_key)
    keys = world.net.dev_keys
    other = Requester(
        world.net, MemberKeys.generate(ethereum_key=keys[5]), state_dir=tmp_path / "c"
    )
    parent = Patient(
        world.net, PatientKeys(os.urandom(32), ethereum_key=keys[6]), state_dir=tmp_path / "p"
    )
    try:
        other.apply()
        admin.admit(other.address, Role.PROVIDER)  # another clinician: no cool-down
        admin.set_capabilities(other.address, Capability.EMERGENCY)
        parent.register()
        world.patient.authorize_writer(other.address, "allergies")  # a category to hand over
        world.patient.guardians.add(parent.address, until=timedelta(days=30))
        guardian = Guardian(world.net, parent.keys, world.patient.address, state_dir=tmp_path / "g")
        did = other.emergency.declare(world.patient.address, 1, WHY)
        guardian.end_emergency(did)
        (n,) = [n for n in world.patient.emergency.notifications() if n.declaration_id == did]
        assert n.status is EmergencyStatus.ENDED
        with pytest.raises(EmergencyRefused) as again:
            guardian.end_emergency(did)
        assert again.value.name == "Emergency_NotActive"
    finally:
        other.close()
        parent.close()


def test_cosigned_declaration_names_its_cosigner(
    world: World,
) -> None:
    # A second EMERGENCY Provider co-signs; the declarer passes it; the patient sees who
    # co-signed (the contract's single-use rule is tested on both nodes in
    # tests/integration/chain/test_emergency.py).
    net, tmp = world.net, world.clinic.state_dir.parent
    second = Requester(net, MemberKeys.generate(ethereum_key=net.dev_keys[3]), state_dir=tmp / "s")
    admin = ConsortiumAdmin(net, net.admin_key)
    try:
        second.apply()
        admin.admit(second.address, Role.PROVIDER)
        admin.set_capabilities(second.address, Capability.EMERGENCY)
        patient = world.patient.address
        with pytest.raises(InvalidInput, match="at most 0:15:00"):
            world.clinic.emergency.cosign(second.address, patient, 2, valid_for=timedelta(hours=1))
        c = world.clinic.emergency.cosign(second.address, patient, 2)
        assert Cosignature.from_hex(c.hex()) == c
        assert c.cosigner == world.clinic.address and c.clinician == second.address
        with pytest.raises(InvalidInput, match="not this declaration"):
            second.emergency.declare(patient, 3, WHY, cosignature=c)  # another reason code
        did = second.emergency.declare(patient, 2, WHY, cosignature=c)
        (n,) = [n for n in world.patient.emergency.notifications() if n.declaration_id == did]
        assert n.cosigner == world.clinic.address and n.clinician == second.address
    finally:
        second.close()
