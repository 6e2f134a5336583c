"""Issue 13, guardians: on a real anvil with three real proxy processes, a guardian (a
person with their own keys) grants, revokes and answers requests in a patient's name with
the key bundle the patient sealed to it; the grantee reads through the proxies; the
patient's trail says "by guardian"; a withdrawn or ended guardianship, and a call a
guardian may not make, are typed errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest

from emrshare.chain import Contracts, GuardianSet
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from emrshare.crypto import PatientKeys
from emrshare.crypto.guardian import GUARDIAN_BUNDLE_BRAND
from emrshare.crypto.sealing import open_sealed
from emrshare.errors import ConfigurationError, GuardianshipEnded, NotDelegated, NotFound
from emrshare.roles import Guardian, Patient
from emrshare.types import CategoryTag
from tests.integration.roles.trust_world import TrustWorld, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustWorld]:
    yield from start_world(tmp_path_factory.mktemp("guardians"))


def _family(world: TrustWorld, name: str) -> tuple[Patient, Patient, bytes]:
    """A patient with a lab record by the hospital, and a guardian (a registered patient
    profile of its own); returns the record id too."""
    child = world.new_patient(f"{name}-child")
    parent = world.new_patient(f"{name}-parent")
    child.authorize_writer(world.hospital.address, "lab")
    record = world.hospital.add_record(child.address, "lab", b"Hb 14.1", media_type="text/plain")
    return child, parent, bytes(record)


def _guardian(world: TrustWorld, child: Patient, parent: Patient) -> Guardian:
    return Guardian(
        world.net, parent.keys, child.address, state_dir=world.tmp / "g" / child.address
    )


def test_guardian_grants_and_the_grantee_reads(world: TrustWorld) -> None:
    child, parent, record = _family(world, "grants")
    named = child.guardians.add(parent.address, until=timedelta(days=365))
    assert named.active and named.guardian == parent.address
    guardian = _guardian(world, child, parent)
    assert guardian.categories() == {"lab-results": 0}

    grant = guardian.grant(world.insurer.address, "lab", expires=timedelta(days=30))
    world.sync_proxies()
    assert world.insurer.read(child.address, record) == b"Hb 14.1"
    assert grant.by == parent.address and grant.patient == child.address

    # The patient's listing names the guardian; its own grants say nobody.
    own = child.grant(world.hospital.address, "lab", expires=timedelta(days=3))
    by = {g.policy_id: g.by for g in child.grants()}
    assert by == {grant.policy_id: parent.address, own.policy_id: None}

    assert guardian.revoke(grant.policy_id) == [grant.policy_id]
    assert not {g.policy_id: g for g in child.grants()}[grant.policy_id].active
    actions = child.guardians.actions()
    assert [(a.guardian, a.action, a.policy_ids) for a in actions] == [
        (parent.address, "grant", (grant.policy_id,)),
        (parent.address, "revoke", (grant.policy_id,)),
    ]


def test_guardian_answers_requests(world: TrustWorld) -> None:
    child, parent, record = _family(world, "requests")
    child.guardians.add(parent.address, until=timedelta(days=30))
    guardian = _guardian(world, child, parent)
    rid = world.insurer.request_access(child.address, "lab", purpose="TREAT", reason="claim")
    (pending,) = guardian.requests(pending_only=True)
    assert (pending.request_id, pending.category, pending.reason) == (rid, "lab-results", "claim")
    grant = guardian.approve(rid, expires=timedelta(days=7))
    world.sync_proxies()
    assert world.insurer.read(child.address, record) == b"Hb 14.1"
    (answered,) = child.requests()
    assert answered.status == "approved" and answered.policy_ids == (grant.policy_id,)

    second = world.insurer.request_access(child.address, "lab", purpose="TREAT")
    guardian.deny(second)
    assert {r.request_id: r.status for r in child.requests()}[second] == "denied"
    assert [a.action for a in child.guardians.actions()] == ["grant", "answer", "answer"]
    assert [a.request_id for a in child.guardians.actions()][1:] == [rid, second]


def test_withdrawn_guardian_next_action_reverts(world: TrustWorld) -> None:
    child, parent, _ = _family(world, "withdrawn")
    child.guardians.add(parent.address, until=timedelta(days=30))
    guardian = _guardian(world, child, parent)
    guardian.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    child.guardians.withdraw(parent.address)
    assert [g.status for g in child.guardians.all()] == ["withdrawn"]
    with pytest.raises(GuardianshipEnded) as err:
        guardian.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    assert err.value.reasons == {"chain": "withdrawn"}
    assert "\n" not in str(err.value) and "no longer" in str(err.value)
    with pytest.raises(NotFound):  # withdrawn twice
        child.guardians.withdraw(parent.address)
    assert guardian.status().status == "withdrawn"


def test_guardian_non_delegated_call_is_refused(world: TrustWorld) -> None:
    child, parent, _ = _family(world, "delegated")
    child.guardians.add(parent.address, until=timedelta(days=30))
    guardian = _guardian(world, child, parent)
    with pytest.raises(NotDelegated) as err:
        guardian.act(
            lambda c: c.index.authorize_writer(CategoryTag(bytes(32)), world.insurer.address, b"x")
        )
    assert err.value.reasons == {"chain": "not_delegated"}
    with pytest.raises(NotDelegated):
        guardian.act(lambda c: c.profiles.register(os.urandom(33), os.urandom(32)))


def test_guardian_never_sees_the_master_secret(world: TrustWorld) -> None:
    child, parent, _ = _family(world, "master")
    child.guardians.add(parent.address, until=timedelta(days=30))
    (ev,) = world.net.contracts.forwarder.events(GuardianSet, patient=child.address)
    sealed = bytes(ev.sealed_keys)
    opened = open_sealed(
        parent.keys.box_private_key, GUARDIAN_BUNDLE_BRAND, sealed, what="guardian bundle"
    )
    secrets = {
        "master": child.keys.master_secret,
        "state log key": child.keys.state_log_key,
        "ethereum key": child.keys.ethereum_key,
    }
    for name, secret in secrets.items():
        assert secret not in sealed and secret not in opened, name
    keys = _guardian(world, child, parent).bundle()
    assert not hasattr(keys, "master_secret") and not hasattr(keys, "ethereum_key")
    assert child.keys.master_secret.hex() not in repr(keys)
    # What it holds is enough to act: the patient's verifying key and category keys.
    assert keys.verifying_key == child.keys.verifying_key
    assert keys.tag("lab-results", 0) == child.keys.tag("lab-results", 0)


def test_guardian_needs_a_registered_profile_and_a_guardianship(world: TrustWorld) -> None:
    child, _, _ = _family(world, "profile")
    stranger = PatientKeys.generate()
    with pytest.raises(NotFound, match="no patient profile"):
        child.guardians.add(stranger.address, until=timedelta(days=1))
    never = Guardian(world.net, stranger, child.address, state_dir=world.tmp / "stranger")
    with pytest.raises(NotFound, match="has not named"):
        never.grant(world.insurer.address, "lab", expires=timedelta(days=1))


def test_unfunded_guardian_acts_through_a_relayer(world: TrustWorld) -> None:
    child, _, record = _family(world, "relayed")
    fwd = world.deployment.address_of("PatientForwarder")
    relayer = DirectSubmitter(world.net.contracts_for(world.funder_key).client, fwd)
    parent = PatientKeys.generate()  # holds no ETH: registers and acts through the relayer
    own = ForwardingClient(world.net.chain, parent.ethereum_key, parent.address, fwd, relayer)
    pub = parent.public_keys()
    Contracts.from_deployment(own, world.deployment).profiles.register(
        pub.verifying_key_bytes, pub.box_key_bytes
    )
    child.guardians.add(parent.address, until=timedelta(days=30))
    own_gas = Guardian(world.net, parent, child.address, state_dir=world.tmp / "own")
    with pytest.raises(ConfigurationError, match="no ETH"):
        own_gas.grant(world.insurer.address, "lab", expires=timedelta(days=2))
    assert own_gas.requests() == [] and own_gas.grants() == []  # reads need no ETH
    guardian = Guardian(
        world.net, parent, child.address, state_dir=world.tmp / "relayed", relay=relayer
    )
    grant = guardian.grant(world.insurer.address, "lab", expires=timedelta(days=2))
    world.sync_proxies()
    assert world.insurer.read(child.address, record) == b"Hb 14.1"
    assert {g.policy_id: g.by for g in child.grants()}[grant.policy_id] == parent.address
    assert world.net.w3.eth.get_balance(parent.address) == 0  # type: ignore[arg-type]


def test_guardian_acts_only_on_covered_categories_and_epochs(world: TrustWorld) -> None:
    child, parent, record = _family(world, "covered")
    child.authorize_writer(world.hospital.address, "imaging")
    child.guardians.add(parent.address, until=timedelta(days=30), categories=["lab"])
    guardian = _guardian(world, child, parent)
    assert guardian.categories() == {"lab-results": 0}
    with pytest.raises(NotFound, match="does not cover 'imaging'"):
        guardian.grant(world.insurer.address, "imaging", expires=timedelta(days=1))
    # The guardian's revocation of the patient's own grant is plain: no new epoch.
    own = child.grant(world.insurer.address, "lab", expires=timedelta(days=3))
    assert guardian.revoke(own.policy_id) == [own.policy_id]
    assert child.epoch("lab") == 0
    # The patient's revocation moves the epoch; naming the guardian again hands it the
    # new key, and its grant then covers records of both epochs.
    again = guardian.grant(world.insurer.address, "lab", expires=timedelta(days=3))
    child.revoke(again.policy_id)
    assert child.epoch("lab") == 1
    newer = world.hospital.add_record(child.address, "lab", b"epoch 1", media_type="text/plain")
    child.guardians.add(parent.address, until=timedelta(days=30), categories=["lab"])
    assert guardian.categories() == {"lab-results": 1}
    grant = guardian.grant(world.insurer.address, "lab", expires=timedelta(days=3))
    assert grant.epoch == 1 and grant.by == parent.address
    world.sync_proxies()
    assert world.insurer.read(child.address, newer) == b"epoch 1"
    assert world.insurer.read(child.address, record) == b"Hb 14.1"


def test_expired_guardianship_is_a_typed_error(world: TrustWorld) -> None:
    # Last in the module: it moves chain time forward.
    child, parent, _ = _family(world, "expired")
    child.guardians.add(parent.address, until=timedelta(minutes=5))
    guardian = _guardian(world, child, parent)
    world.node.rpc("evm_increaseTime", [600])
    world.node.rpc("evm_mine")
    assert [g.status for g in child.guardians.all()] == ["ended"]
    with pytest.raises(GuardianshipEnded) as err:
        guardian.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    assert err.value.reasons == {"chain": "ended"}
    assert "ended" in str(err.value) and "\n" not in str(err.value)
