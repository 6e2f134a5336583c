"""The compact index-entry body (``EMIE`` 1.2): fixed 174 bytes after the header.

Layout (big-endian)::

    cid codec u8 | sha2-256 digest 32 | data key 32 | plaintext sha256 32 |
    size u48 | created_at u40 | media-type code u8 | author signature 65

The record id, author, category and epoch are not in it: the chain event (patient, tag,
author, sequence) gives the record id and author, and the key that opened the entry gives
the category and epoch. The author signature still covers all four, so an entry moved to
another patient, tag, sequence or author, or read under another category or epoch, fails
:meth:`IndexEntry.verify_author`.

The CID is stored as one byte naming its form and the 32-byte sha2-256 digest:
``0x55`` (CIDv1 raw, ``bafkrei…``), ``0x70`` (CIDv1 dag-pb, ``bafybei…``), ``0x00``
(CIDv0, ``Qm…``, dag-pb in base58btc). The string is rebuilt in the one canonical form
Kubo prints; a CID in any other form or codec, a media type outside
:data:`emrshare._media.MEDIA_TYPE_CODES`, a size of 2**48 bytes or more, or a creation
time past 2**40 is written in the padded 1.1 format instead.

This module encodes CIDs itself (crypto imports no storage code).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol

from emrshare._addresses import checksum as _checksum
from emrshare._media import media_type_code, media_type_of
from emrshare.errors import WireFormatError
from emrshare.types import Address, RecordId

__all__ = [
    "COMPACT_BODY_SIZE",
    "CompactBody",
    "EntryContext",
    "EntryOrigin",
    "cid_from_compact",
    "compact_cid",
]

COMPACT_BODY_SIZE = 174
_CID_V0 = 0x00
_RAW = 0x55
_DAG_PB = 0x70
_SHA2_256 = b"\x12\x20"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MAX_SIZE = 2**48 - 1
_MAX_CREATED = 2**40 - 1


class EntryOrigin(Protocol):
    """Where the chain put an entry: an ``EntryAppended`` event is one."""

    @property
    def record_id(self) -> bytes: ...
    @property
    def author(self) -> str: ...


@dataclass(frozen=True, slots=True)
class EntryContext:
    """What a 1.2 entry leaves out: the record id and author its chain event gives, and the
    category and epoch of the key that opened it. The author signature covers all four."""

    record_id: RecordId
    author: Address
    category: str
    epoch: int

    @classmethod
    def of(cls, origin: EntryOrigin, category: str, epoch: int) -> EntryContext:
        """The context of an entry the chain put at ``origin``, opened with the
        (``category``, ``epoch``) key."""
        return cls(RecordId(bytes(origin.record_id)), _checksum(origin.author), category, epoch)


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def cid_from_compact(code: int, digest: bytes) -> str:
    """The canonical CID string of a (form byte, sha2-256 digest) pair."""
    if len(digest) != 32:
        raise WireFormatError("compact index entry: the CID digest is not 32 bytes")
    if code == _CID_V0:
        return _b58(_SHA2_256 + digest)
    if code in (_RAW, _DAG_PB):
        return "b" + _b32(bytes([0x01, code]) + _SHA2_256 + digest)
    raise WireFormatError(f"compact index entry: unknown CID form 0x{code:02x}")


def compact_cid(cid: str) -> bytes | None:
    """``form byte || digest`` (33 bytes) if ``cid`` is a sha2-256 CID in the canonical
    form :func:`cid_from_compact` rebuilds, else None."""
    if cid.startswith("Qm") and len(cid) == 46:
        code = _CID_V0
    elif cid.startswith("bafkrei"):
        code = _RAW
    elif cid.startswith("bafybei"):
        code = _DAG_PB
    else:
        return None
    try:
        if code == _CID_V0:
            n = 0
            for c in cid:
                n = n * 58 + _B58.index(c)
            raw = n.to_bytes(34, "big")
            digest = raw[2:] if raw[:2] == _SHA2_256 else b""
        else:
            text = cid[1:].upper()
            raw = base64.b32decode(text + "=" * (-len(text) % 8))
            digest = raw[4:] if raw[:4] == bytes([0x01, code]) + _SHA2_256 else b""
    except (ValueError, OverflowError):
        return None
    if len(digest) != 32 or cid_from_compact(code, digest) != cid:
        return None  # not canonical: keep the exact string in the 1.1 format
    return bytes([code]) + digest


@dataclass(frozen=True, slots=True)
class CompactBody:
    """The fields a 1.2 body carries (what is not derivable from the chain or the key)."""

    cid: str
    data_key: bytes
    plaintext_sha256: bytes
    size: int
    created_at: int
    media_type: str
    author_signature: bytes

    def encode(self) -> bytes | None:
        """The 174-byte body, or None if a field does not fit the compact format."""
        cid = compact_cid(self.cid)
        code = media_type_code(self.media_type)
        if (
            cid is None
            or code is None
            or not 0 <= self.size <= _MAX_SIZE
            or not 0 <= self.created_at <= _MAX_CREATED
            or len(self.data_key) != 32
            or len(self.plaintext_sha256) != 32
            or len(self.author_signature) != 65
        ):
            return None
        body = (
            cid
            + self.data_key
            + self.plaintext_sha256
            + self.size.to_bytes(6, "big")
            + self.created_at.to_bytes(5, "big")
            + bytes([code])
            + self.author_signature
        )
        assert len(body) == COMPACT_BODY_SIZE
        return body

    @classmethod
    def decode(cls, body: bytes) -> CompactBody:
        """Parse a 1.2 body; :class:`WireFormatError` unless it is exactly 174 bytes with
        a known CID form and media-type code."""
        if len(body) != COMPACT_BODY_SIZE:
            raise WireFormatError(
                f"compact index entry: expected {COMPACT_BODY_SIZE} bytes after the header, "
                f"got {len(body)}"
            )
        media = media_type_of(body[108])
        if media is None:
            raise WireFormatError(f"compact index entry: unknown media-type code {body[108]}")
        return cls(
            cid_from_compact(body[0], body[1:33]),
            body[33:65],
            body[65:97],
            int.from_bytes(body[97:103], "big"),
            int.from_bytes(body[103:108], "big"),
            media,
            body[109:174],
        )
