"""The emergency (break-glass) read through real proxy processes (issue 15, steps 7-11 of
docs/scenarios.md "Emergency access"): a clinician who declared reads an opted-in
category with M proxies' fragments and the consortium emergency key, every serve is
logged on chain; and each abuse of the issue's list is refused by the proxies, with a
typed, named refusal."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import EmergencyRefused
from emrshare.categories import normalize_category
from emrshare.chain import (
    Capability,
    EmergencyAccessLogged,
    EmergencyOptInParams,
    EmergencyStatus,
    Role,
)
from emrshare.crypto import MemberKeys, SealedEntry
from emrshare.errors import AccessDenied, Unavailable
from emrshare.proxy import PolicyKeys, ThresholdPolicy
from emrshare.proxy.emergency import MAX_DEADLINE_AHEAD, EmergencyClient
from emrshare.proxy.node.emergency_store import emergency_policy_id
from emrshare.proxy.request import capsule_hash
from emrshare.roles import Patient, save_emergency_key
from tests.integration.roles.trust_world import TrustWorld, start_world

pytestmark = pytest.mark.integration

WHY = "unconscious on arrival; allergy check before anaesthesia"
WINDOW = timedelta(hours=24)
COOLDOWN = 3600  # the deployment default


@dataclass
class World:
    trust: TrustWorld
    key_file: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("emergency-read")
    for trust in start_world(tmp):
        em_keys = MemberKeys.generate()
        trust.net.contracts_for(trust.admin_key).emergency.set_emergency_keys(
            em_keys.receiving_public_key.to_compressed_bytes(), bytes(em_keys.box_public_key)
        )
        key_file = save_emergency_key(tmp / "emergency-service" / "emergency-key.json", em_keys)
        trust.new_member("regulator", Role.REGULATOR)  # the justifications are sealed to it
        for clinician in (trust.hospital, trust.insurer):
            trust.admin.set_capabilities(clinician.address, Capability.EMERGENCY)
            clinician.emergency.key_file = key_file
        yield World(trust, key_file)


def _advance(world: World, seconds: int) -> None:
    node = world.trust.node
    node.rpc("evm_increaseTime", [seconds])
    node.rpc("evm_mine")


def _opted_in_patient(world: World, name: str) -> Patient:
    """A patient with allergies, medications and psychiatry records, opted in to
    allergies and medications (not psychiatry)."""
    t = world.trust
    patient = t.new_patient(name)
    for category, contents in (
        ("allergies", [b"penicillin: anaphylaxis", b"peanuts: hives"]),
        ("medications", [b"warfarin 5 mg"]),
        ("psychiatry", [b"private note"]),
    ):
        patient.authorize_writer(t.hospital.address, category)
        for c in contents:
            t.hospital.add_record(patient.address, category, c, media_type="text/plain")
    patient.emergency.opt_in(["allergies", "medications"], WINDOW)
    return patient


def _declare(world: World, patient: Patient) -> int:
    _advance(world, COOLDOWN + 1)  # past the clinician's cool-down since the last test
    did = world.trust.hospital.emergency.declare(patient.address, 1, WHY)
    world.trust.sync_proxies()
    return did


def _raw_refusals(
    world: World, key: bytes, did: int, patient: Patient, category: str, ahead: int = 300
) -> dict[str, str]:
    """Ask every proxy directly (a clinician's client that skips the facade's own checks)
    for ``category``'s capsules of ``patient`` under ``did``, with a deadline ``ahead``
    seconds beyond chain time; the proxies' reasons."""
    t = world.trust
    tag = patient.keys.tag(normalize_category(category), 0)
    events = [ev for ev in t.net.contracts.index.entries(patient.address) if bytes(ev.tag) == tag]
    capsules = [SealedEntry.from_bytes(bytes(ev.entry)).capsule for ev in events]
    policy = ThresholdPolicy(
        b"\1" * 32, 2, tuple(p.endpoint for p in t.proxies), PolicyKeys(b"", b"", b"")
    )
    client = EmergencyClient(
        key,
        chain_id=t.deployment.chain_id,
        grants_contract=t.deployment.address_of("Grants"),
        emergency_contract=t.deployment.address_of("Emergency"),
        declaration_id=did,
        tag=tag,
    )
    with pytest.raises(AccessDenied) as err:
        client.reencrypt_sync(policy, capsules, deadline=t.net.chain_time() + ahead)
    return err.value.reasons


def _logged(
    world: World, did: int, want: int, timeout: float = 30.0
) -> list[EmergencyAccessLogged]:
    em = world.trust.net.contracts.emergency
    deadline = time.monotonic() + timeout
    while True:
        logs = list(em.events(EmergencyAccessLogged, declaration_id=did))
        if len(logs) >= want or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


def test_clinician_reads_opted_in_allergies_through_m_proxies_and_each_serve_is_logged(
    world: World,
) -> None:
    patient = _opted_in_patient(world, "happy")
    did = _declare(world, patient)
    records = world.trust.hospital.emergency.read(did, "allergies")
    assert sorted(r.content for r in records) == [b"peanuts: hives", b"penicillin: anaphylaxis"]
    assert {r.category for r in records} == {"allergies"}
    assert {r.author for r in records} == {world.trust.hospital.address}
    # Every proxy that served (at least M = 2: all are asked at once) logged its serve on
    # chain, once: the declaration, the patient, itself, the tag and exactly the capsules
    # it re-encrypted; and each serve in a proxy's journal is one log on chain.
    logs = _logged(world, did, 2)
    assert len(logs) >= 2 and len({lg.proxy for lg in logs}) == len(logs)
    for p in world.trust.proxies:
        p.wait_audit_drained()
        journaled = p.query(f"SELECT count(*) FROM journal WHERE declaration_id = {did}")[0][0]
        assert journaled == sum(lg.proxy == p.keys.address for lg in _logged(world, did, 2))
    tag = patient.keys.tag("allergies", 0)
    index = world.trust.net.contracts.index
    hashes = {
        capsule_hash(bytes(SealedEntry.from_bytes(bytes(ev.entry)).capsule))
        for ev in index.entries(patient.address)
        if bytes(ev.tag) == tag
    }
    for lg in logs:
        assert lg.patient == patient.address and bytes(lg.tag) == tag
        assert set(lg.capsule_hashes) == hashes
        assert lg.proxy in {p.keys.address for p in world.trust.proxies}
    logs = _logged(world, did, 2)  # every journal drained: all of them
    # The patient's notifications show who read, through which proxy, when, what.
    (n,) = [n for n in patient.emergency.notifications() if n.declaration_id == did]
    assert n.clinician == world.trust.hospital.address
    assert {a.proxy for a in n.accesses} == {lg.proxy for lg in logs}
    assert {(a.records, a.category) for a in n.accesses} == {(2, "allergies")}
    assert all(a.timestamp > 0 and a.block_number > n.block_number for a in n.accesses)
    # The clinician sees its own declaration, active.
    (mine,) = [n for n in world.trust.hospital.emergency.declarations() if n.declaration_id == did]
    assert mine.status.name == "ACTIVE" and mine.patient == patient.address


def test_clinician_who_ends_its_declaration_right_after_reading_is_still_logged(
    world: World,
) -> None:
    # The attack: read, then end the declaration at once, before the proxies flush their
    # logs. Each serve is logged all the same, dated at the block the proxy judged it at,
    # and the patient sees it.
    t = world.trust
    patient = _opted_in_patient(world, "ends-at-once")
    did = _declare(world, patient)
    records = t.hospital.emergency.read(did, "allergies")
    t.hospital.emergency.signed.emergency.end(did)
    assert len(records) == 2
    assert t.net.contracts.emergency.status(did).name == "ENDED"
    for p in t.proxies:
        p.wait_audit_drained()
    logs = _logged(world, did, 2)
    assert len(logs) >= 2 and len({lg.proxy for lg in logs}) == len(logs)
    for p in t.proxies:
        journaled = p.query(f"SELECT count(*) FROM journal WHERE declaration_id = {did}")[0][0]
        abandoned = p.query(
            f"SELECT count(*) FROM journal WHERE declaration_id = {did} AND batch_id = 0"
        )[0][0]
        assert abandoned == 0
        assert journaled == sum(lg.proxy == p.keys.address for lg in logs)
    (n,) = [n for n in patient.emergency.notifications() if n.declaration_id == did]
    assert n.status.name == "ENDED"
    assert {a.proxy for a in n.accesses} == {lg.proxy for lg in logs}
    assert {(a.records, a.category) for a in n.accesses} == {(2, "allergies")}


def _move_to_a_new_epoch(world: World, patient: Patient, category: str) -> None:
    """Move ``category`` on to its next epoch the way a patient does: revoke a grant
    (``new_epoch`` is the default), here a throwaway one to the insurer."""
    t = world.trust
    before = patient.epoch(category)
    patient.revoke(patient.grant(t.insurer.address, category, expires=timedelta(days=1)).policy_id)
    assert patient.epoch(category) == before + 1


def test_opt_in_after_an_epoch_move_still_opens_the_records_written_before_it(
    world: World,
) -> None:
    # The patient-safety gap: an opt-in of the current epoch only hid every allergy
    # written before the patient's last revocation, silently.
    t = world.trust
    patient = t.new_patient("moved-before-opt-in")
    patient.authorize_writer(t.hospital.address, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"A: penicillin", media_type="text/plain")
    _move_to_a_new_epoch(world, patient, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"B: latex", media_type="text/plain")
    patient.emergency.opt_in(["allergies"], WINDOW)
    did = _declare(world, patient)
    records = t.hospital.emergency.read(did, "allergies")
    assert sorted(r.content for r in records) == [b"A: penicillin", b"B: latex"]
    assert records.epochs == (0, 1, 2) and not records.may_be_incomplete
    assert records.warning is None


def test_read_flags_records_the_opt_in_may_not_cover_after_later_epoch_moves(
    world: World,
) -> None:
    t = world.trust
    patient = t.new_patient("moved-after-opt-in")
    patient.authorize_writer(t.hospital.address, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"A: penicillin", media_type="text/plain")
    patient.emergency.opt_in(["allergies"], WINDOW)  # epochs 0 and the next, 1
    _move_to_a_new_epoch(world, patient, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"B: latex", media_type="text/plain")
    did = _declare(world, patient)
    records = t.hospital.emergency.read(did, "allergies")
    # One move after the opt-in is covered; records of its last epoch raise the flag.
    assert sorted(r.content for r in records) == [b"A: penicillin", b"B: latex"]
    assert records.epochs == (0, 1) and records.may_be_incomplete
    _move_to_a_new_epoch(world, patient, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"C: iodine", media_type="text/plain")
    records = t.hospital.emergency.read(did, "allergies")
    assert sorted(r.content for r in records) == [b"A: penicillin", b"B: latex"]
    assert records.may_be_incomplete
    assert records.warning is not None and "up to epoch 1" in records.warning
    assert "opt in again" in records.warning


def test_read_after_the_time_box_is_refused(world: World) -> None:
    patient = _opted_in_patient(world, "late")
    did = _declare(world, patient)
    _advance(world, int(WINDOW.total_seconds()) + 1)
    with pytest.raises(EmergencyRefused) as err:
        world.trust.hospital.emergency.read(did, "allergies")
    assert err.value.name == "declaration_expired"


def test_request_with_a_deadline_too_far_ahead_is_refused(world: World) -> None:
    # A break-glass request signed to stay valid for an hour could be kept and replayed
    # long after the clinician's need: the proxies accept deadlines at most
    # MAX_DEADLINE_AHEAD beyond chain time; the facade signs within that window.
    t = world.trust
    patient = _opted_in_patient(world, "far-deadline")
    did = _declare(world, patient)
    reasons = _raw_refusals(
        world, t.hospital.keys.ethereum_key, did, patient, "allergies", ahead=3600
    )
    assert set(reasons.values()) == {"deadline_too_far"}
    assert len(reasons) >= 2  # enough to put M = 2 of 3 out of reach
    assert not list(t.net.contracts.emergency.events(EmergencyAccessLogged, declaration_id=did))
    records = t.hospital.emergency.read(did, "allergies")
    assert len(records) == 2
    assert MAX_DEADLINE_AHEAD == 600


def test_read_of_a_category_outside_the_opt_in_is_refused(world: World) -> None:
    patient = _opted_in_patient(world, "psych")
    did = _declare(world, patient)
    with pytest.raises(EmergencyRefused) as err:
        world.trust.hospital.emergency.read(did, "psychiatry")
    assert err.value.name == "category_not_opted_in"
    # The proxies refuse it too, asked directly with the psychiatry (mental-health) tag's
    # capsules.
    reasons = _raw_refusals(
        world, world.trust.hospital.keys.ethereum_key, did, patient, "psychiatry"
    )
    assert set(reasons.values()) == {"category_not_opted_in"}


def test_request_signed_by_another_clinician_than_the_declarer_is_refused(world: World) -> None:
    patient = _opted_in_patient(world, "other")
    did = _declare(world, patient)
    # The insurer holds the EMERGENCY capability and the key file, but did not declare.
    with pytest.raises(EmergencyRefused) as err:
        world.trust.insurer.emergency.read(did, "allergies")
    assert err.value.name == "not_declarer"


def test_read_after_the_patient_ended_the_declaration_is_refused(world: World) -> None:
    patient = _opted_in_patient(world, "ended")
    did = _declare(world, patient)
    patient.emergency.end(did)
    with pytest.raises(EmergencyRefused) as err:
        world.trust.hospital.emergency.read(did, "allergies")
    assert err.value.name == "declaration_ended"


def test_read_after_the_patient_withdrew_is_refused_and_the_proxies_drop_the_kfrags(
    world: World,
) -> None:
    patient = _opted_in_patient(world, "withdrawn")
    did = _declare(world, patient)
    patient.emergency.withdraw()
    world.trust.sync_proxies()
    with pytest.raises(EmergencyRefused) as err:
        world.trust.hospital.emergency.read(did, "allergies")
    assert err.value.name == "declaration_withdrawn"
    for p in world.trust.proxies:
        rows = p.query("SELECT patient FROM emergency_policies")
        assert patient.address.lower() not in {r[0] for r in rows}


def test_request_naming_a_forged_declaration_is_refused(world: World) -> None:
    patient = _opted_in_patient(world, "forged")
    _declare(world, patient)
    unknown = world.trust.net.contracts.emergency.declaration_count() + 100
    with pytest.raises(EmergencyRefused) as err:
        world.trust.hospital.emergency.read(unknown, "allergies")
    assert err.value.name == "Emergency_UnknownDeclaration"
    reasons = _raw_refusals(
        world, world.trust.hospital.keys.ethereum_key, unknown, patient, "allergies"
    )
    assert set(reasons.values()) == {"declaration_unknown"}


def test_forged_emergency_kfrags_are_never_stored_or_served(world: World) -> None:
    # An opt-in whose sealed kfrags do not open (or verify) for the proxies: each proxy
    # refuses to store them, and a declared emergency gets nothing from any of them.
    t = world.trust
    patient = t.new_patient("forged-kfrags")
    patient.authorize_writer(t.hospital.address, "allergies")
    t.hospital.add_record(patient.address, "allergies", b"latex", media_type="text/plain")
    tag = patient.keys.tag("allergies", 0)
    proxies = [p.keys.address for p in t.proxies]
    forged = EmergencyOptInParams(
        [tag], 86400, proxies, 2, [os.urandom(627) for _ in proxies], [os.urandom(380)]
    )
    t.net.contracts_for(patient.keys.ethereum_key).emergency.opt_in(forged)
    did = _declare(world, patient)
    for p in t.proxies:
        pid = emergency_policy_id(patient.address, tag).hex()
        assert p.query(f"SELECT count(*) FROM kfrags WHERE policy_id = x'{pid}'") == [(0,)]
    with pytest.raises(Unavailable) as err:
        _raw_refusals(world, t.hospital.keys.ethereum_key, did, patient, "allergies")
    assert set(err.value.failures.values()) == {"kfrag_unavailable"}


def test_read_after_the_consortium_withdrew_the_capability_is_refused(world: World) -> None:
    t = world.trust
    patient = _opted_in_patient(world, "uncapable")
    did = _declare(world, patient)
    t.admin.set_capabilities(t.hospital.address, Capability.NONE)
    try:
        with pytest.raises(EmergencyRefused) as err:
            t.hospital.emergency.read(did, "allergies")
        assert err.value.name == "clinician_not_capable"
    finally:
        t.admin.set_capabilities(t.hospital.address, Capability.EMERGENCY)


def test_read_refused_when_wall_clock_passed_the_time_box_though_the_chain_head_lags(
    world: World,
) -> None:
    # A chain head whose time lags the proxies' clocks (a stalled chain: no new block)
    # must not stretch a declaration past its time box. Anvil's clock is set two time
    # boxes behind the wall clock: a declaration made now is Active on chain time, and
    # already past its time box by every proxy's clock.
    t = world.trust
    em = t.net.contracts.emergency
    chain_before = t.net.chain_time()
    t.node.rpc("anvil_setTime", [int(time.time()) - 2 * int(WINDOW.total_seconds())])
    t.node.rpc("evm_mine")
    try:
        clinician = t.new_member("stale-head-clinician", Role.PROVIDER)
        t.admin.set_capabilities(clinician.address, Capability.EMERGENCY)
        clinician.emergency.key_file = world.key_file
        patient = _opted_in_patient(world, "stale-head")
        did = clinician.emergency.declare(patient.address, 1, WHY)
        t.sync_proxies()
        assert em.status(did) is EmergencyStatus.ACTIVE  # on the lagging chain time
        assert em.declaration(did).ends_at < time.time()
        with pytest.raises(EmergencyRefused) as err:
            clinician.emergency.read(did, "allergies")
        assert err.value.name == "declaration_expired"
        reasons = _raw_refusals(world, clinician.keys.ethereum_key, did, patient, "allergies")
        assert set(reasons.values()) == {"declaration_expired"}
        assert not list(em.events(EmergencyAccessLogged, declaration_id=did))
    finally:
        # Back to where the chain's clock was (later tests' cool-downs count from there).
        t.node.rpc("anvil_setTime", [chain_before + 1])
        t.node.rpc("evm_mine")
