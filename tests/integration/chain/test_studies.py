"""The Studies contract on both nodes: publish (researchers only, a member's service),
join and leave by a participant key's proof (nonces: no replay), releases by the service
only, points, the end date and early close, and every custom error with its arguments."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from emrshare.chain import (
    Action,
    DatasetReleased,
    ParticipantKey,
    PointsAwarded,
    Role,
    StudyJoined,
    StudyPublished,
    StudyStatus,
    study_id,
)
from emrshare.chain.bindings import Studies

from .conftest import HOSPITAL, INSURER, OUTSIDER, PROXY_A, Net, reverts

pytestmark = pytest.mark.integration

RESEARCHER = OUTSIDER
DAY = 86_400
NEEDS = ("laboratory", "Observation")


@pytest.fixture
def st(net: Net) -> Net:
    """The session deployment with a researcher (reverted after the test)."""
    net.as_(RESEARCHER).registry.apply(os.urandom(33), os.urandom(32), "")
    net.pass_proposal(Action.ADMIT, RESEARCHER, Role.RESEARCHER)
    return net


def _publish(net: Net, days: int = 90, service: int = HOSPITAL) -> bytes:
    c = net.as_(RESEARCHER).studies
    r = c.publish(
        os.urandom(32), os.urandom(32), os.urandom(32), net.chain_time() + days * DAY,
        net.addr(service), NEEDS,
    )  # fmt: skip
    return bytes(r.event(StudyPublished).study_id)


def _join(c: Studies, sid: bytes, key: ParticipantKey) -> None:
    proof = key.join_proof(sid, c.nonce(sid, key.address), c.client.chain_id, c.address)
    c.join(sid, key.address, proof)


def _leave_proof(c: Studies, sid: bytes, key: ParticipantKey) -> bytes:
    return key.leave_proof(sid, c.nonce(sid, key.address), c.client.chain_id, c.address)


def test_publish_join_release_points_leave(st: Net) -> None:
    protocol, profile, ethics = os.urandom(32), os.urandom(32), os.urandom(32)
    ends = st.chain_time() + 30 * DAY
    researcher = st.as_(RESEARCHER).studies
    r = researcher.publish(protocol, profile, ethics, ends, st.addr(HOSPITAL), NEEDS)
    ev = r.event(StudyPublished)
    sid = bytes(ev.study_id)
    assert (ev.researcher, ev.service, ev.protocol, ev.profile, ev.ethics, ev.ends_at) == (
        st.addr(RESEARCHER), st.addr(HOSPITAL), protocol, profile, ethics, ends
    )  # fmt: skip
    assert ev.needs == NEEDS
    service = st.as_(HOSPITAL).studies
    a, b = sorted((ParticipantKey(os.urandom(32)) for _ in range(2)), key=_order)
    _join(service, sid, a)
    _join(st.as_(INSURER).studies, sid, b)  # anybody may submit a participant's proof
    assert service.study(sid).participants == 2
    rel = service.release(sid, "bafy-test-cid", os.urandom(32), 40, [a.address, b.address], 5)
    released = rel.event(DatasetReleased)
    assert (released.release, released.participants, released.resources) == (1, 2, 40)
    assert [(e.participant, e.points, e.total) for e in rel.events_of(PointsAwarded)] == [
        (a.address, 5, 5), (b.address, 5, 5)
    ]  # fmt: skip
    service.leave(sid, a.address, _leave_proof(service, sid, a))
    state = service.participant(sid, a.address)
    assert (state.joined, state.points) == (False, 5)  # points stay after leaving
    s = service.study(sid)
    assert (s.participants, s.releases, s.status) == (1, 1, StudyStatus.OPEN)
    # One who left since the service read the chain is skipped, not a revert.
    again = service.release(sid, "bafy2", os.urandom(32), 1, [a.address, b.address], 1)
    assert again.event(DatasetReleased).participants == 1
    assert [e.participant for e in again.events_of(PointsAwarded)] == [b.address]
    assert service.participant(sid, a.address).points == 5


def test_attack_a_release_crediting_one_participant_twice_is_refused(st: Net) -> None:
    sid, service = _publish(st), st.as_(HOSPITAL).studies
    a, b = sorted((ParticipantKey(os.urandom(32)) for _ in range(2)), key=_order)
    _join(service, sid, a)
    _join(service, sid, b)
    for credited in ([a.address, a.address], [b.address, a.address]):
        reverts(lambda c=credited: service.release(sid, "cid", os.urandom(32), 1, c, 9),
                "Studies_InvalidRelease", id=sid)  # fmt: skip
    assert service.participant(sid, a.address).points == 0


def _order(key: ParticipantKey) -> int:
    return int(key.address, 16)


def test_attack_a_replayed_join_proof_cannot_undo_a_leave(st: Net) -> None:
    sid, c = _publish(st), st.as_(HOSPITAL).studies
    key = ParticipantKey(os.urandom(32))
    old = key.join_proof(sid, c.nonce(sid, key.address), c.client.chain_id, c.address)
    c.join(sid, key.address, old)
    c.leave(sid, key.address, _leave_proof(c, sid, key))
    reverts(lambda: c.join(sid, key.address, old), "Studies_BadProof", id=sid,
            participant=key.address)  # fmt: skip
    assert c.participant(sid, key.address).joined is False


def test_attack_a_proof_by_another_key_or_for_another_study(st: Net) -> None:
    sid, other = _publish(st), _publish(st)
    c = st.as_(HOSPITAL).studies
    key, thief = ParticipantKey(os.urandom(32)), ParticipantKey(os.urandom(32))
    forged = thief.join_proof(sid, c.nonce(sid, key.address), c.client.chain_id, c.address)
    reverts(lambda: c.join(sid, key.address, forged), "Studies_BadProof", id=sid,
            participant=key.address)  # fmt: skip
    elsewhere = key.join_proof(other, c.nonce(sid, key.address), c.client.chain_id, c.address)
    reverts(lambda: c.join(sid, key.address, elsewhere), "Studies_BadProof", id=sid,
            participant=key.address)  # fmt: skip
    _join(c, sid, key)
    reverts(lambda: _join(c, sid, key), "Studies_AlreadyJoined", id=sid, participant=key.address)
    stranger = ParticipantKey(os.urandom(32))
    reverts(
        lambda: c.leave(sid, stranger.address, _leave_proof(c, sid, stranger)),
        "Studies_NotJoined", id=sid, participant=stranger.address,
    )  # fmt: skip


def test_only_researchers_publish_and_only_members_serve(st: Net) -> None:
    ends = st.chain_time() + DAY
    args = (os.urandom(32), os.urandom(32), os.urandom(32), ends)
    reverts(
        lambda: st.as_(INSURER).studies.publish(*args, st.addr(HOSPITAL), NEEDS),
        "Studies_NotResearcher", caller=st.addr(INSURER),
    )  # fmt: skip
    c = st.as_(RESEARCHER).studies
    reverts(lambda: c.publish(*args, st.addr(INSURER), NEEDS), "Studies_InvalidService",
            service=st.addr(INSURER))  # fmt: skip
    c.publish(*args[:3], ends, st.addr(PROXY_A), NEEDS)  # a Proxy member may serve
    protocol = os.urandom(32)
    c.publish(protocol, *args[1:], st.addr(HOSPITAL), NEEDS)
    reverts(lambda: c.publish(protocol, *args[1:], st.addr(HOSPITAL), NEEDS),
            "Studies_Exists", id=study_id(st.addr(RESEARCHER), protocol))  # fmt: skip


def test_bad_parameters(st: Net) -> None:
    c, now = st.as_(RESEARCHER).studies, st.chain_time()
    digest, svc = os.urandom(32), st.addr(HOSPITAL)
    is_time = lambda t: abs(int(t) - now) < 120  # noqa: E731 (the pending block's time)
    reverts(lambda: c.publish(digest, digest, digest, now - 1, svc, NEEDS),
            "Studies_InvalidEnd", endsAt=now - 1, chainTime=is_time)  # fmt: skip
    far = now + 2000 * DAY
    reverts(lambda: c.publish(digest, digest, digest, far, svc, NEEDS),
            "Studies_InvalidEnd", endsAt=far, chainTime=is_time)  # fmt: skip
    reverts(lambda: c.publish(digest, digest, digest, now + DAY, svc, []),
            "Studies_InvalidNeedCount", count=0)  # fmt: skip
    reverts(lambda: c.publish(digest, digest, digest, now + DAY, svc, ["x"] * 33),
            "Studies_InvalidNeedCount", count=33)  # fmt: skip
    reverts(lambda: c.publish(digest, digest, digest, now + DAY, svc, ["lab", "x" * 65]),
            "Studies_InvalidNeed", index=1)  # fmt: skip
    sid = _publish(st)
    service = st.as_(HOSPITAL).studies
    reverts(lambda: service.release(sid, "", digest, 1, [], 1), "Studies_InvalidRelease", id=sid)
    reverts(lambda: service.release(sid, "c" * 129, digest, 1, [], 1),
            "Studies_InvalidRelease", id=sid)  # fmt: skip
    unknown = os.urandom(32)
    key = ParticipantKey(os.urandom(32))
    reverts(lambda: _join(service, unknown, key), "Studies_Unknown", id=unknown)
    assert service.study(unknown).status is StudyStatus.NONE


def test_attack_only_the_service_releases_and_only_the_researcher_closes(st: Net) -> None:
    sid, digest = _publish(st), os.urandom(32)
    reverts(lambda: st.as_(RESEARCHER).studies.release(sid, "cid", digest, 1, [], 1),
            "Studies_NotService", id=sid, caller=st.addr(RESEARCHER))  # fmt: skip
    reverts(lambda: st.as_(HOSPITAL).studies.close(sid), "Studies_NotOwner", id=sid,
            caller=st.addr(HOSPITAL))  # fmt: skip
    st.as_(RESEARCHER).studies.close(sid)
    service = st.as_(HOSPITAL).studies
    assert service.study(sid).status is StudyStatus.CLOSED
    reverts(lambda: service.release(sid, "cid", digest, 1, [], 1), "Studies_Closed", id=sid)
    reverts(lambda: _join(service, sid, ParticipantKey(os.urandom(32))), "Studies_Closed", id=sid)


def test_the_end_date_is_on_chain_time_and_leaving_still_works_after(st: Net) -> None:
    sid, service = _publish(st, days=1), st.as_(HOSPITAL).studies
    key = ParticipantKey(os.urandom(32))
    _join(service, sid, key)
    ends = service.study(sid).ends_at
    st.advance_time(DAY + 60)
    assert service.study(sid).status is StudyStatus.ENDED
    reverts(lambda: _join(service, sid, ParticipantKey(os.urandom(32))), "Studies_Ended",
            id=sid, endsAt=ends, chainTime=lambda t: int(t) >= ends)  # fmt: skip
    service.leave(sid, key.address, _leave_proof(service, sid, key))
    assert service.participant(sid, key.address).joined is False


def test_proof_digests_are_the_contracts(st: Net) -> None:
    sid, c = _publish(st), st.as_(HOSPITAL).studies
    key = ParticipantKey(os.urandom(32))
    for kind, proof_of, digest_of in (
        ("join", key.join_proof, c.hash_join), ("leave", key.leave_proof, c.hash_leave)
    ):  # fmt: skip
        proof = proof_of(sid, 7, c.client.chain_id, c.address)
        signer = Account._recover_hash(digest_of(sid, key.address, 7), signature=proof)
        assert signer == key.address, kind


def test_no_patient_account_on_chain(st: Net) -> None:
    """A join names the participant key only: the patient's address is in no log."""
    sid, c = _publish(st), st.as_(HOSPITAL).studies
    key = ParticipantKey(os.urandom(32))
    proof = key.join_proof(sid, c.nonce(sid, key.address), c.client.chain_id, c.address)
    r = c.join(sid, key.address, proof)
    assert r.event(StudyJoined).participant == key.address
    patient = st.addr(3).lower().removeprefix("0x")
    raw = st.w3.eth.get_transaction_receipt(r.tx_hash)
    assert all(patient not in bytes(log["data"]).hex() for log in raw["logs"])
