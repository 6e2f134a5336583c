"""Recovery from the backup alone (issue 13): a patient restored into an empty state dir
gets its categories and epochs from the chain's sealed state log, and grants, writers and
requests from chain events; it reads, revokes and answers as before."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import ConsortiumAdmin, LocalNetwork, Patient, Provider
from emrshare.chain import Role, StateLogged
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.statelog import BUCKET, open_state
from emrshare.devnet import fund_account
from emrshare.errors import AccessDenied, DecryptionError, InvalidBackup, PatientNotFound
from emrshare.roles import restore_patient

pytestmark = pytest.mark.integration

CATEGORIES = ("lab-results", "imaging", "vital-signs")


@dataclass
class World:
    net: LocalNetwork
    writer: Provider
    reader: Provider
    asker: Provider
    keys: PatientKeys
    patient: Patient
    tmp: Path

    def new_patient(self, keys: PatientKeys, name: str) -> Patient:
        fund_account(self.net, self.net.admin_key, keys.address)
        p = Patient(self.net, keys, state_dir=self.tmp / name)
        p.register()
        return p


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net = LocalNetwork.start(tmp_path / "net")
    admin = ConsortiumAdmin(net, net.admin_key)
    members = [
        Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[i]), state_dir=tmp_path / n)
        for i, n in ((0, "writer"), (1, "reader"), (3, "asker"))
    ]
    for m in members:
        m.apply()
        admin.admit(m.address, Role.PROVIDER)
    keys = PatientKeys(secrets.token_bytes(32))  # the Ethereum key derived: words hold all
    fund_account(net, net.admin_key, keys.address)
    patient = Patient(net, keys, state_dir=tmp_path / "old-machine")
    patient.register()
    w = World(net, *members, keys, patient, tmp_path)
    try:
        yield w
    finally:
        for m in (*members, patient):
            m.close()
        net.close()


def _log_entries(w: World, who: str) -> list[bytes]:
    return [
        bytes(ev.sealed_state)
        for ev in w.net.contracts.profiles.events(
            StateLogged, patient=who, to_block=w.net.chain.latest_block()
        )
    ]


def test_restore_into_empty_state_dir_reads_revokes_and_answers(world: World) -> None:
    w, p = world, world.patient
    records: dict[bytes, bytes] = {}
    for c in CATEGORIES:
        p.authorize_writer(w.writer.address, c)
        body = f"{c} at epoch 0".encode()
        records[bytes(w.writer.add_record(p.address, c, body, media_type="text/plain"))] = body
        # An epoch moves on by revoking with new_epoch: a throwaway grant to the asker.
        p.revoke(p.grant(w.asker.address, c, expires=timedelta(days=1)).policy_id)
        body = f"{c} at epoch 1".encode()
        records[bytes(w.writer.add_record(p.address, c, body, media_type="text/plain"))] = body
    old_grant = p.grant(w.reader.address, "lab-results", expires=timedelta(days=30))
    rid = w.asker.request_access(p.address, "imaging", purpose="TREAT", reason="follow-up")
    assert {c: p.epoch(c) for c in CATEGORIES} == dict.fromkeys(CATEGORIES, 1)
    p.close()

    restored, found = restore_patient(
        w.net, mnemonic=w.keys.to_mnemonic(), state_dir=w.tmp / "new-machine"
    )
    try:
        assert found.registered and found.address == p.address
        assert found.epochs == dict.fromkeys(sorted(CATEGORIES), 1)
        assert restored.categories() == sorted(CATEGORIES)
        assert found.retired == 0 and restored.state.retired == ()
        assert {bytes(g.policy_id) for g in found.active_grants} >= {bytes(old_grant.policy_id)}
        assert [r.request_id for r in found.requests] == [rid]
        assert all(found.writers[c] == (w.writer.address,) for c in CATEGORIES)
        assert restored.pending_operations() == []

        listed = restored.records()
        assert {bytes(r.record_id) for r in listed} == set(records)
        for record_id, body in records.items():
            assert restored.read(record_id) == body

        assert w.reader.read(p.address, next(iter(records))) == b"lab-results at epoch 0"
        restored.revoke(old_grant.policy_id)
        with pytest.raises(AccessDenied):
            w.reader.read(p.address, next(iter(records)))
        assert restored.epoch("lab-results") == 2

        restored.approve(rid, expires=timedelta(days=7))
        imaging = [r for r in listed if r.category == "imaging"]
        assert {w.asker.read(p.address, r.record_id) for r in imaging} == {
            b"imaging at epoch 0",
            b"imaging at epoch 1",
        }
        # The state log followed the revocation: a third machine sees epoch 2.
        _, again = restore_patient(
            w.net, mnemonic=w.keys.to_mnemonic(), state_dir=w.tmp / "third-machine"
        )
        assert again.epochs["lab-results"] == 2
    finally:
        restored.close()


def test_restore_from_slip39_shares(world: World) -> None:
    w, p = world, world.patient
    p.authorize_writer(w.writer.address, "lab")
    rid = bytes(w.writer.add_record(p.address, "lab", b"K 4.1", media_type="text/plain"))
    shares = w.keys.to_shamir_shares(3, 5, passphrase=b"tulip")

    restored, found = restore_patient(
        w.net, shares=[shares[4], shares[1], shares[2]], passphrase=b"tulip", state_dir=w.tmp / "s"
    )
    try:
        assert found.epochs == {"lab-results": 0}
        assert restored.read(rid) == b"K 4.1"
    finally:
        restored.close()
    with pytest.raises(InvalidBackup) as too_few:
        restore_patient(w.net, shares=shares[:2], passphrase=b"tulip", state_dir=w.tmp / "x")
    assert too_few.value.reason == "too_few"
    other = PatientKeys.generate().to_shamir_shares(3, 5)
    with pytest.raises(InvalidBackup) as mixed:
        restore_patient(w.net, shares=[*shares[:2], other[2]], state_dir=w.tmp / "x")
    assert mixed.value.reason == "mixed"
    # A wrong passphrase makes another (valid) secret, whose patient the chain does not know.
    with pytest.raises(PatientNotFound):
        restore_patient(w.net, shares=shares[:3], passphrase=b"tulips", state_dir=w.tmp / "x")
    assert not (w.tmp / "x").exists()


def test_crash_between_epoch_change_and_publish(world: World) -> None:
    w, p = world, world.patient
    p.authorize_writer(w.writer.address, "lab")
    published = len(_log_entries(w, p.address))
    # The process dies right after the new epoch is saved locally, before its publication
    # is sent: the hook that publishes raises instead (the chain is real and untouched).
    real = p.state.sync
    calls = []

    def crash() -> bool:
        calls.append(1)
        raise KeyboardInterrupt

    p.state.local._changed = crash
    with pytest.raises(KeyboardInterrupt):
        p.revoke(p.grant(w.asker.address, "lab", expires=timedelta(days=1)).policy_id)
    p.state.local._changed = real
    assert calls and p.epoch("lab") == 1 and not p.state.published()
    assert len(_log_entries(w, p.address)) == published  # nothing reached the chain
    p.close()

    # The next process's next write publishes first.
    again = Patient(w.net, w.keys, state_dir=w.tmp / "old-machine")
    try:
        again.resume()
        assert again.state.published()
        assert len(_log_entries(w, p.address)) == published + 1
        again.resume()  # nothing changed: nothing sent
        assert len(_log_entries(w, p.address)) == published + 1
    finally:
        again.close()
    _, found = restore_patient(w.net, mnemonic=w.keys.to_mnemonic(), state_dir=w.tmp / "new")
    assert found.epochs == {"lab-results": 1}


def test_state_log_reveals_nothing(world: World) -> None:
    w, p = world, world.patient
    other = w.new_patient(PatientKeys(secrets.token_bytes(32)), "other")
    try:
        p.authorize_writer(w.writer.address, "lab")
        other.authorize_writer(w.writer.address, "mental-health")
        mine, theirs = _log_entries(w, p.address), _log_entries(w, other.address)
        assert len(mine) == len(theirs) == 1
        assert len(mine[0]) == len(theirs[0]) and len(mine[0]) % BUCKET == 0
        for needle in (b"lab", b"mental", b"health"):
            assert needle not in mine[0] and needle not in theirs[0]
        with pytest.raises(DecryptionError):
            open_state(w.keys.state_log_key, theirs[0])
        # Another patient's entry copied into this patient's log is skipped, not trusted.
        p._contracts.profiles.log_state(theirs[0])
        assert p.state.latest(refresh=True) is not None
        assert p.state.latest().epochs == {"lab-results": 0}
    finally:
        other.close()


def test_unknown_words_and_bad_words(world: World) -> None:
    w = world
    stranger = PatientKeys.generate()
    with pytest.raises(PatientNotFound) as unknown:
        restore_patient(w.net, mnemonic=stranger.to_mnemonic(), state_dir=w.tmp / "u")
    assert stranger.address in str(unknown.value)
    words = w.keys.to_mnemonic().split()
    for bad in (words[:23], [*words[:23], "zoo" if words[23] != "zoo" else "abandon"]):
        with pytest.raises(InvalidBackup) as wrong:
            restore_patient(w.net, mnemonic=" ".join(bad), state_dir=w.tmp / "u")
        assert wrong.value.reason == "words"
        assert all(word not in str(wrong.value).split() for word in bad[:5])
    assert not (w.tmp / "u").exists()


def test_retired_masters_pass_through_restore_and_later_publications(world: World) -> None:
    from emrshare.crypto.statelog import PatientState, RetiredMaster

    w, p = world, world.patient
    p.authorize_writer(w.writer.address, "lab")
    old = RetiredMaster(secrets.token_bytes(32), {"lab-results": 3})
    p.state.publish(PatientState(p.state.epochs, (old,)))  # as a rotation would
    # A later epoch change publishes a new snapshot: the retired master stays in it.
    p.revoke(p.grant(w.asker.address, "lab", expires=timedelta(days=1)).policy_id)
    restored, found = restore_patient(
        w.net, mnemonic=w.keys.to_mnemonic(), state_dir=w.tmp / "rotated"
    )
    try:
        assert found.retired == 1 and found.epochs == {"lab-results": 1}
        (kept,) = restored.state.retired
        assert kept.master_secret == old.master_secret and kept.epochs == {"lab-results": 3}
        assert old.master_secret.hex() not in repr(restored.state.retired)
    finally:
        restored.close()
