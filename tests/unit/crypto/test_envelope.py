"""The streaming record envelope: round trips, tampering, truncation, bounded memory."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrshare.crypto import (
    DataKey,
    ciphertext_size,
    decrypt_bytes,
    decrypt_file,
    decrypt_stream,
    encrypt_bytes,
    encrypt_file,
    encrypt_stream,
)
from emrshare.crypto.envelope import (
    ENVELOPE_HEADER_SIZE,
    SUITE_AES256GCM,
    SUITE_XCHACHA20POLY1305,
)
from emrshare.errors import DecryptionError, EmrShareError, UnsupportedVersion, WireFormatError

from .conftest import seed

KEY = DataKey(seed("envelope-key"))
RID = seed("record-id")
CHUNK = 64
ABYTES = 17
SUITES = pytest.mark.parametrize(
    "suite", [SUITE_XCHACHA20POLY1305, SUITE_AES256GCM], ids=["xchacha", "aesgcm"]
)
OVERHEAD = {SUITE_XCHACHA20POLY1305: 17, SUITE_AES256GCM: 16}


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@SUITES
@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK, 7 * CHUNK + 5])
def test_round_trip_boundary_sizes(size: int, suite: int) -> None:
    plain = bytes(i % 251 for i in range(size))
    ct = encrypt_bytes(plain, KEY, RID, chunk_size=CHUNK, suite=suite)
    assert ct[6] == suite
    assert len(ct) == ciphertext_size(size, CHUNK, suite)
    assert decrypt_bytes(ct, KEY, RID) == plain


@settings(max_examples=40, deadline=None)
@given(
    plain=st.binary(max_size=2000),
    chunk=st.integers(16, 300),
    split=st.lists(st.integers(1, 500), max_size=8),
    suite=st.sampled_from([SUITE_XCHACHA20POLY1305, SUITE_AES256GCM]),
)
def test_round_trip_any_size_and_input_shape(
    plain: bytes, chunk: int, split: list[int], suite: int
) -> None:
    # The input arrives as arbitrarily sized pieces; the output must not depend on that.
    pieces, rest = [], plain
    for n in split:
        pieces.append(rest[:n])
        rest = rest[n:]
    pieces.append(rest)
    ct = b"".join(encrypt_stream(iter(pieces), KEY, RID, chunk_size=chunk, suite=suite))
    assert len(ct) == ciphertext_size(len(plain), chunk, suite)
    assert b"".join(decrypt_stream(io.BytesIO(ct), KEY, RID)) == plain
    # ...and the ciphertext can also arrive in odd pieces.
    odd = [ct[i : i + 7] for i in range(0, len(ct), 7)]
    assert b"".join(decrypt_stream(odd, KEY, RID)) == plain


def _expect_rejected(ct: bytes, key: DataKey = KEY, rid: bytes = RID) -> EmrShareError:
    with pytest.raises(EmrShareError) as info:
        decrypt_bytes(ct, key, rid)
    return info.value


@SUITES
def test_every_single_bit_flip_is_rejected(suite: int) -> None:
    ct = encrypt_bytes(bytes(range(150)), KEY, RID, chunk_size=CHUNK, suite=suite)  # 3 chunks
    for bit in range(len(ct) * 8):
        err = _expect_rejected(_flip(ct, bit))
        if bit >= 11 * 8:  # past brand, version, suite, chunk size: pure AEAD failure
            assert isinstance(err, DecryptionError), bit


def test_header_flips_give_typed_errors() -> None:
    ct = encrypt_bytes(b"x" * 100, KEY, RID, chunk_size=CHUNK)
    assert isinstance(_expect_rejected(_flip(ct, 0)), WireFormatError)
    assert isinstance(_expect_rejected(_flip(ct, 4 * 8)), UnsupportedVersion)
    assert isinstance(_expect_rejected(_flip(ct, 5 * 8)), UnsupportedVersion)  # minor
    assert isinstance(_expect_rejected(_flip(ct, 6 * 8)), UnsupportedVersion)  # suite
    assert isinstance(_expect_rejected(_flip(ct, 10 * 8)), DecryptionError)  # chunk size


def _chunks(ct: bytes, suite: int) -> tuple[bytes, list[bytes]]:
    head, body = ct[:ENVELOPE_HEADER_SIZE], ct[ENVELOPE_HEADER_SIZE:]
    step = CHUNK + OVERHEAD[suite]
    return head, [body[i : i + step] for i in range(0, len(body), step)]


@SUITES
@pytest.mark.parametrize("size", [CHUNK * 3, CHUNK * 3 + 10])
def test_truncation_reordering_duplication_trailing_all_fail_alike(size: int, suite: int) -> None:
    ct = encrypt_bytes(bytes(size), KEY, RID, chunk_size=CHUNK, suite=suite)
    head, chunks = _chunks(ct, suite)
    assert len(chunks) == 4
    variants = {
        "drop final": head + b"".join(chunks[:-1]),
        "drop middle": head + b"".join(chunks[:1] + chunks[2:]),
        "cut last byte": ct[:-1],
        "header only": head,
        "short header": ct[: ENVELOPE_HEADER_SIZE - 1],
        "swap": head + b"".join([chunks[1], chunks[0], *chunks[2:]]),
        "duplicate": head + b"".join([chunks[0], chunks[0], *chunks[1:]]),
        "trailing byte": ct + b"\x00",
        "trailing chunk": ct + chunks[-1],
    }
    messages = set()
    for name, bad in variants.items():
        with pytest.raises(DecryptionError) as info:
            decrypt_bytes(bad, KEY, RID)
        messages.add(str(info.value))
        assert name  # for the reader of a failure
    assert len(messages) == 1  # the message never says which check failed


@SUITES
def test_wrong_key_and_wrong_record_id_fail(suite: int) -> None:
    ct = encrypt_bytes(b"secret", KEY, RID, chunk_size=CHUNK, suite=suite)
    with pytest.raises(DecryptionError):
        decrypt_bytes(ct, DataKey(seed("other")), RID)
    with pytest.raises(DecryptionError):
        decrypt_bytes(ct, KEY, seed("other-record"))


def test_file_api_hashes_and_counts() -> None:
    import hashlib

    plain = bytes(range(256)) * 40
    dst = io.BytesIO()
    info = encrypt_file(io.BytesIO(plain), dst, KEY, RID, chunk_size=1000)
    assert info.plaintext_size == len(plain)
    assert info.ciphertext_size == len(dst.getvalue()) == ciphertext_size(len(plain), 1000)
    assert info.plaintext_sha256 == hashlib.sha256(plain).digest()
    out = io.BytesIO()
    back = decrypt_file(io.BytesIO(dst.getvalue()), out, KEY, RID)
    assert out.getvalue() == plain
    assert back == info


def test_streams_lazily_so_memory_is_bounded_by_the_chunk() -> None:
    # An endless source: if encryption buffered its input, this would never return.
    endless: Iterator[bytes] = itertools.repeat(b"z" * 1000)
    out = encrypt_stream(endless, KEY, RID, chunk_size=4096)
    first = list(itertools.islice(out, 5))
    assert len(first[0]) == ENVELOPE_HEADER_SIZE
    assert all(len(c) == 4096 + ABYTES for c in first[1:])


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        encrypt_bytes(b"", KEY, b"short", chunk_size=CHUNK)
    with pytest.raises(ValueError):
        encrypt_bytes(b"", KEY, RID, chunk_size=8)
    with pytest.raises(ValueError):
        DataKey(b"short")
    with pytest.raises(ValueError, match="suite"):
        encrypt_bytes(b"", KEY, RID, suite=9)
    assert "key" not in repr(KEY).replace("DataKey", "")
    assert seed("envelope-key").hex() not in repr(KEY)


def test_suites_are_not_interchangeable() -> None:
    # Relabelling a ChaCha envelope as AES-GCM (or back) fails authentication.
    for suite, other in ((SUITE_XCHACHA20POLY1305, SUITE_AES256GCM), (SUITE_AES256GCM, 1)):
        ct = bytearray(encrypt_bytes(b"x" * 100, KEY, RID, chunk_size=CHUNK, suite=suite))
        ct[6] = other
        with pytest.raises(DecryptionError):
            decrypt_bytes(bytes(ct), KEY, RID)


def test_a_bare_bytes_value_is_one_piece() -> None:
    ct = b"".join(encrypt_stream(b"abc" * 50, KEY, RID, chunk_size=CHUNK))
    assert b"".join(decrypt_stream(ct, KEY, RID)) == b"abc" * 50
    out = io.BytesIO()
    decrypt_file(ct, out, KEY, RID)
    assert out.getvalue() == b"abc" * 50
