"""Password-protected keystores: round trip, mode 0600, wrong password, tampering."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from emrshare.crypto import (
    MemberKeys,
    PatientKeys,
    load_keystore,
    load_member_keystore,
    load_patient_keystore,
    save_keystore,
)
from emrshare.errors import KeystoreError, UnsupportedVersion

from .conftest import World, seed

# Cheap KDF for tests only; production uses the MODERATE default.
CHEAP = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}


def test_patient_round_trip_mode_and_no_secret_on_disk(tmp_path: Path, world: World) -> None:
    path = save_keystore(tmp_path / "patient.json", world.patient, "correct horse", **CHEAP)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert world.patient.master_secret.hex() not in text
    assert world.patient.to_mnemonic().split()[0] not in text.split('"')
    doc = json.loads(text)
    assert doc["kdf"]["name"] == "argon2id" and doc["version"] == 1
    keys = load_patient_keystore(path, "correct horse")
    assert keys.master_secret == world.patient.master_secret
    assert [p.name for p in tmp_path.iterdir()] == ["patient.json"]  # no temp files left


def test_member_round_trip_keeps_ethereum_override(tmp_path: Path) -> None:
    dev_key = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
    member = MemberKeys(seed("hospital"), ethereum_key=dev_key)
    path = save_keystore(tmp_path / "m.json", member, b"pw", **CHEAP)
    back = load_member_keystore(path, b"pw")
    assert back.ethereum_key == dev_key and back.seed == member.seed
    with pytest.raises(KeystoreError, match="member keys"):
        load_patient_keystore(path, b"pw")


def test_overwrite_is_atomic_replacement(tmp_path: Path, world: World) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, world.patient, "one", **CHEAP)
    save_keystore(path, world.grantee, "two", **CHEAP)
    assert isinstance(load_keystore(path, "two"), MemberKeys)


def test_wrong_password(tmp_path: Path, world: World) -> None:
    path = save_keystore(tmp_path / "p.json", world.patient, "right", **CHEAP)
    with pytest.raises(KeystoreError, match="wrong password") as info:
        load_keystore(path, "wrong")
    assert "right" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("address",), "0x0000000000000000000000000000000000000001"),
        (("kind",), "member"),
        (("kdf", "opslimit"), argon2id.OPSLIMIT_MIN + 1),
        (("kdf", "salt"), "00" * 16),
        (("cipher", "nonce"), "00" * 24),
        (("ciphertext",), None),
    ],
)
def test_tampering_is_detected(
    tmp_path: Path, world: World, field: tuple[str, ...], value: object
) -> None:
    path = save_keystore(tmp_path / "p.json", world.patient, "pw", **CHEAP)
    doc = json.loads(path.read_text())
    target = doc
    for name in field[:-1]:
        target = target[name]
    if value is None:  # flip one bit of the ciphertext
        raw = bytearray.fromhex(target[field[-1]])
        raw[0] ^= 1
        value = raw.hex()
    target[field[-1]] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError):
        load_keystore(path, "pw")


def test_damaged_or_newer_files(tmp_path: Path, world: World) -> None:
    path = save_keystore(tmp_path / "p.json", world.patient, "pw", **CHEAP)
    doc = json.loads(path.read_text())
    (tmp_path / "v2.json").write_text(json.dumps({**doc, "version": 2}))
    with pytest.raises(UnsupportedVersion):
        load_keystore(tmp_path / "v2.json", "pw")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(KeystoreError):
        load_keystore(tmp_path / "junk.json", "pw")
    (tmp_path / "huge.json").write_text(
        json.dumps({**doc, "kdf": {**doc["kdf"], "memlimit": 2**40}})
    )
    with pytest.raises(KeystoreError, match="out-of-range"):
        load_keystore(tmp_path / "huge.json", "pw")
    with pytest.raises(KeystoreError, match="no keystore"):
        load_keystore(tmp_path / "missing.json", "pw")
    with pytest.raises(ValueError):
        save_keystore(tmp_path / "x.json", PatientKeys(seed("x")), "", **CHEAP)


def test_unwritable_location_is_a_keystore_error(tmp_path: Path, world: World) -> None:
    with pytest.raises(KeystoreError, match="directory exists and is writable"):
        save_keystore(tmp_path / "missing" / "p.json", world.patient, "pw", **CHEAP)
    assert not (tmp_path / "missing").exists()
