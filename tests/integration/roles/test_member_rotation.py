"""Issue 13, key rotation of members: after a hospital or a proxy rotates its keys, the
old keys open nothing new (the proxies refuse them), and the patient's client re-issues
grants and writer authorizations to the new keys without the patient retyping anything."""

from __future__ import annotations

import secrets
import shutil
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from emrshare import AccessDenied, ConsortiumAdmin, LocalNetwork, Patient, Provider
from emrshare.chain import GrantCreated, KeysRotated, Role
from emrshare.crypto import MemberKeys, PatientKeys, load_member_keystore, save_keystore
from emrshare.crypto.grants import open_sealed_kfrag
from emrshare.errors import EmrShareError, KeystoreError, NotFound
from emrshare.roles._rotation import rotate_member_keys, rotate_member_keystore, rotation_files

pytestmark = pytest.mark.integration


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.net = LocalNetwork.start(tmp / "net")
        self.admin = ConsortiumAdmin(self.net, self.net.admin_key)
        self.writer = self.member(0, "writer")
        self.reader = self.member(1, "reader")
        self.patient = Patient(
            self.net,
            PatientKeys(secrets.token_bytes(32), ethereum_key=self.net.dev_keys[2]),
            state_dir=tmp / "patient",
        )
        self.patient.register()
        self.patient.authorize_writer(self.writer.address, "lab")
        self.opened: list[Provider | Patient] = [self.writer, self.reader, self.patient]

    def member(self, i: int, name: str) -> Provider:
        m = Provider(
            self.net,
            MemberKeys.generate(ethereum_key=self.net.dev_keys[i]),
            state_dir=self.tmp / name,
        )
        m.apply()
        self.admin.admit(m.address, Role.PROVIDER)
        return m

    def reopen(self, keys: MemberKeys, name: str) -> Provider:
        m = Provider(self.net, keys, state_dir=self.tmp / name)
        self.opened.append(m)
        return m

    def close(self) -> None:
        for m in self.opened:
            m.close()
        self.net.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w  # type: ignore[misc]
    w.close()


def test_attack_rotated_hospital_old_keys_read_refused_reissued_grant_reads_all(
    world: World,
) -> None:
    p, a, old_b = world.patient, world.writer, world.reader
    r0 = a.add_record(p.address, "lab", b"before rotation", media_type="text/plain")
    p.grant(old_b.address, "lab", expires=timedelta(days=30))
    assert old_b.read(p.address, r0) == b"before rotation"

    new_keys = rotate_member_keys(world.net, old_b.keys)
    assert new_keys.address == old_b.address
    assert new_keys.receiving_public_key != old_b.keys.receiving_public_key
    r1 = a.add_record(p.address, "lab", b"after rotation", media_type="text/plain")

    # The old keys: every proxy refuses (the kfrags target the old receiving key).
    for record in (r0, r1):
        with pytest.raises(AccessDenied, match="grantee_keys_rotated"):
            old_b.read(p.address, record)
    new_b = world.reopen(new_keys, "reader")
    assert new_b.grants(p.address, active_only=True) == []  # old grant maps: old box key

    done = p.refresh_rotated()
    assert done is not None and done.sent == 2  # one new grant, one revocation
    assert p.refresh_rotated() is None  # nothing left to follow
    active = p.grants(active_only=True)
    assert len(active) == 1 and active[0].grantee == new_b.address
    assert new_b.read(p.address, r0) == b"before rotation"
    assert new_b.read(p.address, r1) == b"after rotation"
    with pytest.raises(AccessDenied):
        old_b.read(p.address, r1)
    assert p.epoch("lab") == 0  # re-issued without moving the epoch


def test_rotated_writer_writes_again_after_reauthorization(world: World) -> None:
    p, old_a, b = world.patient, world.writer, world.reader
    p.grant(b.address, "lab", expires=timedelta(days=30))
    new_keys = rotate_member_keys(world.net, old_a.keys)
    new_a = world.reopen(new_keys, "writer-new")
    # The authorization on chain is sealed to the old box key: useless to the new one.
    with pytest.raises(EmrShareError):
        new_a.add_record(p.address, "lab", b"too early", media_type="text/plain")

    done = p.refresh_rotated()
    assert done is not None and done.sent == 1  # the writer's new authorization
    rid = new_a.add_record(p.address, "lab", b"written with new keys", media_type="text/plain")
    assert p.read(rid) == b"written with new keys"
    assert b.read(p.address, rid) == b"written with new keys"
    assert p.refresh_rotated() is None


def test_rotated_proxy_gets_new_grants_sealed_to_its_new_box_key(world: World) -> None:
    net, p, a, b = world.net, world.patient, world.writer, world.reader
    rid = a.add_record(p.address, "lab", b"via proxies", media_type="text/plain")
    old = p.grant(b.address, "lab", expires=timedelta(days=30))
    proxy = net.proxy_keys[0]
    new_proxy = rotate_member_keys(net, proxy)

    done = p.refresh_rotated()
    assert done is not None and done.sent == 2
    (pid,) = done.policy_ids
    (ev,) = net.contracts.grants.events(GrantCreated, policy_id=pid)
    assert ev.expiry == old.expiry and ev.threshold == old.threshold
    i = [x.lower() for x in ev.proxies].index(proxy.address.lower())
    open_sealed_kfrag(ev.sealed_kfrags[i], new_proxy)  # opens for the new box key
    with pytest.raises(EmrShareError):
        open_sealed_kfrag(ev.sealed_kfrags[i], proxy)  # not for the old one
    # The running proxy still holds its old keys; the other proxies reach the threshold.
    assert b.read(p.address, rid) == b"via proxies"


def _rotations(world: World, who: str) -> int:
    return len(list(world.net.contracts.registry.events(KeysRotated, account=who)))


def test_keystore_rotation_resumes_at_every_step(world: World, tmp_path: Path) -> None:
    fast = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
    keys = world.reader.keys
    path = save_keystore(tmp_path / "reader.keystore", keys, "pw", **fast)
    backup, pending = rotation_files(path)

    # Interrupted after the new keys were written, before the transaction.
    shutil.copyfile(path, backup)
    planned = keys.rotated()
    save_keystore(pending, planned, "pw", **fast)
    new = rotate_member_keystore(world.net, path, "pw")
    assert new.seed == planned.seed and new.address == keys.address
    assert load_member_keystore(path, "pw").seed == planned.seed
    assert not backup.exists() and not pending.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _rotations(world, keys.address) == 1

    # Interrupted after the transaction, before the replace: nothing is sent again.
    second = new.rotated()
    shutil.copyfile(path, backup)
    save_keystore(pending, second, "pw", **fast)
    world.net.contracts_for(new.ethereum_key).registry.rotate_keys(
        second.public_keys().receiving_key_bytes, second.public_keys().box_key_bytes
    )
    assert rotate_member_keystore(world.net, path, "pw").seed == second.seed
    assert _rotations(world, keys.address) == 2

    # Interrupted after the replace, before the backup went: done, nothing sent.
    save_keystore(backup, new, "pw", **fast)
    assert rotate_member_keystore(world.net, path, "pw").seed == second.seed
    assert not backup.exists() and _rotations(world, keys.address) == 2

    # A wrong password writes nothing; a fresh rotation publishes the keys it returns.
    with pytest.raises(KeystoreError):
        rotate_member_keystore(world.net, path, "wrong")
    assert not backup.exists() and not pending.exists()
    third = rotate_member_keystore(world.net, path, "pw")
    registered = world.net.contracts.registry.member(keys.address)
    assert bytes(registered.umbral_key) == third.public_keys().receiving_key_bytes
    assert _rotations(world, keys.address) == 3


def test_rotating_a_non_member_is_refused_before_anything_is_written(
    world: World, tmp_path: Path
) -> None:
    stranger = MemberKeys.generate(ethereum_key=world.net.dev_keys[3])
    path = save_keystore(
        tmp_path / "s.keystore",
        stranger,
        "pw",
        opslimit=argon2id.OPSLIMIT_MIN,
        memlimit=argon2id.MEMLIMIT_MIN,
    )
    with pytest.raises(NotFound, match="not a consortium member"):
        rotate_member_keystore(world.net, path, "pw")
    assert not any(p.exists() for p in rotation_files(path))
