"""The demo scenario through the library, on an in-process network (py-evm chain,
LocalStore, three proxies at threshold 2), plus what revocation by epoch guarantees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import (
    AccessDenied,
    ConsortiumAdmin,
    GrantExpired,
    GrantRevoked,
    NotFound,
    Patient,
    Provider,
    Requester,
)
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork.start(tmp_path_factory.mktemp("localnet"))
    try:
        yield network
    finally:
        network.close()


def test_demo_scenario_through_the_library(net: LocalNetwork, tmp_path: Path) -> None:
    admin = ConsortiumAdmin(net, net.admin_key)
    a = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp_path / "a")
    b = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp_path / "b")
    insurer = Requester(
        net, MemberKeys.generate(ethereum_key=net.dev_keys[2]), state_dir=tmp_path / "i"
    )
    for member, role in ((a, Role.PROVIDER), (b, Role.PROVIDER), (insurer, Role.INSURER)):
        assert member.apply()
        admin.admit(member.address, role)
        assert member.role is role
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[3]), state_dir=tmp_path / "p"
    )
    assert patient.register() and not patient.register()
    patient.authorize_writer(a.address, "lab")
    patient.authorize_writer(a.address, "imaging")
    # "lab" is an alias of the canonical "lab-results" (issue 12, item 5).
    assert a.writable_categories(patient.address) == {"lab-results": 0, "imaging": 0}

    # Hospital A writes a lab result and an imaging report.
    lab = b"Hb 14.1 g/dL\n" * 50
    imaging_file = tmp_path / "mri.bin"
    imaging_file.write_bytes(os.urandom(300_000))
    seen: list[int] = []
    lab_id = a.add_record(patient.address, "lab", lab, media_type="text/plain")
    img_id = a.add_record(
        patient.address, "imaging", imaging_file, progress=lambda done, total: seen.append(done)
    )
    assert seen and seen[-1] == 300_000
    mine = {r.record_id: r for r in patient.records()}
    assert mine[lab_id].category == "lab-results" and mine[lab_id].media_type == "text/plain"
    assert mine[img_id].size == 300_000
    assert patient.read(img_id) == imaging_file.read_bytes()

    # Hospital B requests lab access; the patient approves it for 30 days.
    req = b.request_access(patient.address, "lab", purpose="TREAT", reason="referral")
    (pending,) = patient.requests(pending_only=True)
    assert pending.request_id == req and pending.category == "lab-results"
    grant = patient.approve(req, expires=timedelta(days=30))
    assert grant.active and grant.grantee == b.address and grant.threshold == 2
    assert [g.policy_id for g in b.grants(patient.address, active_only=True)] == [grant.policy_id]

    # B reads the lab result (bytes equal), is refused the imaging report.
    assert b.read(patient.address, lab_id) == lab
    out = tmp_path / "lab.out"
    assert b.read_to(patient.address, lab_id, out) == len(lab) and out.read_bytes() == lab
    with pytest.raises(AccessDenied):
        b.read(patient.address, img_id)
    assert [r.record_id for r in b.records(patient.address)] == [lab_id]

    # The insurer gets lab access too (a direct grant).
    insurer_grant = patient.grant(insurer.address, "lab", expires=timedelta(days=7))
    assert insurer.read(patient.address, lab_id) == lab

    # The patient revokes B: the proxies refuse B from then on.
    patient.revoke(grant.policy_id)
    with pytest.raises(GrantRevoked) as refused:
        b.read(patient.address, lab_id)
    assert set(refused.value.reasons.values()) == {"policy_revoked"}
    assert patient.epoch("lab") == 1, "revocation moved lab to a new epoch"

    # New lab records use the new epoch: the insurer (re-granted) reads them, B does not.
    new_id = a.add_record(patient.address, "lab", b"K 4.1 mmol/L", media_type="text/plain")
    assert insurer.read(patient.address, new_id) == b"K 4.1 mmol/L"
    assert insurer.read(patient.address, lab_id) == lab, "old epoch still granted"
    with pytest.raises(AccessDenied):
        b.read(patient.address, new_id)
    statuses = {g.policy_id: g.status for g in patient.grants()}
    assert statuses[grant.policy_id] == "revoked"
    assert statuses[insurer_grant.policy_id] == "active"

    # The audit trail shows B's reads of the lab result (one log per serving proxy).
    trail = patient.audit()
    b_reads = [e for e in trail if e.requester == b.address]
    assert b_reads and all(e.record_ids == (lab_id,) for e in b_reads)
    assert {e.category for e in trail} == {"lab-results"}
    assert any(e.requester == insurer.address for e in trail)
    for m in (a, b, patient):
        m.close()


def test_unauthorized_writer_is_refused_and_leaves_nothing(
    net: LocalNetwork, tmp_path: Path
) -> None:
    admin = ConsortiumAdmin(net, net.admin_key)
    c = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[4]), state_dir=tmp_path / "c")
    c.apply()
    admin.admit(c.address, Role.PROVIDER)
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[5]), state_dir=tmp_path / "p"
    )
    patient.register()
    with pytest.raises(AccessDenied, match="has not authorized"):
        c.add_record(patient.address, "lab", b"x")
    # An address that is no patient at all (a typo, a member) is said to be one, not
    # reported as a patient who has not authorized this provider.
    with pytest.raises(NotFound, match="not a registered patient"):
        c.add_record(c.address, "lab", b"x")
    assert patient.records() == []
    patient.authorize_writer(c.address, "lab")
    rid = c.add_record(patient.address, "lab", b"x")
    patient.deauthorize_writer(c.address, "lab")
    with pytest.raises(AccessDenied):
        c.add_record(patient.address, "lab", b"y")
    assert [r.record_id for r in patient.records()] == [rid]
    assert c.writer.journal.pending() == []


def test_grant_expires_by_chain_time(net: LocalNetwork, tmp_path: Path) -> None:
    admin = ConsortiumAdmin(net, net.admin_key)
    a = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[7]), state_dir=tmp_path / "a")
    b = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[8]), state_dir=tmp_path / "b")
    for m in (a, b):
        m.apply()
        admin.admit(m.address, Role.PROVIDER)
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[9]), state_dir=tmp_path / "p"
    )
    patient.register()
    patient.authorize_writer(a.address, "lab")
    rid = a.add_record(patient.address, "lab", b"ferritin 80 ng/mL")
    grant = patient.grant(b.address, "lab", expires=timedelta(minutes=10))
    assert b.read(patient.address, rid) == b"ferritin 80 ng/mL"
    # Chain time moves on (the proxies judge expiry by it, not by their wall clocks).
    net.w3.testing.timeTravel(net.chain_time() + 3600)
    net.w3.testing.mine()
    with pytest.raises(GrantExpired) as refused:
        b.read(patient.address, rid)
    assert set(refused.value.reasons.values()) == {"policy_expired"}
    assert {g.policy_id: g.status for g in patient.grants()}[grant.policy_id] == "expired"
