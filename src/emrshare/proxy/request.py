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

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.proxy._envelope import (
    DOMAIN_VERSION,
    MAX_CAPSULE,
    MAX_CHAIN_ID,
    MAX_DEADLINE,
    MAX_NONCE,
    SignableRequest,
    SignedEnvelope,
    _b32,
    _hex,
    common_fields,
    common_from_wire,
)
from emrshare.proxy._json_body import parse_json_body
from emrshare.types import Address, PolicyId

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "MAX_BATCH",
    "MAX_CAPSULE",
    "MAX_CHAIN_ID",
    "MAX_DEADLINE",
    "MAX_NONCE",
    "Refusal",
    "RefusalReason",
    "ReencryptRequest",
    "SignedRequest",
    "capsule_hash",
    "parse_json_body",
]

DOMAIN_NAME = "emrshare-proxy"
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


_REQUEST_TYPEHASH = keccak(
    b"ProxyRequest(address proxy,bytes32 policyId,bytes32[] capsuleHashes,"
    b"uint256 nonce,uint256 deadline)"
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
    #: An emergency request's deadline lies further beyond chain time than proxies accept
    #: (:data:`~emrshare.proxy.emergency.MAX_DEADLINE_AHEAD`).
    DEADLINE_TOO_FAR = "deadline_too_far"
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
    #: The identical request (same signer and nonce) is still being served: retry shortly.
    REQUEST_IN_FLIGHT = "request_in_flight"
    INTERNAL_ERROR = "internal_error"
    #: This proxy is suspended (or removed) by the consortium: ask the others.
    PROXY_SUSPENDED = "proxy_suspended"
    #: The grantee is no longer an active consortium member (removed or suspended).
    GRANTEE_NOT_MEMBER = "grantee_not_member"
    #: The grantee rotated its receiving key after the grant: the kfrags target the old
    #: key, which stops working from the rotation block on (the patient re-issues).
    GRANTEE_KEYS_ROTATED = "grantee_keys_rotated"
    #: Emergency reads (:mod:`emrshare.proxy.emergency`): no such declaration on chain; it
    #: passed its time box, was ended early, or its opt-in was withdrawn or replaced; the
    #: request is not signed by the declaring clinician; the tag is not opted in.
    DECLARATION_UNKNOWN = "declaration_unknown"
    DECLARATION_EXPIRED = "declaration_expired"
    DECLARATION_ENDED = "declaration_ended"
    DECLARATION_WITHDRAWN = "declaration_withdrawn"
    NOT_DECLARER = "not_declarer"
    #: The declaring clinician's member no longer holds the EMERGENCY capability.
    CLINICIAN_NOT_CAPABLE = "clinician_not_capable"
    CATEGORY_NOT_OPTED_IN = "category_not_opted_in"
    #: The grant is scoped to some records, and a capsule asked for is another record's.
    RECORD_NOT_IN_SCOPE = "record_not_in_scope"
    #: The grant is scoped, and this proxy cannot read its record list yet: retry.
    SCOPE_UNAVAILABLE = "scope_unavailable"

    @property
    def denies_access(self) -> bool:
        """True when the refusal is a decision about access, not a transient fault.

        The threshold client raises :class:`~emrshare.errors.AccessDenied` when access was
        refused and :class:`~emrshare.errors.Unavailable` when proxies were merely absent.
        A capsule not (yet) in a proxy's index is "not now": the proxy indexes entries as
        its watcher follows the chain, so a record appended a moment ago is unknown to it
        for a block or two (a reader retries; a capsule that is on no chain stays
        unavailable, and yields nothing either way).
        """
        return self not in (
            RefusalReason.CAPSULE_NOT_IN_INDEX,
            RefusalReason.CHAIN_UNAVAILABLE,
            RefusalReason.REQUEST_IN_FLIGHT,
            RefusalReason.KFRAG_UNAVAILABLE,
            RefusalReason.INTERNAL_ERROR,
            RefusalReason.PROXY_SUSPENDED,
            RefusalReason.SCOPE_UNAVAILABLE,
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


@dataclass(frozen=True, slots=True)
class ReencryptRequest(SignableRequest):
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
            policy_id=PolicyId(_b32(bytes(policy_id), "policy id")),
            **common_fields(proxy, capsule_hashes, deadline, nonce),
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

    # The digest (:meth:`digest`) equals eth-account's ``encode_typed_data`` of
    # :meth:`typed_data` and the Grants contract's ``hashProxyRequest``.
    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    TYPEHASH: ClassVar[bytes] = _REQUEST_TYPEHASH
    SCOPE_TYPES: ClassVar[tuple[str, ...]] = ("bytes32",)
    SCOPE_WIRE: ClassVar[frozenset[str]] = frozenset(("policy_id",))

    def _scope(self) -> tuple[Any, ...]:
        return (bytes(self.policy_id),)

    def _scope_wire(self) -> dict[str, Any]:
        return {"policy_id": "0x" + bytes(self.policy_id).hex()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ReencryptRequest:
        return cls(
            policy_id=PolicyId(_hex(data["policy_id"], "policy_id", 32)), **common_from_wire(data)
        )


@dataclass(frozen=True, slots=True)
class SignedRequest(SignedEnvelope[ReencryptRequest]):
    """What travels to ``POST /v1/reencrypt``: the request, its domain, signature, capsules.

    The chain id and verifying contract travel in the clear so that a proxy can tell a
    request meant for another chain (``wrong_chain``) from a forged one.
    """

    WHAT: ClassVar[str] = "re-encryption request"

    @classmethod
    def from_json(cls, data: Any) -> SignedRequest:
        """Parse the wire form; raises :class:`WireFormatError` on anything malformed.

        Strict: exactly the fields of :meth:`to_json`, each of its JSON type (a JSON
        integer is never a string, a nonce string never a number, booleans and floats are
        never integers), ``0x``-hex of the expected size, and every integer within what
        the EIP-712 type, the proxy's journal (SQLite, signed 64-bit) and the chain can
        hold, so a valid-looking request can never fail later inside the proxy.
        """
        return cls._parse(data, ReencryptRequest)
