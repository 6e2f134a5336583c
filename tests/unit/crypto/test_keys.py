"""Patient and member key derivation, mnemonics, Shamir shares, public bundles."""

from __future__ import annotations

import re

import pytest

from emrshare.crypto import MemberKeys, MemberPublicKeys, PatientKeys, PatientPublicKeys
from emrshare.crypto.keys import category_label
from emrshare.errors import UnsupportedVersion, WireFormatError

from .conftest import World, seed


def test_derivation_is_deterministic(world: World) -> None:
    again = PatientKeys(seed("patient"))
    assert again.address == world.patient.address
    assert again.tag("labs", 3) == world.patient.tag("labs", 3)
    assert (
        again.category_public_key("labs", 3).to_compressed_bytes()
        == world.patient.category_public_key("labs", 3).to_compressed_bytes()
    )


def test_category_epoch_keys_and_tags_are_separated(world: World) -> None:
    p = world.patient
    pairs = [("labs", 0), ("labs", 1), ("imaging", 0), ("lab", 0), ("labs0", 0)]
    keys = {p.category_public_key(c, e).to_compressed_bytes() for c, e in pairs}
    tags = {p.tag(c, e) for c, e in pairs}
    assert len(keys) == len(tags) == len(pairs)
    # The kfrag signer is never one of the delegating keys.
    assert p.verifying_key.to_compressed_bytes() not in keys


def test_category_label_is_length_prefixed() -> None:
    # ("ab", 0) and ("a", ...) must not collide through concatenation.
    assert category_label("ab", 0) != category_label("a", int.from_bytes(b"b\x00\x00\x00", "big"))
    with pytest.raises(ValueError, match="NFC"):
        category_label("e\u0301", 0)
    with pytest.raises(ValueError):
        category_label("", 0)
    with pytest.raises(ValueError):
        category_label("labs", -1)


def test_mnemonic_round_trip(world: World) -> None:
    words = world.patient.to_mnemonic()
    assert len(words.split()) == 24
    restored = PatientKeys.from_mnemonic(words)
    assert restored.master_secret == world.patient.master_secret


def test_bad_mnemonic_is_a_typed_error_without_the_words(world: World) -> None:
    words = world.patient.to_mnemonic().split()
    words[0], words[1] = words[1], words[0]
    bad = " ".join(words)
    with pytest.raises(WireFormatError) as info:
        PatientKeys.from_mnemonic(bad)
    assert words[0] not in str(info.value)
    short = "abandon " * 11 + "about"
    with pytest.raises(WireFormatError, match="24 words"):
        PatientKeys.from_mnemonic(short)


def test_shamir_round_trip(world: World) -> None:
    shares = world.patient.to_shamir_shares(3, 5, passphrase=b"pw")
    assert len(shares) == 5
    restored = PatientKeys.from_shamir_shares([shares[4], shares[0], shares[2]], passphrase=b"pw")
    assert restored.master_secret == world.patient.master_secret
    with pytest.raises(WireFormatError):
        PatientKeys.from_shamir_shares(shares[:2], passphrase=b"pw")


def test_member_keys_from_seed_and_override(world: World) -> None:
    m = MemberKeys(seed("grantee"))
    assert m.address == world.grantee.address
    dev_key = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    funded = MemberKeys(seed("grantee"), ethereum_key=dev_key)
    assert funded.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert funded.ethereum_key_overridden and not m.ethereum_key_overridden
    assert funded.receiving_public_key.to_compressed_bytes() == (
        m.receiving_public_key.to_compressed_bytes()
    )
    with pytest.raises(ValueError):
        MemberKeys(b"short")
    with pytest.raises(ValueError):
        MemberKeys(seed("x"), ethereum_key=b"\x00" * 32)


def test_public_bundles_round_trip(world: World) -> None:
    mp = world.grantee.public_keys()
    assert MemberPublicKeys.from_bytes(bytes(mp)) == mp
    assert len(bytes(mp)) == 6 + 85
    pp = world.patient.public_keys()
    assert PatientPublicKeys.from_bytes(bytes(pp)) == pp
    assert (
        pp.verifying_key.to_compressed_bytes() == world.patient.verifying_key.to_compressed_bytes()
    )
    with pytest.raises(WireFormatError):
        MemberPublicKeys.from_bytes(bytes(pp))
    with pytest.raises(UnsupportedVersion):
        MemberPublicKeys.from_bytes(b"EMMP\x02\x00" + bytes(mp)[6:])
    with pytest.raises(WireFormatError):
        MemberPublicKeys.from_bytes(bytes(mp)[:-1])


def test_repr_hides_secrets(world: World) -> None:
    for obj in (world.patient, world.grantee):
        text = repr(obj)
        assert world.patient.master_secret.hex() not in text
        assert obj.ethereum_key.hex() not in text
        assert obj.address in text


def test_bad_shamir_shares_never_repeat_their_words(world: World) -> None:
    shares = world.patient.to_shamir_shares(2, 3)
    words = shares[0].split()
    misspelt = " ".join([*words[:-1], words[-1] + "x"])
    swapped = " ".join([words[1], words[0], *words[2:]])
    for bad in ([misspelt, shares[1]], [swapped, shares[1]], shares[:1]):
        with pytest.raises(WireFormatError) as info:
            PatientKeys.from_shamir_shares(bad)
        message = str(info.value)
        # shamir-mnemonic quotes the offending words; none may survive into our message.
        assert not re.search(r"[\"'][a-z]", message), message
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_operation_nonces_are_derived_and_separated(world: World) -> None:
    p = world.patient
    again = PatientKeys(seed("patient"))
    op = bytes(range(16))
    assert p.operation_nonce(op, 0) == again.operation_nonce(op, 0)
    assert len(p.operation_nonce(op, 0)) == 32
    nonces = {
        p.operation_nonce(op, 0),
        p.operation_nonce(op, 1),
        p.operation_nonce(op[:-1] + b"\x01", 0),
        PatientKeys(seed("other")).operation_nonce(op, 0),
    }
    assert len(nonces) == 4
    # Not the tag key, not a plain hash of the inputs.
    assert p.operation_nonce(op, 0) not in {bytes(p.tag("labs", 0)), op}
    with pytest.raises(ValueError):
        p.operation_nonce(b"", 0)
    with pytest.raises(ValueError):
        p.operation_nonce(op, -1)
