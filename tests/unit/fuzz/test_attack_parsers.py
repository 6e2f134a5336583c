"""Acceptances the campaign found in the parsers, each pinned by the attack that found it."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import cbor2
import pytest

from emrshare.crypto.grants import ProxyKeyFrag, reencrypt, verify_cfrags
from emrshare.crypto.keystore import load_keystore, save_keystore
from emrshare.errors import KeystoreError, VerificationError, WireFormatError

from .families import PASSWORD, World

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(random.Random(11), tmp_path_factory.mktemp("parsers"))


def test_attack_cfrag_with_trailing_bytes_verifies(world: World) -> None:
    """umbral-pre's ``CapsuleFrag.from_bytes`` ignores trailing bytes."""
    cfrag = bytes(reencrypt(world.sealed.capsule, world.kfrag))
    for raw in (cfrag + b"\x00", cfrag + b"trailing garbage"):
        check = verify_cfrags(
            world.sealed.capsule, {"p": raw}, world.gmap, world.grantee.receiving_public_key
        )
        assert check.failed == {"p": "malformed capsule fragment"} and not check.verified
    check = verify_cfrags(
        world.sealed.capsule, {"p": cfrag}, world.gmap, world.grantee.receiving_public_key
    )
    assert list(check.verified) == ["p"]


def test_attack_kfrag_with_trailing_bytes_verifies(world: World) -> None:
    """The patient signs ``bytes(kfrag)`` re-encoded, so junk after the kfrag inside its
    CBOR byte string passed the signature check."""
    data = bytes(world.kfrag)
    fields = cbor2.loads(data[6:])
    fields[7] += b"\x00junk"
    mutant = data[:6] + cbor2.dumps(fields, canonical=True)
    with pytest.raises(WireFormatError, match="not canonical"):
        world.verify_kfrag(ProxyKeyFrag.from_bytes(mutant))
    assert bytes(world.verify_kfrag(ProxyKeyFrag.from_bytes(data))) == data


@pytest.mark.parametrize("twin", ["high-s", "v-0/1", "v-eip155"])
def test_attack_author_signature_has_other_encodings(world: World, twin: str) -> None:
    """eth-account's recovery reads (r, n - s, v') and v in {0, 1} or >= 35 as the same
    signature: an entry's signature bytes could be changed and still verify."""
    sig = world.entry.author_signature
    s = int.from_bytes(sig[32:64], "big")
    other = {
        "high-s": sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]]),
        "v-0/1": sig[:64] + bytes([sig[64] - 27]),
        "v-eip155": sig[:64] + bytes([sig[64] - 27 + 37]),
    }[twin]
    world.entry.verify_author(world.patient.address)
    with pytest.raises(VerificationError, match="malformed"):
        dataclasses.replace(world.entry, author_signature=other).verify_author(
            world.patient.address
        )


@pytest.mark.parametrize("field", ["opslimit", "memlimit"])
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_attack_keystore_infinity_kdf_limit(
    world: World, tmp_path: Path, field: str, value: str
) -> None:
    """``int(float("inf"))`` raises OverflowError, outside the error tree."""
    path = tmp_path / "k.json"
    save_keystore(path, world.grantee, PASSWORD, opslimit=1, memlimit=8192)
    doc = json.loads(path.read_text())
    doc["kdf"][field] = float(value.replace("Infinity", "inf"))
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="malformed KDF"):
        load_keystore(path, PASSWORD)


def test_attack_keystore_deep_nesting(tmp_path: Path) -> None:
    """With py_ecc's recursion limit (100,000) deep JSON overflows the C stack."""
    path = tmp_path / "k.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(KeystoreError, match="not a readable keystore"):
        load_keystore(path, PASSWORD)
