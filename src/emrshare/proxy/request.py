"""The signed re-encryption request (EIP-712), its wire form and the refusal reasons.

A grantee asks one proxy to re-encrypt a batch of capsules of one policy. The request is
an EIP-712 typed message ``ProxyRequest`` (domain: name ``emrshare-proxy``, version
``1``, the chain id and the grants contract as verifying contract; the Grants contract's
``hashProxyRequest`` computes the same digest) with the fields proxy address, policy id,
capsule hashes (``keccak256(bytes(capsule))``), nonce and deadline (chain time, unix
seconds). The grantee signs it with its Ethereum key; the proxy recovers the signer and
compares it with the grantee recorded on chain.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_keys.main import KeyAPI
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.errors import WireFormatError
from emrshare.types import Address, PolicyId

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "MAX_BATCH",
    "Refusal",
    "RefusalReason",
    "ReencryptRequest",
    "SignedRequest",
    "capsule_hash",
]

DOMAIN_NAME = "emrshare-proxy"
DOMAIN_VERSION = "1"
#: The largest batch of capsules one request may carry (bounds the work per request).
MAX_BATCH = 256

_TYPES: dict[str, Any] = {
    "ProxyRequest": [
        {"name": "proxy", "type": "address"},
        {"name": "policyId", "type": "bytes32"},
        {"name": "capsuleHashes", "type": "bytes32[]"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}


_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_REQUEST_TYPEHASH = keccak(
    b"ProxyRequest(address proxy,bytes32 policyId,bytes32[] capsuleHashes,"
    b"uint256 nonce,uint256 deadline)"
)


@functools.lru_cache(maxsize=64)
def _domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(DOMAIN_NAME.encode()),
                keccak(DOMAIN_VERSION.encode()),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


class RefusalReason(StrEnum):
    """Why a proxy refused a request: the machine-readable part of a refusal."""

    BAD_REQUEST = "bad_request"
    BATCH_TOO_LARGE = "batch_too_large"
    WRONG_CHAIN = "wrong_chain"
    WRONG_CONTRACT = "wrong_contract"
    WRONG_PROXY = "wrong_proxy"
    CAPSULE_HASH_MISMATCH = "capsule_hash_mismatch"
    BAD_SIGNATURE = "bad_signature"
    DEADLINE_PASSED = "deadline_passed"
    POLICY_UNKNOWN = "policy_unknown"
    NOT_GRANTEE = "not_grantee"
    REPLAYED_NONCE = "replayed_nonce"
    POLICY_REVOKED = "policy_revoked"
    POLICY_EXPIRED = "policy_expired"
    NOT_A_PROXY_OF_POLICY = "not_a_proxy_of_policy"
    KFRAG_UNAVAILABLE = "kfrag_unavailable"
    CAPSULE_NOT_IN_INDEX = "capsule_not_in_index"
    CAPSULE_WRONG_CATEGORY = "capsule_wrong_category"
    CHAIN_UNAVAILABLE = "chain_unavailable"
    #: This proxy is suspended (or removed) by the consortium: ask the others.
    PROXY_SUSPENDED = "proxy_suspended"

    @property
    def denies_access(self) -> bool:
        """True when the refusal is a decision about access, not a transient fault.

        The threshold client raises :class:`~emrshare.errors.AccessDenied` when access was
        refused and :class:`~emrshare.errors.Unavailable` when proxies were merely absent.
        """
        return self not in (
            RefusalReason.CHAIN_UNAVAILABLE,
            RefusalReason.KFRAG_UNAVAILABLE,
            RefusalReason.PROXY_SUSPENDED,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal: the reason, a human message and the block the proxy evaluated at.

    ``signature`` is the proxy's signature over the request digest, the reason and the
    block (:mod:`emrshare.proxy.response`); empty for a body that did not parse.
    """

    reason: RefusalReason
    message: str
    block: int | None = None
    signature: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refused": self.reason.value,
            "message": self.message,
            "block": self.block,
        }
        if self.signature:
            out["signature"] = "0x" + self.signature.hex()
        return out


def capsule_hash(capsule_bytes: bytes) -> bytes:
    """``keccak256(bytes(capsule))``: how requests and the proxy index name a capsule."""
    return keccak(capsule_bytes)


def _b32(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise WireFormatError(f"{what} must be 32 bytes, got {len(value)}")
    return value


@dataclass(frozen=True, slots=True)
class ReencryptRequest:
    """The fields a grantee signs. ``deadline`` is chain time (unix seconds)."""

    proxy: Address
    policy_id: PolicyId
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    deadline: int

    @classmethod
    def new(
        cls,
        proxy: str,
        policy_id: bytes,
        capsule_hashes: Sequence[bytes],
        deadline: int,
        *,
        nonce: int | None = None,
    ) -> ReencryptRequest:
        """A request with a fresh random 256-bit nonce (unless ``nonce`` is given)."""
        return cls(
            proxy=Address(to_checksum_address(proxy)),
            policy_id=PolicyId(_b32(bytes(policy_id), "policy id")),
            capsule_hashes=tuple(_b32(bytes(h), "capsule hash") for h in capsule_hashes),
            nonce=secrets.randbits(256) if nonce is None else nonce,
            deadline=deadline,
        )

    def typed_data(self, chain_id: int, verifying_contract: str) -> dict[str, Any]:
        """The full EIP-712 message (domain, types, primary type, message)."""
        return {
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": to_checksum_address(verifying_contract),
            },
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **_TYPES,
            },
            "primaryType": "ProxyRequest",
            "message": {
                "proxy": self.proxy,
                "policyId": bytes(self.policy_id),
                "capsuleHashes": list(self.capsule_hashes),
                "nonce": self.nonce,
                "deadline": self.deadline,
            },
        }

    def digest(self, chain_id: int, verifying_contract: str) -> bytes:
        """The EIP-712 digest: ``keccak256(0x1901 || domainSeparator || hashStruct)``.

        Computed directly (the generic typed-data encoder costs milliseconds per request);
        equal to eth-account's ``encode_typed_data`` of :meth:`typed_data` and to the
        Grants contract's ``hashProxyRequest`` (both checked by the tests).
        """
        struct = keccak(
            abi_encode(
                ["bytes32", "address", "bytes32", "bytes32", "uint256", "uint256"],
                [
                    _REQUEST_TYPEHASH,
                    self.proxy,
                    bytes(self.policy_id),
                    keccak(b"".join(self.capsule_hashes)),
                    self.nonce,
                    self.deadline,
                ],
            )
        )
        return keccak(b"\x19\x01" + _domain_separator(chain_id, verifying_contract) + struct)

    def sign(self, private_key: bytes, chain_id: int, verifying_contract: str) -> bytes:
        """Sign with the grantee's Ethereum key; returns the 65-byte signature (r, s, v)."""
        signed = Account.unsafe_sign_hash(self.digest(chain_id, verifying_contract), private_key)
        return bytes(signed.signature)

    def recover(self, signature: bytes, chain_id: int, verifying_contract: str) -> Address:
        """The address that signed this request for that domain.

        Raises :class:`WireFormatError` when the signature is malformed.
        """
        if len(signature) != 65 or signature[64] not in (27, 28):
            raise WireFormatError("the request signature is not a 65-byte (r, s, v) signature")
        try:
            sig = KeyAPI.Signature(signature[:64] + bytes([signature[64] - 27]))
            public = sig.recover_public_key_from_msg_hash(self.digest(chain_id, verifying_contract))
        except Exception as exc:  # eth-keys raises several unrelated types
            raise WireFormatError("the request signature is malformed") from exc
        return Address(public.to_checksum_address())


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What travels to ``POST /v1/reencrypt``: the request, its domain, signature, capsules.

    The chain id and verifying contract travel in the clear so that a proxy can tell a
    request meant for another chain (``wrong_chain``) from a forged one.
    """

    request: ReencryptRequest
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
            "policy_id": "0x" + bytes(r.policy_id).hex(),
            "capsule_hashes": ["0x" + h.hex() for h in r.capsule_hashes],
            "nonce": str(r.nonce),
            "deadline": r.deadline,
            "signature": "0x" + self.signature.hex(),
            "capsules": ["0x" + c.hex() for c in self.capsules],
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedRequest:
        """Parse the wire form; raises :class:`WireFormatError` on anything malformed."""
        try:
            req = ReencryptRequest.new(
                proxy=str(data["proxy"]),
                policy_id=_hex(data["policy_id"]),
                capsule_hashes=[_hex(h) for h in data["capsule_hashes"]],
                deadline=int(data["deadline"]),
                nonce=int(str(data["nonce"])),
            )
            if not 0 <= req.nonce < 2**256 or not 0 <= req.deadline < 2**256:
                raise ValueError("nonce or deadline out of range")
            return cls(
                request=req,
                chain_id=int(data["chain_id"]),
                verifying_contract=Address(to_checksum_address(str(data["verifying_contract"]))),
                signature=_hex(data["signature"]),
                capsules=tuple(_hex(c) for c in data["capsules"]),
            )
        except WireFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise WireFormatError(f"malformed re-encryption request: {exc}") from exc


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("expected a hex string")
    return bytes.fromhex(value.removeprefix("0x"))
