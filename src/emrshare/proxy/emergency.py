"""The declaring clinician's signed emergency (break-glass) request, and its wire form.

A clinician who declared an emergency (``Emergency.declare``) asks one proxy to
re-encrypt a batch of capsules of one opted-in tag of the declaration's patient. The
request is the EIP-712 message ``EmergencyRequest`` of the Emergency contract (domain:
name ``emrshare-emergency``, version ``1``, the chain id, the Emergency contract as
verifying contract; the contract's ``hashEmergencyRequest`` computes the same digest)
with the fields proxy, declaration id, tag, capsule hashes (``keccak256(bytes(capsule))``),
nonce and deadline (chain time). It travels to ``POST /v1/emergency/reencrypt``; the
proxy compares the signer with the declaration's clinician on chain. Answers are signed
as for grants (:mod:`emrshare.proxy.response`, bound to this request's digest).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_keys.main import KeyAPI
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.errors import WireFormatError
from emrshare.proxy.client import ProxyEndpoint, ThresholdClient, ThresholdPolicy
from emrshare.proxy.request import (
    MAX_CHAIN_ID,
    MAX_DEADLINE,
    MAX_NONCE,
    _address,
    _b32,
    _decimal,
    _hex,
    _hex_list,
    _int,
    _kind,
    _names,
)
from emrshare.types import Address, CategoryTag

__all__ = [
    "EMERGENCY_DOMAIN_NAME",
    "EMERGENCY_PATH",
    "EmergencyClient",
    "EmergencyRequest",
    "SignedEmergencyRequest",
]

EMERGENCY_DOMAIN_NAME = "emrshare-emergency"
#: The proxy route of emergency requests.
EMERGENCY_PATH = "/v1/emergency/reencrypt"
#: Largest declaration id on the wire (the proxy's journal keeps it as a signed 64-bit).
_MAX_DECLARATION = 2**63 - 1

_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_REQUEST_TYPEHASH = keccak(
    b"EmergencyRequest(address proxy,uint256 declarationId,bytes32 tag,bytes32[] capsuleHashes,"
    b"uint256 nonce,uint256 deadline)"
)


@functools.lru_cache(maxsize=16)
def _domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(EMERGENCY_DOMAIN_NAME.encode()),
                keccak(b"1"),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


@dataclass(frozen=True, slots=True)
class EmergencyRequest:
    """The fields a declaring clinician signs. ``deadline`` is chain time (unix seconds)."""

    proxy: Address
    declaration_id: int
    tag: CategoryTag
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    deadline: int

    @classmethod
    def new(
        cls,
        proxy: str,
        declaration_id: int,
        tag: bytes,
        capsule_hashes: Sequence[bytes],
        deadline: int,
        *,
        nonce: int | None = None,
    ) -> EmergencyRequest:
        """A request with a fresh random 256-bit nonce (unless ``nonce`` is given)."""
        return cls(
            proxy=Address(to_checksum_address(proxy)),
            declaration_id=declaration_id,
            tag=CategoryTag(_b32(bytes(tag), "tag")),
            capsule_hashes=tuple(_b32(bytes(h), "capsule hash") for h in capsule_hashes),
            nonce=secrets.randbits(256) if nonce is None else nonce,
            deadline=deadline,
        )

    def digest(self, chain_id: int, emergency_contract: str) -> bytes:
        """``keccak256(0x1901 || domainSeparator || hashStruct)``, equal to the Emergency
        contract's ``hashEmergencyRequest`` (checked by the tests)."""
        struct = keccak(
            abi_encode(
                ["bytes32", "address", "uint256", "bytes32", "bytes32", "uint256", "uint256"],
                [
                    _REQUEST_TYPEHASH,
                    self.proxy,
                    self.declaration_id,
                    bytes(self.tag),
                    keccak(b"".join(self.capsule_hashes)),
                    self.nonce,
                    self.deadline,
                ],
            )
        )
        return keccak(b"\x19\x01" + _domain_separator(chain_id, emergency_contract) + struct)

    def sign(self, private_key: bytes, chain_id: int, emergency_contract: str) -> bytes:
        """Sign with the clinician's Ethereum key; the 65-byte (r, s, v) signature."""
        digest = self.digest(chain_id, emergency_contract)
        return bytes(Account.unsafe_sign_hash(digest, private_key).signature)

    def recover(self, signature: bytes, chain_id: int, emergency_contract: str) -> Address:
        """Who signed this request for that domain (:class:`WireFormatError` if the
        signature is malformed)."""
        if len(signature) != 65 or signature[64] not in (27, 28):
            raise WireFormatError("the request signature is not a 65-byte (r, s, v) signature")
        try:
            sig = KeyAPI.Signature(signature[:64] + bytes([signature[64] - 27]))
            digest = self.digest(chain_id, emergency_contract)
            public = sig.recover_public_key_from_msg_hash(digest)
        except Exception as exc:  # eth-keys raises several unrelated types
            raise WireFormatError("the request signature is malformed") from exc
        return Address(public.to_checksum_address())


_FIELDS = frozenset(
    (
        "chain_id",
        "verifying_contract",
        "proxy",
        "declaration_id",
        "tag",
        "capsule_hashes",
        "nonce",
        "deadline",
        "signature",
        "capsules",
    )
)


@dataclass(frozen=True, slots=True)
class SignedEmergencyRequest:
    """What travels to ``POST /v1/emergency/reencrypt`` (``verifying_contract``: the
    Emergency contract)."""

    request: EmergencyRequest
    chain_id: int
    verifying_contract: Address
    signature: bytes
    capsules: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "chain_id": self.chain_id,
            "verifying_contract": self.verifying_contract,
            "proxy": r.proxy,
            "declaration_id": r.declaration_id,
            "tag": "0x" + bytes(r.tag).hex(),
            "capsule_hashes": ["0x" + h.hex() for h in r.capsule_hashes],
            "nonce": str(r.nonce),
            "deadline": r.deadline,
            "signature": "0x" + self.signature.hex(),
            "capsules": ["0x" + c.hex() for c in self.capsules],
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedEmergencyRequest:
        """Parse the wire form as strictly as :meth:`SignedRequest.from_json`
        (:class:`WireFormatError` on anything malformed)."""
        if not isinstance(data, dict):
            raise WireFormatError(
                f"malformed emergency request: expected a JSON object, got {_kind(data)}"
            )
        missing = sorted(_FIELDS - data.keys())
        unknown = sorted(str(k) for k in data.keys() - _FIELDS)
        if missing or unknown:
            raise WireFormatError(
                "malformed emergency request: "
                + "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else [])
                    + ([f"unknown field {_names(unknown)}"] if unknown else [])
                )
            )
        req = EmergencyRequest(
            proxy=_address(data["proxy"], "proxy"),
            declaration_id=_int(data["declaration_id"], "declaration_id", _MAX_DECLARATION),
            tag=CategoryTag(_hex(data["tag"], "tag", 32)),
            capsule_hashes=tuple(_hex_list(data["capsule_hashes"], "capsule_hashes", 32)),
            nonce=_decimal(data["nonce"], "nonce", MAX_NONCE),
            deadline=_int(data["deadline"], "deadline", MAX_DEADLINE),
        )
        return cls(
            request=req,
            chain_id=_int(data["chain_id"], "chain_id", MAX_CHAIN_ID),
            verifying_contract=_address(data["verifying_contract"], "verifying_contract"),
            signature=_hex(data["signature"], "signature", 65),
            capsules=tuple(_hex_list(data["capsules"], "capsules", None)),
        )


class EmergencyClient(ThresholdClient):
    """The threshold client of a declaring clinician: asks the opt-in's proxies (at
    ``POST /v1/emergency/reencrypt``) for capsule fragments of ``tag`` under declaration
    ``declaration_id``, each request signed with ``clinician_key`` for the Emergency
    contract's domain. Answers are verified as :class:`ThresholdClient`'s are (refusals:
    :class:`~emrshare.errors.AccessDenied` whose ``reasons`` are the proxies' reasons).
    """

    def __init__(
        self,
        clinician_key: bytes,
        *,
        chain_id: int,
        grants_contract: str,
        emergency_contract: str,
        declaration_id: int,
        tag: bytes,
        **options: Any,
    ) -> None:
        super().__init__(
            clinician_key, chain_id=chain_id, grants_contract=grants_contract, **options
        )
        self.emergency_contract = Address(to_checksum_address(emergency_contract))
        self.declaration_id = declaration_id
        self.tag = CategoryTag(_b32(bytes(tag), "tag"))

    def _prepare(
        self,
        proxy: ProxyEndpoint,
        policy: ThresholdPolicy,
        hashes: list[bytes],
        capsule_bytes: list[bytes],
        deadline: int,
    ) -> tuple[None, dict[str, Any], bytes, str]:
        nonce = self._nonce((bytes(policy.policy_id), tuple(hashes), deadline))
        req = EmergencyRequest.new(
            proxy.address, self.declaration_id, self.tag, hashes, deadline, nonce=nonce
        )
        signed = SignedEmergencyRequest(
            req,
            self.chain_id,
            self.emergency_contract,
            req.sign(self._key, self.chain_id, self.emergency_contract),
            tuple(capsule_bytes),
        )
        return (
            None,
            signed.to_json(),
            req.digest(self.chain_id, self.emergency_contract),
            (EMERGENCY_PATH),
        )
