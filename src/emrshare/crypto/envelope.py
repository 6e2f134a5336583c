"""The record envelope: streaming authenticated encryption of record content.

Content is encrypted under a fresh random 32-byte data key with libsodium secretstream
(XChaCha20-Poly1305) in fixed-size chunks, so memory stays bounded by the chunk size
whatever the content size. Format (all integers big-endian)::

    header  = "EMRE" | major=1 | minor=0 | suite (1 byte) | chunk_size (u32) | stream header (24)
    chunk_i = secretstream_push(plaintext_i, ad = header || record_id, tag)

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and carries tag
MESSAGE; the last holds fewer (possibly zero) bytes and carries tag FINAL. Binding the
header and record id as associated data means a ciphertext moved to another record, or a
header edited in place, fails; secretstream's internal counter catches reordered or
duplicated chunks; the FINAL tag catches truncation. All of these raise one
:class:`~emrshare.errors.DecryptionError`.

Cipher suite 1 is XChaCha20-Poly1305 secretstream; the suite byte leaves room for
AES-256-GCM (FIPS sites), which is not implemented yet.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import nacl.bindings as sodium
import nacl.exceptions

from emrshare.crypto._wire import header as _header
from emrshare.crypto.keys import Rng
from emrshare.errors import DecryptionError, UnsupportedVersion, WireFormatError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ENVELOPE_HEADER_SIZE",
    "SUITE_XCHACHA20POLY1305",
    "DataKey",
    "EnvelopeInfo",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_file",
    "encrypt_stream",
]

BRAND = b"EMRE"
MAJOR = 1
#: Cipher suite 1: libsodium secretstream XChaCha20-Poly1305.
SUITE_XCHACHA20POLY1305 = 1
#: Default plaintext bytes per chunk.
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16 * 1024 * 1024
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17
_STREAM_HEADER = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
#: Size of the envelope header in bytes.
ENVELOPE_HEADER_SIZE = 6 + 1 + 4 + _STREAM_HEADER
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


#: Content to encrypt or decrypt: a binary file object or an iterable of byte strings.
Source = _Readable | BinaryIO | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class DataKey:
    """A 32-byte symmetric record key. Its repr never shows the key."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != 32:
            raise ValueError("a data key is exactly 32 bytes")

    @classmethod
    def generate(cls, *, rng: Rng | None = None) -> DataKey:
        """A fresh random data key."""
        return cls(rng(32) if rng is not None else secrets.token_bytes(32))

    def __bytes__(self) -> bytes:
        return self.key


@dataclass(frozen=True, slots=True)
class EnvelopeInfo:
    """What one pass over a stream measured: sizes and, if asked for, the plaintext SHA-256."""

    plaintext_size: int
    ciphertext_size: int
    plaintext_sha256: bytes | None = None


def ciphertext_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """The exact envelope size for ``plaintext_size`` bytes of content."""
    full, rest = divmod(plaintext_size, chunk_size)
    return ENVELOPE_HEADER_SIZE + full * (chunk_size + _ABYTES) + rest + _ABYTES


def _check_record_id(record_id: bytes) -> bytes:
    if not isinstance(record_id, bytes) or len(record_id) != 32:
        raise ValueError("record_id must be 32 bytes")
    return record_id


def _check_params(record_id: bytes, chunk_size: int) -> None:
    _check_record_id(record_id)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")


def _pieces(source: Source, size: int) -> Iterator[bytes]:
    """Yield pieces of exactly ``size`` bytes, then one final shorter (maybe empty) piece."""
    read = getattr(source, "read", None)
    if read is not None:
        while True:
            piece = read(size)
            while len(piece) < size:
                more = read(size - len(piece))
                if not more:
                    yield bytes(piece)
                    return
                piece += more
            yield bytes(piece)
    else:
        buf = bytearray()
        for part in source:  # type: ignore[union-attr]
            if not buf and len(part) == size:
                yield bytes(part)  # the common aligned case: no copy through the buffer
                continue
            buf += part
            while len(buf) >= size:
                yield bytes(buf[:size])
                del buf[:size]
        yield bytes(buf)


def encrypt_stream(
    source: Source,
    key: DataKey,
    record_id: bytes,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encrypt ``source`` and yield the envelope: the header, then one piece per chunk."""
    _check_params(record_id, chunk_size)
    return _encrypt_pieces(_pieces(source, chunk_size), key, record_id, chunk_size)


def _encrypt_pieces(
    pieces: Iterable[bytes], key: DataKey, record_id: bytes, chunk_size: int
) -> Iterator[bytes]:
    """Encrypt pieces as :func:`_pieces` yields them (full chunks, then one short one)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key.key)
    head = (
        _header(BRAND, MAJOR)
        + bytes([SUITE_XCHACHA20POLY1305])
        + chunk_size.to_bytes(4, "big")
        + stream_header
    )
    ad = head + record_id
    yield head
    push = sodium.crypto_secretstream_xchacha20poly1305_push
    for piece in pieces:
        if len(piece) == chunk_size:
            yield push(state, piece, ad, _TAG_MESSAGE)
        else:
            yield push(state, piece, ad, _TAG_FINAL)
            return


def _read_header(head: bytes) -> tuple[bytes, int, bytes]:
    if len(head) < 4 or head[:4] != BRAND:
        raise WireFormatError(
            "not an emrshare envelope: missing the EMRE header; check that the blob is a "
            "record ciphertext"
        )
    if len(head) < ENVELOPE_HEADER_SIZE:
        raise DecryptionError()
    if head[4] != MAJOR or head[5] != 0:
        raise UnsupportedVersion(
            f"envelope version {head[4]}.{head[5]} is not supported (this release reads "
            f"{MAJOR}.0); upgrade emrshare"
        )
    suite = head[6]
    if suite != SUITE_XCHACHA20POLY1305:
        raise UnsupportedVersion(
            f"envelope cipher suite {suite} is not supported by this release; upgrade emrshare"
        )
    chunk_size = int.from_bytes(head[7:11], "big")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError()
    return head, chunk_size, head[11:ENVELOPE_HEADER_SIZE]


class _HeaderThenChunks:
    """Reads the fixed-size header first, then ciphertext chunks of a size the header names."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._iter: Iterator[bytes] | None = None
        self._buf = bytearray()
        self._read = getattr(source, "read", None)

    def header(self) -> bytes:
        return self._take(ENVELOPE_HEADER_SIZE)

    def _take(self, n: int) -> bytes:
        if self._read is not None:
            out = self._read(n)
            while len(out) < n:
                more = self._read(n - len(out))
                if not more:
                    break
                out += more
            return bytes(out)
        if self._iter is None:
            self._iter = iter(self._source)  # type: ignore[arg-type]
        while len(self._buf) < n:
            part = next(self._iter, None)
            if part is None:
                break
            self._buf += part
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def chunks(self, size: int) -> Iterator[bytes]:
        while True:
            piece = self._take(size)
            yield piece
            if len(piece) < size:
                return


def decrypt_stream(source: Source, key: DataKey, record_id: bytes) -> Iterator[bytes]:
    """Decrypt an envelope and yield plaintext chunk by chunk.

    **Warning:** plaintext is yielded before the end of the stream is authenticated; a
    truncated or tampered stream raises :class:`DecryptionError` part way. Write to a
    temporary place and keep the result only once the iterator finished without error
    (:func:`decrypt_file` and :func:`decrypt_bytes` do that bookkeeping for you).
    """
    _check_record_id(record_id)
    reader = _HeaderThenChunks(source)
    head, chunk_size, stream_header = _read_header(reader.header())
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key.key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError() from exc
    ad = head + record_id
    pull = sodium.crypto_secretstream_xchacha20poly1305_pull
    full = chunk_size + _ABYTES
    for piece in reader.chunks(full):
        if len(piece) < _ABYTES:
            raise DecryptionError()
        try:
            plain, tag = pull(state, piece, ad)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionError() from exc
        # A full-size chunk must be a MESSAGE and a short one the FINAL: anything else is
        # truncation or splicing. The piece reader only yields a short piece at EOF, so
        # nothing can follow the FINAL chunk.
        if tag != (_TAG_MESSAGE if len(piece) == full else _TAG_FINAL):
            raise DecryptionError()
        yield plain


def encrypt_bytes(
    plaintext: bytes, key: DataKey, record_id: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """Encrypt an in-memory value (see :func:`encrypt_stream`)."""
    return b"".join(encrypt_stream([plaintext], key, record_id, chunk_size=chunk_size))


def decrypt_bytes(ciphertext: bytes, key: DataKey, record_id: bytes) -> bytes:
    """Decrypt an in-memory envelope; raises :class:`DecryptionError` on any failure."""
    return b"".join(decrypt_stream([ciphertext], key, record_id))


class _Counting:
    """A reader that counts the bytes it hands out."""

    def __init__(self, source: Source) -> None:
        read = getattr(source, "read", None)
        self._read = read
        self._iter = None if read is not None else iter(source)  # type: ignore[arg-type]
        self._buf = bytearray()
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        if self._read is not None:
            out = bytes(self._read(n))
        else:
            assert self._iter is not None
            while len(self._buf) < n:
                part = next(self._iter, None)
                if part is None:
                    break
                self._buf += part
            out = bytes(self._buf[:n])
            del self._buf[:n]
        self.count += len(out)
        return out


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def encrypt_file(
    src: Source,
    dst: _Writable,
    key: DataKey,
    record_id: bytes,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    hash_plaintext: bool = True,
) -> EnvelopeInfo:
    """Encrypt ``src`` into ``dst``; optionally SHA-256 the plaintext in the same pass."""
    _check_params(record_id, chunk_size)
    hasher = hashlib.sha256() if hash_plaintext else None
    plain_size = 0
    out_size = 0

    def counted() -> Iterator[bytes]:
        nonlocal plain_size
        for piece in _pieces(src, chunk_size):
            plain_size += len(piece)
            if hasher is not None:
                hasher.update(piece)
            yield piece

    for part in _encrypt_pieces(counted(), key, record_id, chunk_size):
        dst.write(part)
        out_size += len(part)
    return EnvelopeInfo(plain_size, out_size, hasher.digest() if hasher is not None else None)


def decrypt_file(
    src: Source,
    dst: _Writable,
    key: DataKey,
    record_id: bytes,
    *,
    hash_plaintext: bool = True,
) -> EnvelopeInfo:
    """Decrypt ``src`` into ``dst``.

    **Warning:** on :class:`DecryptionError`, ``dst`` holds unauthenticated partial
    plaintext; the caller must discard it (write to a temporary file, rename on success).
    """
    hasher = hashlib.sha256() if hash_plaintext else None
    plain_size = 0
    counting = _Counting(src)
    for plain in decrypt_stream(counting, key, record_id):
        plain_size += len(plain)
        if hasher is not None:
            hasher.update(plain)
        dst.write(plain)
    return EnvelopeInfo(plain_size, counting.count, hasher.digest() if hasher is not None else None)
