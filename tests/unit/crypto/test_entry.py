"""Index entries: canonical encoding, author signatures, sealing and opening."""

from __future__ import annotations

import dataclasses

import cbor2
import pytest
import umbral_pre
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from emrshare.crypto import IndexEntry, SealedEntry, open_entry, seal_entry
from emrshare.crypto.entry import COMPACT_ENTRY_SIZE, ENTRY_SIZE, EntryContext
from emrshare.errors import (
    DecryptionError,
    EmrShareError,
    InvalidInput,
    UnsupportedVersion,
    VerificationError,
    WireFormatError,
)

from .conftest import World, make_entry, origin_of, sealed_for


def test_compact_encoding_round_trips_with_its_context(world: World) -> None:
    entry = make_entry(world)
    raw = bytes(entry)
    assert raw[:6] == b"EMIE\x01\x02"  # 1.2: compact, written whenever it fits
    assert len(raw) == COMPACT_ENTRY_SIZE == 180
    assert raw == entry.encode(minor=2) == bytes(make_entry(world))  # deterministic
    # No record id, author or category in the plaintext: they come from the event and key.
    for left_out in (bytes(entry.record_id), bytes.fromhex(entry.author[2:]), b"labs"):
        assert left_out not in raw
    assert IndexEntry.from_bytes(raw, context=origin_of(entry)) == entry
    with pytest.raises(InvalidInput, match="context"):
        IndexEntry.from_bytes(raw)
    sealed = seal_entry(entry, world.patient.category_public_key("labs", 0))
    assert len(bytes(sealed)) == 333
    with pytest.raises(InvalidInput, match="origin"):
        open_entry(sealed, world.patient, "labs", 0)


def test_attack_compact_entry_truncated_or_extended(world: World) -> None:
    entry = make_entry(world)
    raw, ctx = bytes(entry), origin_of(entry)
    for bad in (raw[:-1], raw + b"\x00", raw[:6], raw[:40]):
        with pytest.raises(WireFormatError, match="expected 174 bytes"):
            IndexEntry.from_bytes(bad, context=ctx)
        # Sealed and opened, the same bytes are one DecryptionError.
        capsule, ct = umbral_pre.encrypt(world.patient.category_public_key("labs", 0), bad)
        with pytest.raises(DecryptionError):
            open_entry(SealedEntry(capsule, bytes(ct)), world.patient, "labs", 0, origin=ctx)
    for offset, value in ((6, 0x12), (6 + 108, 0), (6 + 108, 255)):  # CID form, media code
        forged = bytearray(raw)
        forged[offset] = value
        with pytest.raises(WireFormatError, match="unknown"):
            IndexEntry.from_bytes(bytes(forged), context=ctx)


def test_attack_compact_entry_moved_to_another_event(world: World) -> None:
    """A 1.2 entry does not name its record id or author, so a copy appended elsewhere
    (another patient, tag, sequence or author) opens; its author signature, which covers
    them, is what refuses it."""
    entry = make_entry(world)
    sealed = seal_entry(entry, world.patient.category_public_key("labs", 0))
    right = origin_of(entry)
    opened = open_entry(sealed, world.patient, "labs", 0, origin=right)
    opened.verify_author(world.patient.address)
    moved = (
        dataclasses.replace(right, record_id=b"\x05" * 32),  # another tag or sequence
        dataclasses.replace(right, author=world.grantee.address),  # appended by another
    )
    for origin in moved:
        forged = open_entry(sealed, world.patient, "labs", 0, origin=origin)
        with pytest.raises(VerificationError):
            forged.verify_author(world.patient.address)
    with pytest.raises(VerificationError):  # another patient's index
        opened.verify_author(world.grantee.address)


def test_attack_compact_entry_under_another_category_or_epoch(world: World) -> None:
    """Re-sealed (by anyone: category public keys are public) to another category's or
    epoch's key, a 1.2 entry opens as that category, but the author signed the one it was
    written for."""
    entry = make_entry(world)
    for category, epoch in (("imaging", 0), ("labs", 1)):
        resealed = seal_entry(entry, world.patient.category_public_key(category, epoch))
        origin = EntryContext(entry.record_id, entry.author, category, epoch)
        forged = open_entry(resealed, world.patient, category, epoch, origin=origin)
        assert (forged.category, forged.epoch) == (category, epoch)
        with pytest.raises(VerificationError):
            forged.verify_author(world.patient.address)


def test_uncommon_media_type_or_cid_falls_back_to_padded(world: World) -> None:
    entry = make_entry(world)
    for change in (
        {"media_type": "application/x-uncommon"},
        {"cid": "bafkreiother"},
        {"cid": "BAFKREIGH2AKISCAILDCQABSYG3DFR6CHU3FGPREGIYMSCK7E7AQA4S52ZY"},
        {"size": 2**48},
    ):
        other = dataclasses.replace(entry, **change)
        assert bytes(other)[:6] == b"EMIE\x01\x01" and len(bytes(other)) == ENTRY_SIZE
        with pytest.raises(WireFormatError, match=r"1\.2"):
            other.encode(minor=2)


def test_padded_encoding_round_trip_and_is_canonical(world: World) -> None:
    entry = make_entry(world)
    raw = entry.encode(minor=1)
    assert raw[:6] == b"EMIE\x01\x01"  # 1.1: padded, still written for what 1.2 cannot hold
    assert len(raw) == ENTRY_SIZE
    assert IndexEntry.from_bytes(raw) == entry
    assert make_entry(world).encode(minor=1) == raw  # deterministic
    n = int.from_bytes(raw[6:8], "big")
    body = raw[8 : 8 + n]
    assert raw[8 + n :] == bytes(ENTRY_SIZE - 8 - n)
    # Release 1's unpadded 1.0 encoding is still read.
    assert IndexEntry.from_bytes(b"EMIE\x01\x00" + body) == entry
    # A non-canonical body (indefinite-length array) with the same values is refused,
    # padded (1.1) or not (1.0).
    items = cbor2.loads(body)
    loose = b"\x9f" + b"".join(cbor2.dumps(i) for i in items) + b"\xff"
    with pytest.raises(WireFormatError, match="canonical"):
        IndexEntry.from_bytes(b"EMIE\x01\x00" + loose)
    padded_loose = len(loose).to_bytes(2, "big") + loose
    padded_loose += bytes(ENTRY_SIZE - 6 - len(padded_loose))
    with pytest.raises(WireFormatError, match="canonical"):
        IndexEntry.from_bytes(raw[:6] + padded_loose)
    # Non-zero padding, a short or long bucket, a length past the end: refused.
    for bad in (raw[:-1] + b"\x01", raw[:-1], raw + b"\x00", raw[:6] + b"\xff\xff" + raw[8:]):
        with pytest.raises(WireFormatError):
            IndexEntry.from_bytes(bad)
    with pytest.raises(UnsupportedVersion):
        IndexEntry.from_bytes(b"EMIE\x02\x00" + raw[6:])
    # A newer minor version is refused too, so no header bit is malleable.
    with pytest.raises(UnsupportedVersion):
        IndexEntry.from_bytes(b"EMIE\x01\x03" + raw[6:])


def test_repr_hides_the_data_key(world: World) -> None:
    entry = make_entry(world)
    assert entry.data_key.key.hex() not in repr(entry)
    assert repr(entry.data_key.key) not in repr(entry)


def test_author_signature_binds_patient_and_fields(world: World) -> None:
    entry = make_entry(world)
    entry.verify_author(world.patient.address)
    assert entry.author == world.writer.address
    with pytest.raises(VerificationError):
        entry.verify_author(world.grantee.address)  # another patient
    for change in (
        {"cid": "bafkreiother"},
        {"plaintext_sha256": b"\x01" * 32},
        {"category": "imaging"},
        {"record_id": b"\x02" * 32},
        {"epoch": 1},
    ):
        forged = dataclasses.replace(entry, **change)
        with pytest.raises(VerificationError):
            forged.verify_author(world.patient.address)
    bad_sig = dataclasses.replace(entry, author_signature=b"\x00" * 65)
    with pytest.raises(VerificationError):
        bad_sig.verify_author(world.patient.address)


def test_seal_and_open_as_patient(world: World) -> None:
    entry = make_entry(world)
    sealed = seal_entry(entry, world.patient.category_public_key("labs", 0))
    raw = bytes(sealed)
    assert raw[:6] == b"EMSE\x01\x00"
    parsed = SealedEntry.from_bytes(raw)
    assert bytes(parsed) == raw
    assert parsed.capsule_hash == keccak(bytes(parsed.capsule))
    origin = origin_of(entry)
    assert open_entry(parsed, world.patient, "labs", 0, origin=origin) == entry
    with pytest.raises(DecryptionError):
        open_entry(parsed, world.patient, "labs", 1, origin=origin)
    with pytest.raises(DecryptionError):
        open_entry(parsed, world.patient, "imaging", 0, origin=origin)
    # A padded (1.1) entry still opens, with or without its origin, and must match it.
    capsule, ct = umbral_pre.encrypt(
        world.patient.category_public_key("labs", 0), entry.encode(minor=1)
    )
    old = SealedEntry(capsule, bytes(ct))
    assert open_entry(old, world.patient, "labs", 0) == entry
    assert open_entry(old, world.patient, "labs", 0, origin=origin) == entry
    with pytest.raises(VerificationError):
        open_entry(
            old, world.patient, "labs", 0, origin=dataclasses.replace(origin, record_id=b"\1" * 32)
        )


def test_mislabelled_entry_is_a_forgery(world: World) -> None:
    # A padded entry sealed to the labs key but claiming to be imaging: refused.
    entry = make_entry(world, category="imaging")
    capsule, ct = umbral_pre.encrypt(
        world.patient.category_public_key("labs", 0), entry.encode(minor=1)
    )
    with pytest.raises(VerificationError):
        open_entry(SealedEntry(capsule, bytes(ct)), world.patient, "labs", 0)


@pytest.fixture(scope="module")
def sealed_bytes(world: World) -> bytes:
    return bytes(sealed_for(world))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_bit_flip_in_a_sealed_entry_is_rejected(
    world: World, sealed_bytes: bytes, data: st.DataObject
) -> None:
    bit = data.draw(st.integers(0, len(sealed_bytes) * 8 - 1))
    bad = bytearray(sealed_bytes)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EmrShareError):
        open_entry(
            SealedEntry.from_bytes(bytes(bad)),
            world.patient,
            "labs",
            0,
            origin=origin_of(make_entry(world)),
        )


def test_garbage_is_a_wire_format_error() -> None:
    for junk in (b"", b"EMSE", b"EMSE\x01\x00\x00", b"EMSE\x01\x00\x00\x10abc", b"nope" * 20):
        with pytest.raises(WireFormatError):
            SealedEntry.from_bytes(junk)


def test_fast_signer_recovery_agrees_with_eth_account(world: World) -> None:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from emrshare.crypto.entry import recover_eip191

    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    for i in range(8):
        digest = keccak(b"digest %d" % i)
        sig = bytes(
            Account.sign_message(
                encode_defunct(primitive=digest), world.writer.ethereum_key
            ).signature
        )
        assert recover_eip191(digest, sig) == world.writer.address
        # The malleable twin (s -> n - s, v flipped) and v in {0, 1} recover the same
        # key in eth-account, so they are other encodings of one signature: refused.
        s_ = int.from_bytes(sig[32:64], "big")
        twin = sig[:32] + (n - s_).to_bytes(32, "big") + bytes([55 - sig[64]])
        slow = Account.recover_message(encode_defunct(primitive=digest), signature=twin)
        assert slow == world.writer.address
        assert recover_eip191(digest, twin) is None
        low_v = sig[:64] + bytes([sig[64] - 27])
        assert Account.recover_message(encode_defunct(primitive=digest), signature=low_v) == (
            world.writer.address
        )
        assert recover_eip191(digest, low_v) is None
    assert recover_eip191(keccak(b"x"), b"\x00" * 65) is None


def test_fast_author_signature_is_eth_accounts() -> None:
    # IndexEntry.create signs through coincurve directly; the signature and author must
    # be exactly what eth-account's EIP-191 sign_message gives.
    import os as _os

    from eth_account import Account as _Account
    from eth_account.messages import encode_defunct as _encode_defunct

    from emrshare.crypto.entry import sign_eip191

    for _ in range(200):
        key, digest = _os.urandom(32), _os.urandom(32)
        expected = _Account.sign_message(_encode_defunct(primitive=digest), key)
        signature, author = sign_eip191(digest, key)
        assert signature == bytes(expected.signature)
        assert author == _Account.from_key(key).address
    for bad in (b"\x00" * 32, b"\xff" * 32, b"abc"):
        with pytest.raises(ValueError):
            sign_eip191(_os.urandom(32), bad)


def test_raw_capsule_checks_the_layout_only(sealed_bytes: bytes) -> None:
    # What a forked sealing worker answered, or what a proxy indexes: the layout is
    # checked (brand, version, capsule length, a ciphertext), the capsule's points are
    # not parsed; the bytes are the capsule's own.
    raw = SealedEntry.raw_capsule(sealed_bytes)
    assert raw is not None and raw == bytes(SealedEntry.from_bytes(sealed_bytes).capsule)
    assert SealedEntry.from_bytes(sealed_bytes).capsule_hash == keccak(raw)
    n = int.from_bytes(sealed_bytes[6:8], "big")
    bad_length = sealed_bytes[:6] + (n - 1).to_bytes(2, "big") + sealed_bytes[8:]
    for junk in (
        b"",
        b"EMSE\x01\x00",
        sealed_bytes[: 8 + n],  # no ciphertext
        b"EMSD" + sealed_bytes[4:],  # another brand
        sealed_bytes[:4] + b"\x02\x00" + sealed_bytes[6:],  # another version
        bad_length,
        b"nope" * 200,
    ):
        assert SealedEntry.raw_capsule(junk) is None
