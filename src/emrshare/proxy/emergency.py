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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.proxy._envelope import (
    SignableRequest,
    SignedEnvelope,
    _b32,
    _hex,
    _int,
    common_fields,
    common_from_wire,
)
from emrshare.proxy.client import ProxyEndpoint, ThresholdClient, ThresholdPolicy
from emrshare.types import Address, CategoryTag

__all__ = [
    "EMERGENCY_DOMAIN_NAME",
    "EMERGENCY_PATH",
    "EmergencyClient",
    "EmergencyRequest",
    "MAX_DEADLINE_AHEAD",
    "SignedEmergencyRequest",
]

EMERGENCY_DOMAIN_NAME = "emrshare-emergency"
#: The proxy route of emergency requests.
EMERGENCY_PATH = "/v1/emergency/reencrypt"
#: How far beyond chain time (seconds) an emergency request's deadline may lie: a proxy
#: refuses a later one (``deadline_too_far``), so a signed break-glass request cannot be
#: kept and replayed for long; clients sign deadlines within it.
MAX_DEADLINE_AHEAD = 600
#: Largest declaration id on the wire (the proxy's journal keeps it as a signed 64-bit).
_MAX_DECLARATION = 2**63 - 1

_REQUEST_TYPEHASH = keccak(
    b"EmergencyRequest(address proxy,uint256 declarationId,bytes32 tag,bytes32[] capsuleHashes,"
    b"uint256 nonce,uint256 deadline)"
)


@dataclass(frozen=True, slots=True)
class EmergencyRequest(SignableRequest):
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
            declaration_id=declaration_id,
            tag=CategoryTag(_b32(bytes(tag), "tag")),
            **common_fields(proxy, capsule_hashes, deadline, nonce),
        )

    # The digest (:meth:`digest`) equals the Emergency contract's ``hashEmergencyRequest``.
    DOMAIN_NAME: ClassVar[str] = EMERGENCY_DOMAIN_NAME
    TYPEHASH: ClassVar[bytes] = _REQUEST_TYPEHASH
    SCOPE_TYPES: ClassVar[tuple[str, ...]] = ("uint256", "bytes32")
    SCOPE_WIRE: ClassVar[frozenset[str]] = frozenset(("declaration_id", "tag"))

    def _scope(self) -> tuple[Any, ...]:
        return (self.declaration_id, bytes(self.tag))

    def _scope_wire(self) -> dict[str, Any]:
        return {"declaration_id": self.declaration_id, "tag": "0x" + bytes(self.tag).hex()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EmergencyRequest:
        return cls(
            declaration_id=_int(data["declaration_id"], "declaration_id", _MAX_DECLARATION),
            tag=CategoryTag(_hex(data["tag"], "tag", 32)),
            **common_from_wire(data),
        )


@dataclass(frozen=True, slots=True)
class SignedEmergencyRequest(SignedEnvelope[EmergencyRequest]):
    """What travels to ``POST /v1/emergency/reencrypt`` (``verifying_contract``: the
    Emergency contract)."""

    WHAT: ClassVar[str] = "emergency request"

    @classmethod
    def from_json(cls, data: Any) -> SignedEmergencyRequest:
        """Parse the wire form as strictly as :meth:`SignedRequest.from_json`
        (:class:`WireFormatError` on anything malformed)."""
        return cls._parse(data, EmergencyRequest)


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
