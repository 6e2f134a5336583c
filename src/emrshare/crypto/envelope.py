"""The record envelope: streaming authenticated encryption of record content.

Content is encrypted under a fresh random 32-byte data key in fixed-size chunks (libsodium
secretstream XChaCha20-Poly1305 by default), so memory stays bounded by the chunk size
whatever the content size. Format (all integers big-endian)::

    header  = "EMRE" | major=1 | minor=0 | suite (1 byte) | chunk_size (u32) | stream field (24)
    chunk_i = seal_i(plaintext_i, ad = header || record_id, final = (i is the last chunk))

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and is sealed as
non-final; the last holds fewer (possibly zero) bytes and is sealed as final. Binding the
header and record id as associated data means a ciphertext moved to another record, or a
header edited in place, fails; the per-chunk counter (secretstream's state, GCM's nonce)
catches reordered or duplicated chunks; the final flag catches truncation. All of these raise one
:class:`~emrshare.errors.DecryptionError`.

Suite 1 (default): libsodium secretstream XChaCha20-Poly1305; the stream field is the
secretstream header; chunks carry 17 bytes of overhead (tag byte + MAC).

Suite 2 (for sites that require FIPS-approved ciphers): AES-256-GCM in the STREAM
construction (Hoang et al., 2015). The stream field is a random 24-byte salt; the chunk
key is HMAC-SHA256(data key, "emrshare/envelope/aes-256-gcm/v1" || salt) and chunk i uses
the 12-byte nonce ``u88be(i) || final`` (final = 1 for the last chunk, else 0); chunks carry
the 16-byte GCM tag. A fresh key per envelope makes the counter nonces safe.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import nacl.bindings as sodium
import nacl.exceptions
from Crypto.Cipher import AES

from emrshare.crypto._wire import header as _header
from emrshare.crypto.keys import Rng
from emrshare.errors import DecryptionError, UnsupportedVersion, WireFormatError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ENVELOPE_HEADER_SIZE",
    "SUITE_AES256GCM",
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
#: Cipher suite 2: AES-256-GCM, STREAM construction (FIPS-approved primitives).
SUITE_AES256GCM = 2
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
_OVERHEAD = {SUITE_XCHACHA20POLY1305: _ABYTES, SUITE_AES256GCM: 16}
_GCM_LABEL = b"emrshare/envelope/aes-256-gcm/v1"


class _StreamCipher:
    """One direction of one envelope's chunk cipher (seal or open, per suite).

    ``field`` is the 24-byte stream field of the header (made when sealing, given when
    opening); ``ad`` is set once the header is known.
    """

    field: bytes
    ad: bytes

    def __init__(self, key: bytes, field: bytes | None) -> None:
        raise NotImplementedError

    def seal(self, piece: bytes, final: bool) -> bytes:
        raise NotImplementedError

    def open(self, piece: bytes, final: bool) -> bytes:
        """Authenticate and decrypt one chunk; raise DecryptionError on any mismatch."""
        raise NotImplementedError


class _SecretStream(_StreamCipher):
    def __init__(self, key: bytes, field: bytes | None) -> None:
        self.state = sodium.crypto_secretstream_xchacha20poly1305_state()
        if field is None:
            self.field = sodium.crypto_secretstream_xchacha20poly1305_init_push(self.state, key)
        else:
            self.field = field
            try:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(self.state, field, key)
            except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
                raise DecryptionError() from exc
        self.ad = b""

    def seal(self, piece: bytes, final: bool) -> bytes:
        tag = _TAG_FINAL if final else _TAG_MESSAGE
        return sodium.crypto_secretstream_xchacha20poly1305_push(self.state, piece, self.ad, tag)

    def open(self, piece: bytes, final: bool) -> bytes:
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self.state, piece, self.ad
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionError() from exc
        if tag != (_TAG_FINAL if final else _TAG_MESSAGE):
            raise DecryptionError()
        return plain


class _AesGcmStream(_StreamCipher):
    def __init__(self, key: bytes, field: bytes | None) -> None:
        self.field = secrets.token_bytes(_STREAM_HEADER) if field is None else field
        self.key = hmac.new(key, _GCM_LABEL + self.field, hashlib.sha256).digest()
        self.counter = 0
        self.ad = b""

    def _cipher(self, final: bool) -> Any:
        nonce = self.counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")
        self.counter += 1
        cipher = AES.new(self.key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(self.ad)
        return cipher

    def seal(self, piece: bytes, final: bool) -> bytes:
        ct, mac = self._cipher(final).encrypt_and_digest(piece)
        return bytes(ct) + bytes(mac)

    def open(self, piece: bytes, final: bool) -> bytes:
        try:
            return bytes(self._cipher(final).decrypt_and_verify(piece[:-16], piece[-16:]))
        except (ValueError, KeyError) as exc:
            raise DecryptionError() from exc


_SUITES: dict[int, type[_StreamCipher]] = {
    SUITE_XCHACHA20POLY1305: _SecretStream,
    SUITE_AES256GCM: _AesGcmStream,
}


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


def ciphertext_size(
    plaintext_size: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    suite: int = SUITE_XCHACHA20POLY1305,
) -> int:
    """The exact envelope size for ``plaintext_size`` bytes of content."""
    over = _OVERHEAD[suite]
    full, rest = divmod(plaintext_size, chunk_size)
    return ENVELOPE_HEADER_SIZE + full * (chunk_size + over) + rest + over


def _check_record_id(record_id: bytes) -> bytes:
    if not isinstance(record_id, bytes) or len(record_id) != 32:
        raise ValueError("record_id must be 32 bytes")
    return record_id


def _as_source(source: Source) -> Source:
    # Iterating over a bytes object yields ints: treat a bare bytes value as one piece.
    if isinstance(source, bytes | bytearray | memoryview):
        return [bytes(source)]
    return source


def _check_params(record_id: bytes, chunk_size: int, suite: int) -> None:
    _check_record_id(record_id)
    if suite not in _SUITES:
        raise ValueError(
            f"unknown cipher suite {suite}; use SUITE_XCHACHA20POLY1305 or SUITE_AES256GCM"
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")


def _pieces(source: Source, size: int) -> Iterator[bytes]:
    """Yield pieces of exactly ``size`` bytes, then one final shorter (maybe empty) piece."""
    source = _as_source(source)
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
    suite: int = SUITE_XCHACHA20POLY1305,
) -> Iterator[bytes]:
    """Encrypt ``source`` and yield the envelope: the header, then one piece per chunk."""
    _check_params(record_id, chunk_size, suite)
    return _encrypt_pieces(_pieces(source, chunk_size), key, record_id, chunk_size, suite)


def _encrypt_pieces(
    pieces: Iterable[bytes], key: DataKey, record_id: bytes, chunk_size: int, suite: int
) -> Iterator[bytes]:
    """Encrypt pieces as :func:`_pieces` yields them (full chunks, then one short one)."""
    cipher = _SUITES[suite](key.key, None)
    head = _header(BRAND, MAJOR) + bytes([suite]) + chunk_size.to_bytes(4, "big") + cipher.field
    cipher.ad = head + record_id
    yield head
    seal = cipher.seal
    for piece in pieces:
        if len(piece) == chunk_size:
            yield seal(piece, False)
        else:
            yield seal(piece, True)
            return


def _read_header(head: bytes) -> tuple[bytes, int, int, bytes]:
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
    if suite not in _SUITES:
        raise UnsupportedVersion(
            f"envelope cipher suite {suite} is not supported by this release; upgrade emrshare"
        )
    chunk_size = int.from_bytes(head[7:11], "big")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError()
    return head, suite, chunk_size, head[11:ENVELOPE_HEADER_SIZE]


class _HeaderThenChunks:
    """Reads the fixed-size header first, then ciphertext chunks of a size the header names."""

    def __init__(self, source: Source) -> None:
        source = _as_source(source)
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
    (:func:`decrypt_bytes` does that for you; :func:`decrypt_file` does not: its caller
    must discard ``dst`` on error).
    """
    _check_record_id(record_id)
    reader = _HeaderThenChunks(source)
    head, suite, chunk_size, field = _read_header(reader.header())
    cipher = _SUITES[suite](key.key, field)
    cipher.ad = head + record_id
    overhead = _OVERHEAD[suite]
    full = chunk_size + overhead
    for piece in reader.chunks(full):
        if len(piece) < overhead:
            raise DecryptionError()
        # A full-size chunk must be a non-final one and a short one the final one:
        # anything else is truncation or splicing. The piece reader only yields a short
        # piece at EOF, so nothing can follow the final chunk.
        yield cipher.open(piece, len(piece) < full)


def encrypt_bytes(
    plaintext: bytes,
    key: DataKey,
    record_id: bytes,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    suite: int = SUITE_XCHACHA20POLY1305,
) -> bytes:
    """Encrypt an in-memory value (see :func:`encrypt_stream`)."""
    return b"".join(encrypt_stream([plaintext], key, record_id, chunk_size=chunk_size, suite=suite))


def decrypt_bytes(ciphertext: bytes, key: DataKey, record_id: bytes) -> bytes:
    """Decrypt an in-memory envelope; raises :class:`DecryptionError` on any failure."""
    return b"".join(decrypt_stream([ciphertext], key, record_id))


class _Counting:
    """A reader that counts the bytes it hands out."""

    def __init__(self, source: Source) -> None:
        source = _as_source(source)
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
    suite: int = SUITE_XCHACHA20POLY1305,
) -> EnvelopeInfo:
    """Encrypt ``src`` into ``dst``; optionally SHA-256 the plaintext in the same pass."""
    _check_params(record_id, chunk_size, suite)
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

    for part in _encrypt_pieces(counted(), key, record_id, chunk_size, suite):
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
