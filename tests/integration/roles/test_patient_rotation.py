"""Issue 13, a patient rotates its master secret: the identity stays, the old key opens
and signs nothing new, every lawful read still works, the new mnemonic alone recovers
everything, and a rotation interrupted at any step resumes to the same end state."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import ConsortiumAdmin, LocalNetwork, Patient, Provider
from emrshare.chain import Action, ProposalCreated, Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.errors import ContractRevert, EmrShareError, NotFound, RotationInterrupted
from emrshare.roles._oplog import EpochState
from emrshare.roles._patient_rotation import forwarding_contracts, restore_rotated
from emrshare.roles._restore import restore_patient

pytestmark = pytest.mark.integration


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.net = LocalNetwork.start(tmp / "net")
        admin = ConsortiumAdmin(self.net, self.net.admin_key)
        self.a, self.b = (
            Provider(
                self.net, MemberKeys.generate(ethereum_key=self.net.dev_keys[i]), state_dir=tmp / n
            )
            for i, n in ((0, "a"), (1, "b"))
        )
        for m in (self.a, self.b):
            m.apply()
            admin.admit(m.address, Role.PROVIDER)
        self.old = PatientKeys(secrets.token_bytes(32), ethereum_key=self.net.dev_keys[2])
        self.p = Patient(self.net, self.old, state_dir=tmp / "p")
        self.p.register()
        self.p.authorize_writer(self.a.address, "lab")
        self.r0 = self.a.add_record(self.p.address, "lab", b"before", media_type="text/plain")
        self.p.grant(self.b.address, "lab", expires=timedelta(days=30))
        self.closers: list[Provider | Patient] = [self.a, self.b, self.p]

    def patient(self, keys: PatientKeys, name: str) -> Patient:
        p = Patient(self.net, keys, state_dir=self.tmp / name)
        self.closers.append(p)
        return p

    def close(self) -> None:
        for c in self.closers:
            c.close()
        self.net.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w  # type: ignore[misc]
    w.close()


def _lawful_reads_work(w: World, words: str) -> None:
    """After a rotation: the writer writes, the grantee and the new mnemonic alone read
    every record, old and new; the old keys neither sign nor open the new record."""
    r1 = w.a.add_record(w.p.address, "lab", b"after", media_type="text/plain")
    assert w.b.read(w.p.address, w.r0) == b"before"
    assert w.b.read(w.p.address, r1) == b"after"
    keys, epochs = restore_rotated(w.net, words, w.tmp / "fresh")
    assert keys.address == w.old.address and epochs == {"lab-results": 1}
    fresh = w.patient(keys, "fresh")
    assert fresh.read(w.r0) == b"before" and fresh.read(r1) == b"after"
    # The library's restore from the words alone finds the identity too.
    restored, found = restore_patient(w.net, mnemonic=words, state_dir=w.tmp / "restored")
    w.closers.append(restored)
    assert found.address == w.old.address and found.epochs == {"lab-results": 1}
    assert restored.read(w.r0) == b"before" and restored.read(r1) == b"after"
    # The old key: directly MustRelay, through the forwarder InvalidSigner.
    with pytest.raises(ContractRevert) as direct:
        w.net.contracts_for(w.old.ethereum_key).profiles.register(os.urandom(33), os.urandom(32))
    assert direct.value.name == "PatientForwarder_MustRelay"
    relayed = forwarding_contracts(w.net, w.old, None, w.net.dev_keys[3])
    with pytest.raises(ContractRevert) as forwarded:
        relayed.profiles.register(os.urandom(33), os.urandom(32))
    assert forwarded.value.name == "PatientForwarder_InvalidSigner"
    # The old master opens nothing written after the rotation, even told the epochs.
    saved = EpochState(w.tmp / "stale" / "patient.json")
    saved.remember("lab-results")
    saved.raise_to("lab-results", 1)
    stale = w.patient(w.old, "stale")
    (entry,) = [e for e in w.net.contracts.index.entries(w.p.address) if e.record_id == r1]
    assert bytes(entry.tag) == bytes(keys.tag("lab-results", 1))
    assert bytes(entry.tag) != bytes(w.old.tag("lab-results", 1))
    with pytest.raises(EmrShareError):
        stale.read(r1)
    assert stale.read(w.r0) == b"before"  # what the old mnemonic sealed stays its own


def test_rotation_keeps_identity_and_every_lawful_read(world: World) -> None:
    steps: list[tuple[int, int | None]] = []
    words = world.p.rotate(progress=lambda d, t: steps.append((d, t)))
    assert words != world.old.to_mnemonic() and len(words.split()) == 24
    assert steps[-1][0] == steps[-1][1] and len(steps) == steps[-1][1]
    assert not (world.tmp / "p" / "rotation.json").exists()
    assert world.p.epoch("lab") == 1
    _lawful_reads_work(world, words)


def test_rotating_an_unregistered_patient_is_refused(world: World) -> None:
    stranger = world.patient(PatientKeys(secrets.token_bytes(32)), "stranger")
    with pytest.raises(NotFound, match="register before rotating"):
        stranger.rotate()
    assert not (world.tmp / "stranger" / "rotation.json").exists()


@pytest.mark.parametrize("k", range(1, 7))
def test_rotation_interrupted_at_step_k_resumes_to_the_same_end(world: World, k: int) -> None:
    totals: list[int | None] = []

    def crash(done: int, total: int | None) -> None:
        totals.append(total)
        if done == k:
            raise RuntimeError("power cut")

    with pytest.raises(RotationInterrupted, match="run the same rotation again"):
        world.p.rotate(progress=crash)
    assert set(totals) == {6}  # signer, profile, state log, one category, two epochs' grants
    assert (world.tmp / "p" / "rotation.json").exists()
    words = world.p.rotate()
    assert not (world.tmp / "p" / "rotation.json").exists()
    assert len(world.b.grants(world.p.address, active_only=True)) == 2  # epochs 0 and 1
    _lawful_reads_work(world, words)


def test_reissued_grants_keep_their_epochs_and_add_only_the_new_one(world: World) -> None:
    net, p = world.net, world.p
    c = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[3]), state_dir=world.tmp / "c")
    world.closers.append(c)
    c.apply()
    ConsortiumAdmin(net, net.admin_key).admit(c.address, Role.PROVIDER)
    # Epoch 1, and a grant of that epoch only: c must not gain epoch 0 by the rotation.
    p.revoke(p.grant(world.a.address, "lab", expires=timedelta(days=1)).policy_id)
    r_e1 = world.a.add_record(p.address, "lab", b"epoch one", media_type="text/plain")
    made = p.grant(c.address, "lab", expires=timedelta(days=9), all_epochs=False)
    assert sorted(g.epoch for g in c.grants(p.address, active_only=True)) == [1]

    p.rotate()

    mine = c.grants(p.address, active_only=True)
    assert sorted(g.epoch for g in mine) == [1, 2]
    assert {(g.expiry, g.threshold, g.proxies) for g in mine} == {
        (made.expiry, made.threshold, made.proxies)
    }
    assert c.read(p.address, r_e1) == b"epoch one"
    with pytest.raises(EmrShareError):
        c.read(p.address, world.r0)  # epoch 0: never granted to c
    assert sorted(g.epoch for g in world.b.grants(p.address, active_only=True)) == [0, 1, 2]


def test_rotation_resumes_past_a_grantee_that_left_the_consortium(world: World) -> None:
    def crash(done: int, total: int | None) -> None:
        if done == 1:
            raise RuntimeError("power cut")

    with pytest.raises(RotationInterrupted):
        world.p.rotate(progress=crash)
    # Meanwhile the consortium removes the grantee: its re-issue can never succeed.
    registry = world.net.contracts_for(world.net.admin_key).registry
    pid = int(registry.propose(Action.REMOVE, world.b.address).event(ProposalCreated).proposal_id)
    if world.net.contracts.registry.role_of(world.b.address) is not Role.NONE:
        registry.execute(pid)
    assert world.net.contracts.registry.role_of(world.b.address) is Role.NONE

    words = world.p.rotate()  # finishes: the removed grantee's grants are not re-issued

    assert not (world.tmp / "p" / "rotation.json").exists()
    keys, _ = restore_rotated(world.net, words, world.tmp / "fresh")
    fresh = world.patient(keys, "fresh")
    assert fresh.grants(active_only=True) == []
    r1 = world.a.add_record(world.p.address, "lab", b"after", media_type="text/plain")
    assert fresh.read(r1) == b"after" and fresh.read(world.r0) == b"before"
