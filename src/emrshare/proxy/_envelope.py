"""The signed envelope both proxy requests travel in, and its strict wire parsing.

A grant's ``ProxyRequest`` (:mod:`emrshare.proxy.request`) and a declaring clinician's
``EmergencyRequest`` (:mod:`emrshare.proxy.emergency`) are EIP-712 messages of one shape:
a proxy, capsule hashes, a nonce and a deadline, signed with an Ethereum key for a domain
(a name, version ``1``, the chain id and a verifying contract). Both travel as the same
JSON envelope, :class:`SignedEnvelope`: the domain's chain id and verifying contract in
the clear (so that a proxy can tell a request meant for another chain from a forged one),
the request's own fields, the 65-byte signature and the capsules, parsed as strictly.
"""

from __future__ import annotations

import functools
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_keys.main import KeyAPI
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.errors import WireFormatError
from emrshare.types import Address

__all__ = [
    "DOMAIN_VERSION",
    "MAX_CAPSULE",
    "MAX_CHAIN_ID",
    "MAX_DEADLINE",
    "MAX_NONCE",
    "SignableRequest",
    "SignedEnvelope",
    "common_fields",
    "common_from_wire",
    "domain_separator",
    "recover_signer",
]

DOMAIN_VERSION = "1"
#: Bounds of the integer fields. The nonce is a uint256 (stored as text); the deadline a
#: uint256 that the proxy journals as a SQLite INTEGER (signed 64-bit); the chain id is
#: bounded as EIP-2294 proposes for the chain (and fits the same signed 64 bits).
MAX_NONCE = 2**256 - 1
MAX_DEADLINE = 2**63 - 1
MAX_CHAIN_ID = 2**63 - 1
#: The largest capsule accepted on the wire (an Umbral capsule is 98 bytes).
MAX_CAPSULE = 1024

_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


@functools.lru_cache(maxsize=64)
@functools.lru_cache(maxsize=64)
def domain_separator(name: str, chain_id: int, verifying_contract: str) -> bytes:
    """The EIP-712 domain separator of ``name``, version ``1``, on that chain and contract
    (a pure function of them: kept, a proxy sees the same few domains all the time)."""
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(name.encode()),
                keccak(DOMAIN_VERSION.encode()),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


class SignableRequest(ABC):
    """What both requests share: the fields ``proxy``, ``capsule_hashes``, ``nonce`` and
    ``deadline`` (chain time, unix seconds) around a *scope* of their own (a policy id; a
    declaration id and a tag), the EIP-712 digest over all of them, signing and recovery,
    and the wire form of the fields.

    A subclass (a frozen dataclass) names its domain, type hash and scope
    (``DOMAIN_NAME``, ``TYPEHASH``, ``SCOPE_TYPES``, ``SCOPE_WIRE``), says its scope's
    values (:meth:`_scope`, :meth:`_scope_wire`) and parses its wire form
    (:meth:`from_wire`, with :func:`common_from_wire`).
    """

    __slots__ = ()

    proxy: Address
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    deadline: int

    #: The EIP-712 domain's name, the struct's type hash, the ABI types of the scope's
    #: fields (between ``proxy`` and ``capsuleHashes``) and their wire names.
    DOMAIN_NAME: ClassVar[str]
    TYPEHASH: ClassVar[bytes]
    SCOPE_TYPES: ClassVar[tuple[str, ...]]
    SCOPE_WIRE: ClassVar[frozenset[str]]

    @abstractmethod
    def _scope(self) -> tuple[Any, ...]:
        """The scope's values, ABI-encodable as ``SCOPE_TYPES``."""

    @abstractmethod
    def _scope_wire(self) -> dict[str, Any]:
        """The scope's fields of the wire form, in wire order."""

    @classmethod
    @abstractmethod
    def from_wire(cls, data: dict[str, Any]) -> Self:
        """The request's fields parsed from the wire form (``WireFormatError``)."""

    @classmethod
    def wire_names(cls) -> frozenset[str]:
        """The names of the request's fields in the wire form."""
        return _COMMON_WIRE | cls.SCOPE_WIRE

    def digest(self, chain_id: int, verifying_contract: str) -> bytes:
        """The EIP-712 digest: ``keccak256(0x1901 || domainSeparator || hashStruct)``.

        Computed directly (the generic typed-data encoder costs milliseconds per request);
        equal to what the contract of the domain computes (checked by the tests).
        """
        struct = keccak(
            abi_encode(
                ["bytes32", "address", *self.SCOPE_TYPES, "bytes32", "uint256", "uint256"],
                [
                    self.TYPEHASH,
                    self.proxy,
                    *self._scope(),
                    keccak(b"".join(self.capsule_hashes)),
                    self.nonce,
                    self.deadline,
                ],
            )
        )
        separator = domain_separator(self.DOMAIN_NAME, chain_id, verifying_contract)
        return keccak(b"\x19\x01" + separator + struct)

    def wire_fields(self) -> dict[str, Any]:
        """The request's fields of the wire form, in wire order."""
        return {
            "proxy": self.proxy,
            **self._scope_wire(),
            "capsule_hashes": ["0x" + h.hex() for h in self.capsule_hashes],
            "nonce": str(self.nonce),
            "deadline": self.deadline,
        }

    def sign(self, private_key: bytes, chain_id: int, verifying_contract: str) -> bytes:
        """Sign with the signer's Ethereum key; returns the 65-byte signature (r, s, v)."""
        signed = Account.unsafe_sign_hash(self.digest(chain_id, verifying_contract), private_key)
        return bytes(signed.signature)

    def recover(self, signature: bytes, chain_id: int, verifying_contract: str) -> Address:
        """The address that signed this request for that domain.

        Raises :class:`WireFormatError` when the signature is malformed.
        """
        return recover_signer(self.digest(chain_id, verifying_contract), signature)


def recover_signer(digest: bytes, signature: bytes) -> Address:
    """The address whose 65-byte (r, s, v) ``signature`` signed ``digest`` (a request's
    :meth:`SignableRequest.digest`, computed once by a caller that needs it again).

    Raises :class:`WireFormatError` when the signature is malformed.
    """
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise WireFormatError("the request signature is not a 65-byte (r, s, v) signature")
    try:
        sig = KeyAPI.Signature(signature[:64] + bytes([signature[64] - 27]))
        public = sig.recover_public_key_from_msg_hash(digest)
    except Exception as exc:  # eth-keys raises several unrelated types
        raise WireFormatError("the request signature is malformed") from exc
    return Address(public.to_checksum_address())


_COMMON_WIRE = frozenset(("proxy", "capsule_hashes", "nonce", "deadline"))


def common_fields(
    proxy: str, capsule_hashes: Sequence[bytes], deadline: int, nonce: int | None
) -> dict[str, Any]:
    """The common fields of a new request (keyword arguments of its constructor), with
    a fresh random 256-bit nonce unless ``nonce`` is given."""
    return {
        "proxy": Address(to_checksum_address(proxy)),
        "capsule_hashes": tuple(_b32(bytes(h), "capsule hash") for h in capsule_hashes),
        "nonce": secrets.randbits(256) if nonce is None else nonce,
        "deadline": deadline,
    }


def common_from_wire(data: dict[str, Any]) -> dict[str, Any]:
    """The common fields of a request parsed from its wire form (keyword arguments of
    its constructor; :class:`WireFormatError` on anything malformed)."""
    return {
        "proxy": _address(data["proxy"], "proxy"),
        "capsule_hashes": tuple(_hex_list(data["capsule_hashes"], "capsule_hashes", 32)),
        "nonce": _decimal(data["nonce"], "nonce", MAX_NONCE),
        "deadline": _int(data["deadline"], "deadline", MAX_DEADLINE),
    }


R = TypeVar("R", bound=SignableRequest)

_ENVELOPE_FIELDS = frozenset(("chain_id", "verifying_contract", "signature", "capsules"))


@dataclass(frozen=True, slots=True)
class SignedEnvelope(Generic[R]):
    """A signed request as it travels: the request, its domain, signature and capsules."""

    request: R
    chain_id: int
    verifying_contract: Address
    signature: bytes
    capsules: tuple[bytes, ...]

    #: What the wire form is called in messages ("re-encryption request").
    WHAT: ClassVar[str] = "request"

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "verifying_contract": self.verifying_contract,
            **self.request.wire_fields(),
            "signature": "0x" + self.signature.hex(),
            "capsules": ["0x" + c.hex() for c in self.capsules],
        }

    @classmethod
    def _parse(cls, data: Any, request_type: type[R]) -> Self:
        """The envelope parsed from its wire form, its request as ``request_type``
        (:class:`WireFormatError` on anything malformed: see :meth:`SignedRequest.from_json`)."""
        if not isinstance(data, dict):
            raise WireFormatError(
                f"malformed {cls.WHAT}: expected a JSON object, got {_kind(data)}"
            )
        fields = _ENVELOPE_FIELDS | request_type.wire_names()
        missing = sorted(fields - data.keys())
        unknown = sorted(str(k) for k in data.keys() - fields)
        if missing or unknown:
            raise WireFormatError(
                f"malformed {cls.WHAT}: "
                + "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else [])
                    + ([f"unknown field {_names(unknown)}"] if unknown else [])
                )
            )
        return cls(
            request=request_type.from_wire(data),
            chain_id=_int(data["chain_id"], "chain_id", MAX_CHAIN_ID),
            verifying_contract=_address(data["verifying_contract"], "verifying_contract"),
            signature=_hex(data["signature"], "signature", 65),
            capsules=tuple(_hex_list(data["capsules"], "capsules", None)),
        )


_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,77}")


def _b32(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise WireFormatError(f"{what} must be 32 bytes, got {len(value)}")
    return value


def _names(keys: list[str]) -> str:
    # ascii(): a key may hold lone surrogates, which the JSON response could not encode.
    return ", ".join(ascii(k)[:40] for k in keys[:5]) + (", ..." if len(keys) > 5 else "")


def _kind(value: Any) -> str:
    """The JSON type of a parsed value, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad(what: str, expected: str, value: Any) -> WireFormatError:
    return WireFormatError(
        f"malformed re-encryption request: {what} must be {expected}, got {_kind(value)}"
    )


def _int(value: Any, what: str, hi: int) -> int:
    """A JSON integer in ``[0, hi]`` (not a boolean, float or string)."""
    if type(value) is not int:
        raise _bad(what, "a JSON integer", value)
    if not 0 <= value <= hi:
        raise WireFormatError(f"malformed re-encryption request: {what} must be in [0, {hi}]")
    return value


def _decimal(value: Any, what: str, hi: int) -> int:
    """A string of ASCII decimal digits without sign, padding or leading zeros, ``<= hi``.

    Python's ``int()`` also reads ``" 7"``, ``"+7"``, ``"7_0"`` and Unicode digits such as
    ``"١٢٣"``; none of those is the canonical form a client writes.
    """
    if not isinstance(value, str):
        raise _bad(what, "a string of decimal digits", value)
    if not _DECIMAL.fullmatch(value):
        raise WireFormatError(
            f"malformed re-encryption request: {what} must be ASCII decimal digits "
            "without sign, spaces or leading zeros"
        )
    number = int(value)
    if number > hi:
        raise WireFormatError(f"malformed re-encryption request: {what} must be at most {hi}")
    return number


def _hex(value: Any, what: str, size: int | None, max_size: int = MAX_CAPSULE) -> bytes:
    """``0x``-prefixed hex of whole bytes: exactly ``size`` bytes, or at most ``max_size``."""
    if not isinstance(value, str):
        raise _bad(what, "a 0x-hex string", value)
    if not _HEX.fullmatch(value):
        raise WireFormatError(
            f"malformed re-encryption request: {what} must be 0x followed by an even "
            "number of hex digits"
        )
    n = (len(value) - 2) // 2
    if (size is not None and n != size) or n > max_size:
        want = f"{size} bytes" if size is not None else f"at most {max_size} bytes"
        raise WireFormatError(
            f"malformed re-encryption request: {what} must be {want}, got {n} bytes"
        )
    return bytes.fromhex(value[2:])


def _hex_list(value: Any, what: str, size: int | None) -> list[bytes]:
    if not isinstance(value, list):
        raise _bad(what, "an array of 0x-hex strings", value)
    return [_hex(v, f"{what}[{i}]", size) for i, v in enumerate(value)]


def _address(value: Any, what: str) -> Address:
    if not isinstance(value, str):
        raise _bad(what, "a 0x-hex address", value)
    if not _ADDRESS.fullmatch(value):
        raise WireFormatError(
            f"malformed re-encryption request: {what} must be a 0x-prefixed 20-byte address"
        )
    return _checksummed(value)


@functools.lru_cache(maxsize=1024)
def _checksummed(value: str) -> Address:
    # A keccak per address per request otherwise; requests name the same few addresses.
    return Address(to_checksum_address(value))
