"""The facades refuse bad input with typed errors that say what to do (on an in-process
network: py-evm chain, LocalStore, three proxies at threshold 2)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import (
    ConfigurationError,
    ConsortiumAdmin,
    GrantRevoked,
    Patient,
    Provider,
    Requester,
)
from emrshare.chain import AccessRequested, GrantRevokedEvent, Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.types import RecordId


@dataclass
class World:
    net: LocalNetwork
    patient: Patient
    hospital: Provider
    reader: Requester
    record: RecordId


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("facades")
    net = LocalNetwork.start(tmp / "net")
    admin = ConsortiumAdmin(net, net.admin_key)
    hospital = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp / "h")
    reader = Requester(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp / "r")
    for member, role in ((hospital, Role.PROVIDER), (reader, Role.INSURER)):
        member.apply()
        admin.admit(member.address, role)
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp / "p"
    )
    patient.register()
    patient.authorize_writer(hospital.address, "lab")
    record = hospital.add_record(patient.address, "lab", b"Hb 14.1 g/dL", media_type="text/plain")
    patient.grant(reader.address, "lab", expires=timedelta(days=30))
    try:
        yield World(net, patient, hospital, reader, record)
    finally:
        for m in (hospital, reader, patient):
            m.close()
        net.close()


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("who", ["patient", "requester"])
def test_read_to_a_directory_or_missing_directory_is_a_typed_error(
    world: World, tmp_path: Path, who: str
) -> None:
    def read_to(path: Path) -> int:
        if who == "patient":
            return world.patient.read_to(world.record, path)
        return world.reader.read_to(world.patient.address, world.record, path)

    with pytest.raises(ConfigurationError, match="is a directory; give a file path"):
        read_to(tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist; create it first"):
        read_to(tmp_path / "missing" / "lab.txt")
    assert _names(tmp_path) == [], "nothing half-written is left behind"
    assert read_to(tmp_path / "lab.txt") == len(b"Hb 14.1 g/dL")
    assert _names(tmp_path) == ["lab.txt"]


def test_request_access_to_an_address_that_is_not_a_patient_is_refused(world: World) -> None:
    w3 = world.net.w3
    sent = w3.eth.get_transaction_count(world.reader.address)
    for not_a_patient in (world.hospital.address, "0x" + "ab" * 20):
        with pytest.raises(ConfigurationError, match="is not a registered patient"):
            world.reader.request_access(not_a_patient, "lab", purpose="HPAYMT")
    assert w3.eth.get_transaction_count(world.reader.address) == sent, "no transaction sent"
    assert world.reader.my_requests() == []


@pytest.mark.parametrize("threshold", [0, -1, 4])
def test_grant_threshold_out_of_range_is_refused(world: World, threshold: int) -> None:
    w3 = world.net.w3
    sent = w3.eth.get_transaction_count(world.patient.address)
    before = world.patient.grants()
    with pytest.raises(
        ConfigurationError, match=f"threshold {threshold} is out of range: use 1 to 3"
    ):
        world.patient.grant(
            world.reader.address, "lab", expires=timedelta(days=1), threshold=threshold
        )
    assert w3.eth.get_transaction_count(world.patient.address) == sent, "no transaction sent"
    assert world.patient.grants() == before


def test_grant_threshold_none_is_the_default_and_in_range_is_kept(world: World) -> None:
    patient, reader = world.patient, world.reader
    assert patient.grant(reader.address, "lab", expires=timedelta(days=1)).threshold == 2
    grant = patient.grant(reader.address, "lab", expires=timedelta(days=1), threshold=3)
    assert grant.threshold == 3 and len(grant.proxies) == 3


def test_revoking_a_revoked_grant_is_a_typed_error_and_keeps_the_epoch(world: World) -> None:
    patient, reader = world.patient, world.reader
    grant = patient.grant(reader.address, "notes", expires=timedelta(days=1))
    patient.revoke(grant.policy_id)
    assert patient.epoch("notes") == 1
    (revoked,) = world.net.contracts.grants.events(GrantRevokedEvent, policy_id=grant.policy_id)
    sent = world.net.w3.eth.get_transaction_count(patient.address)
    with pytest.raises(
        GrantRevoked,
        match=f"grant 0x{bytes(grant.policy_id).hex()} was already revoked at block "
        f"{revoked.revoked_at}",
    ):
        patient.revoke(grant.policy_id)
    assert patient.epoch("notes") == 1, "no second epoch bump"
    assert world.net.w3.eth.get_transaction_count(patient.address) == sent


def test_approve_or_deny_of_a_closed_request_says_it_was_answered(world: World) -> None:
    patient, reader = world.patient, world.reader
    w3 = world.net.w3
    approved = reader.request_access(patient.address, "lab", purpose="HPAYMT")
    grant = patient.approve(approved, expires=timedelta(days=1))
    denied = reader.request_access(patient.address, "lab", purpose="HPAYMT")
    patient.deny(denied)
    sent = w3.eth.get_transaction_count(patient.address)
    was_approved = (
        f"access request #{approved} was already approved "
        f"\\(grant 0x{bytes(grant.policy_id).hex()}\\); to change that access, revoke"
    )
    with pytest.raises(ConfigurationError, match=was_approved):
        patient.approve(approved, expires=timedelta(days=1))
    with pytest.raises(ConfigurationError, match=was_approved):
        patient.deny(approved)
    was_denied = f"access request #{denied} was already denied; nothing to do"
    with pytest.raises(ConfigurationError, match=was_denied):
        patient.approve(denied, expires=timedelta(days=1))
    with pytest.raises(ConfigurationError, match=was_denied):
        patient.deny(denied)
    assert w3.eth.get_transaction_count(patient.address) == sent, "no transaction sent"


def test_a_request_the_patient_cannot_open_can_only_be_denied(world: World) -> None:
    """A sealed request copied from another requester (or garbage) names no category: it
    is listed with category, purpose and reason None, approving it needs an explicit
    category, and it can be denied."""
    patient, reader, hospital = world.patient, world.reader, world.hospital
    genuine = reader.request_access(patient.address, "lab", purpose="HPAYMT", reason="claim 9")
    (ev,) = [
        e
        for e in world.net.contracts.grants.events(AccessRequested, patient=patient.address)
        if e.request_id == genuine
    ]
    copied = world.net.contracts_for(hospital.keys.ethereum_key).grants.request_access(
        patient.address, bytes(ev.sealed_request)
    )
    rid = int(copied.event(AccessRequested).request_id)
    opened = {r.request_id: r for r in patient.requests(pending_only=True)}
    assert (opened[genuine].category, opened[genuine].reason) == ("lab-results", "claim 9")
    assert (opened[rid].category, opened[rid].purpose, opened[rid].reason) == (None, None, None)
    with pytest.raises(ConfigurationError, match="pass the category name explicitly"):
        patient.approve(rid, expires=timedelta(days=1))
    patient.deny(rid)
    patient.deny(genuine)
    (mine,) = [r for r in hospital.my_requests() if r.request_id == rid]
    assert mine.status == "denied" and mine.policy_ids == ()
    assert [r.status for r in reader.my_requests() if r.request_id == genuine] == ["denied"]
