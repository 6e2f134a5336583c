"""CIDs, multihashes and the two multibase alphabets Kubo prints (base58btc, base32).

Only what UnixFS files need: sha2-256 multihashes, the ``dag-pb`` and ``raw`` codecs,
CIDv0 (``Qm…``, a bare base58btc multihash, always dag-pb) and CIDv1 (``b…``, base32).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from emrshare.errors import IntegrityError, WireFormatError
from emrshare.types import Cid

__all__ = [
    "DAG_PB",
    "RAW",
    "SHA2_256",
    "CidInfo",
    "decode_varint",
    "encode_varint",
    "parse_cid",
    "to_v1",
]

#: Multicodec codes.
DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
_DIGEST_LEN = 32
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 (the varint of multiformats and protobuf)."""
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, next_pos)``."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise WireFormatError("varint is not minimally encoded")
            return result, pos
        shift += 7
        if shift > 63:
            raise WireFormatError("varint longer than 9 bytes")


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise WireFormatError(f"invalid base58 character {c!r} in CID") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def _b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _b32decode(text: str) -> bytes:
    try:
        return base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError as exc:
        raise WireFormatError("invalid base32 in CID") from exc


@dataclass(frozen=True, slots=True)
class CidInfo:
    """A parsed CID: version, codec and sha2-256 digest.

    ``CidInfo.parse("Qm…")`` reads either form; ``str(info)`` prints it in its own version.
    Two CIDs name the same block exactly when their ``digest`` is equal (the block key).
    """

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise WireFormatError(f"unsupported CID version {self.version}")
        if self.version == 0 and self.codec != DAG_PB:
            raise WireFormatError("CIDv0 is always dag-pb")
        if self.codec not in (DAG_PB, RAW):
            raise WireFormatError(
                f"unsupported codec 0x{self.codec:x}: only dag-pb and raw blocks are stored"
            )
        if len(self.digest) != _DIGEST_LEN:
            raise WireFormatError("only sha2-256 multihashes are supported")

    @classmethod
    def for_block(cls, block: bytes | memoryview, codec: int, version: int) -> CidInfo:
        """The CID of ``block`` under ``codec`` and ``version``."""
        return cls(version, codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> bytes:
        """The binary multihash (``0x12 0x20`` + digest)."""
        return bytes((SHA2_256, _DIGEST_LEN)) + self.digest

    @property
    def key(self) -> str:
        """Block-store key: base32 of the multihash (same for v0 and v1 forms, like Kubo)."""
        return _b32encode(self.multihash)

    def to_bytes(self) -> bytes:
        """Binary CID (as stored in dag-pb links and CAR sections)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_varint(self.codec) + self.multihash

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> CidInfo:
        """Parse a binary CID that makes up all of ``data``."""
        info, end = cls.read(data, 0)
        if end != len(data):
            raise WireFormatError("trailing bytes after binary CID")
        return info

    @classmethod
    def read(cls, data: bytes | memoryview, pos: int) -> tuple[CidInfo, int]:
        """Parse a binary CID at ``pos``; return it and the position after it."""
        if len(data) - pos >= 2 and data[pos] == SHA2_256 and data[pos + 1] == _DIGEST_LEN:
            end = pos + 2 + _DIGEST_LEN
            if end > len(data):
                raise WireFormatError("truncated CIDv0")
            return cls(0, DAG_PB, bytes(data[pos + 2 : end])), end
        version, pos = decode_varint(data, pos)
        if version != 1:
            raise WireFormatError(f"unsupported CID version {version}")
        codec, pos = decode_varint(data, pos)
        code, pos = decode_varint(data, pos)
        length, pos = decode_varint(data, pos)
        if code != SHA2_256 or length != _DIGEST_LEN:
            raise WireFormatError("only sha2-256 multihashes are supported")
        end = pos + length
        if end > len(data):
            raise WireFormatError("truncated CID digest")
        return cls(1, codec, bytes(data[pos:end])), end

    @classmethod
    def parse(cls, text: str) -> CidInfo:
        """Parse a CID string: ``Qm…`` (v0) or base32 ``b…`` (v1)."""
        if not isinstance(text, str) or not text:
            raise WireFormatError("a CID must be a non-empty string")
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(_b58decode(text))
        if text[0] == "b":
            return cls.from_bytes(_b32decode(text[1:]))
        if text[0] == "z":
            return cls.from_bytes(_b58decode(text[1:]))
        raise WireFormatError(f"cannot parse CID {text[:60]!r}: expected Qm… or b…")

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + _b32encode(self.to_bytes())

    @property
    def cid(self) -> Cid:
        """The string form as the shared ``Cid`` type."""
        return Cid(str(self))

    def v1(self) -> CidInfo:
        """The CIDv1 form of the same block."""
        return CidInfo(1, self.codec, self.digest)

    def verify(self, block: bytes | memoryview) -> None:
        """Raise :class:`IntegrityError` naming this CID unless ``block`` hashes to it."""
        if hashlib.sha256(block).digest() != self.digest:
            raise IntegrityError(str(self))


def parse_cid(cid: str) -> CidInfo:
    """Parse a CID string (shorthand for :meth:`CidInfo.parse`)."""
    return CidInfo.parse(cid)


def to_v1(cid: str) -> Cid:
    """The CIDv1 (base32) form of ``cid``: for a v0 CID, the same DAG as ``bafy…``."""
    return CidInfo.parse(cid).v1().cid
