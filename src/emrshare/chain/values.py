"""Value types the bindings read from and write to the contracts: enums mirroring the
Solidity ones, and small frozen dataclasses (never raw tuples)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum
from typing import Any, TypeVar

from web3 import Web3

from emrshare.chain.client import Receipt
from emrshare.errors import ChainError
from emrshare.types import CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessEntry",
    "AccessRequest",
    "Action",
    "ActiveWindow",
    "AdminConfig",
    "Appended",
    "Capability",
    "ClaimOnChain",
    "ClaimStatus",
    "Declaration",
    "EmergencyOptInParams",
    "EmergencyPolicy",
    "EmergencyReview",
    "EmergencyStatus",
    "GrantParams",
    "GrantStatus",
    "IndexHead",
    "Member",
    "PatientProfile",
    "Policy",
    "Prescription",
    "PrescriptionStatus",
    "Proposal",
    "RequestStatus",
    "Role",
]


class Role(IntEnum):
    """A consortium member's role (``NONE``: not a member)."""

    NONE = 0
    PROVIDER = 1
    PROXY = 2
    REGULATOR = 3
    INSURER = 4
    PHARMACY = 5
    ADMIN = 6
    RESEARCHER = 7
    MANUFACTURER = 8  # registers drug batches (DrugTrace)
    DISTRIBUTOR = 9  # receives and ships drug batches (DrugTrace)


class Action(IntEnum):
    """What a registry proposal does."""

    ADMIT = 0
    CHANGE_ROLE = 1
    REMOVE = 2
    SET_THRESHOLD = 3
    SUSPEND = 4  # a proxy, on verified evidence (``ProxyReported``)
    REINSTATE = 5
    SET_CAPABILITIES = 6  # the proposal's ``threshold`` carries the :class:`Capability` mask


class Capability(IntFlag):
    """What a member may do beyond its role, granted by M-of-N proposal
    (``ConsortiumRegistry.CAP_*``)."""

    NONE = 0
    EMERGENCY = 1  # declare a break-glass emergency for a patient
    PHARMACY = 2  # a Provider's own pharmacy: receive and dispense drugs (DrugTrace)


class EmergencyStatus(IntEnum):
    """A declaration's state on chain time (``Emergency.Status``)."""

    NONE = 0
    ACTIVE = 1
    ENDED = 2  # ended early by the patient, a guardian or the clinician
    EXPIRED = 3  # the patient's time box passed
    WITHDRAWN = 4  # the patient withdrew or replaced the opt-in


class EmergencyReview(IntEnum):
    """The regulator's verdict on a declaration (``Emergency.Review``)."""

    PENDING = 0
    REVIEWED = 1
    DISPUTED = 2


class GrantStatus(StrEnum):
    """A grant's state on chain time: the one status type, for the chain, the proxies and
    the facades' ``GrantInfo.status``.

    A ``StrEnum``, so ``status == "active"`` holds; :meth:`from_code` reads the
    contract's ``uint8`` (``Grants.statusOf``).
    """

    NONE = "none"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    TAG_REVOKED = "tag_revoked"

    @classmethod
    def from_code(cls, code: int) -> GrantStatus:
        """The status the contract encodes as ``code`` (``ChainError`` for an unknown one)."""
        if not isinstance(code, int) or not 0 <= code < len(_GRANT_STATUS_CODES):
            raise ChainError(
                f"Grants.statusOf answered {code!r}, which no known status encodes; "
                "check that the deployment matches this release"
            )
        return _GRANT_STATUS_CODES[code]

    @property
    def code(self) -> int:
        """The contract's ``uint8`` for this status."""
        return _GRANT_STATUS_CODES.index(self)


class RequestStatus(IntEnum):
    """An access request's state."""

    NONE = 0
    PENDING = 1
    ANSWERED = 2  # the sealed answer says approved (with the policy ids) or denied


#: ``Grants.statusOf`` codes, in the contract's enum order.
_GRANT_STATUS_CODES = (
    GrantStatus.NONE,
    GrantStatus.ACTIVE,
    GrantStatus.REVOKED,
    GrantStatus.EXPIRED,
    GrantStatus.TAG_REVOKED,
)


@dataclass(frozen=True, slots=True)
class Member:
    """A member (or applicant, role ``NONE``) of the consortium registry."""

    account: str
    role: Role
    admitted_at: int  # block; 0 while only applied
    suspended_at: int  # block; 0 while not suspended
    umbral_key: bytes  # 33-byte compressed Umbral receiving key
    box_key: bytes  # 32-byte X25519 key
    endpoint: str  # proxies: base URL
    capabilities: Capability = Capability.NONE


@dataclass(frozen=True, slots=True)
class Proposal:
    """A registry proposal and its approval count."""

    proposal_id: int
    action: Action
    role: Role
    executed: bool
    approvals: int
    admin_epoch: int
    target: str
    threshold: int
    proposer: str
    reference: bytes  # 32 bytes, e.g. the evidence hash of a SUSPEND; zero if none


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Number of admins (N) and approval threshold (M)."""

    admin_count: int
    threshold: int


@dataclass(frozen=True, slots=True)
class PatientProfile:
    """A patient's registered public keys (``PatientProfiles.profileOf``)."""

    patient: str
    verifying_key: bytes  # 33-byte Umbral verifying key (checks kfrags)
    box_key: bytes  # 32-byte X25519 key
    registered_at: int  # block


@dataclass(frozen=True, slots=True)
class IndexHead:
    """A patient's index hash-chain head and entry count."""

    head: bytes
    count: int


@dataclass(frozen=True, slots=True)
class GrantParams:
    """Everything a patient puts into one grant (see ``Grants.grant``)."""

    nonce: bytes  # 32 random bytes; policy id = policy_id(patient, nonce)
    grantee: str
    tag: CategoryTag
    expiry: int  # unix seconds, chain time
    proxies: Sequence[str]
    threshold: int
    sealed_kfrags: Sequence[bytes]  # aligned with proxies
    sealed_grantee_map: bytes
    #: The record ids the grant is scoped to, strictly ascending; empty: the whole tag.
    records: Sequence[bytes] = ()

    def __post_init__(self) -> None:
        if len(self.nonce) != 32 or len(self.tag) != 32:
            raise ValueError("a grant's nonce and tag are 32 bytes each")
        if any(len(r) != 32 for r in self.records):
            raise ValueError("a grant's scope lists 32-byte record ids")
        if any(bytes(a) >= bytes(b) for a, b in zip(self.records, self.records[1:], strict=False)):
            raise ValueError("a grant's scope lists its record ids in strictly ascending order")
        if not 0 <= self.expiry < 2**40:
            raise ValueError(f"expiry {self.expiry} is not a unix time in seconds (uint40)")
        if not 0 <= self.threshold < 256:
            raise ValueError("threshold is a uint8")

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple of ``Grants.GrantParams``."""
        return (
            self.nonce,
            Web3.to_checksum_address(self.grantee),
            self.tag,
            self.expiry,
            [Web3.to_checksum_address(p) for p in self.proxies],
            self.threshold,
            list(self.sealed_kfrags),
            self.sealed_grantee_map,
            [bytes(r) for r in self.records],
        )


@dataclass(frozen=True, slots=True)
class EmergencyOptInParams:
    """Everything a patient puts into an emergency opt-in (see ``Emergency.optIn``)."""

    tags: Sequence[CategoryTag]  # blinded tags an emergency may open
    window: int  # seconds a declaration stays active
    proxies: Sequence[str]
    threshold: int
    sealed_kfrags: Sequence[bytes]  # len(tags) * len(proxies): index t * len(proxies) + p
    sealed_maps: Sequence[bytes]  # one grantee map per tag, sealed to the emergency box key

    def __post_init__(self) -> None:
        if any(len(t) != 32 for t in self.tags):
            raise ValueError("an opt-in's tags are 32 bytes each")
        if not 0 <= self.window < 2**32:
            raise ValueError(f"window {self.window} is not a number of seconds (uint32)")
        if not 0 <= self.threshold < 256:
            raise ValueError("threshold is a uint8")

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple of ``Emergency.OptInParams``."""
        return (
            [bytes(t) for t in self.tags],
            self.window,
            [Web3.to_checksum_address(p) for p in self.proxies],
            self.threshold,
            list(self.sealed_kfrags),
            list(self.sealed_maps),
        )


@dataclass(frozen=True, slots=True)
class EmergencyPolicy:
    """A patient's emergency opt-in as stored on chain (tags, proxies and kfrags:
    ``EmergencyPolicyCreated``); ``generation`` 0 means never opted in."""

    patient: str
    generation: int
    window: int  # seconds
    created_at: int  # block
    withdrawn_at: int  # block; 0 while standing
    threshold: int
    binding: bytes  # 27 bytes

    @property
    def standing(self) -> bool:
        """Whether the opt-in exists and was not withdrawn."""
        return self.generation != 0 and self.withdrawn_at == 0


@dataclass(frozen=True, slots=True)
class Declaration:
    """An emergency declaration as stored on chain (the sealed justifications are in
    ``EmergencyDeclared``)."""

    declaration_id: int
    patient: str
    declared_at: int  # unix seconds
    ends_at: int  # unix seconds
    generation: int  # of the patient's opt-in
    clinician: str
    ended_at: int  # unix seconds; 0 unless ended early
    reason_code: int
    review: EmergencyReview
    cosigner: str  # zero address if none


@dataclass(frozen=True, slots=True)
class Policy:
    """A grant as stored on chain (grantee, proxies, threshold, kfrags: ``GrantCreated``)."""

    policy_id: PolicyId
    patient: str
    expiry: int  # unix seconds, chain time
    generation: int  # of (patient, tag) when granted
    revoked_at: int  # block; 0 while not revoked
    tag: CategoryTag
    created_at: int  # block
    binding: bytes  # 27 bytes: binding_for(grantee, proxies)


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """When a grant could be served (``Grants.activeWindow``), in one read.

    A serve evaluated at block ``b`` and chain time ``t`` was within the grant iff
    ``created_at <= b``, ``end_block == 0 or b < end_block`` and ``t < expiry``.
    """

    patient: str
    created_at: int  # block
    end_block: int  # first block it was no longer active (revoke or tag revoke); 0: open
    expiry: int  # unix seconds
    binding: bytes  # 27 bytes

    def contains(self, block: int, time: int) -> bool:
        """Whether a serve evaluated at ``block`` and chain time ``time`` was within it."""
        return (
            self.created_at <= block
            and (self.end_block == 0 or block < self.end_block)
            and time < self.expiry
        )


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """An access request (its content is sealed: see ``AccessRequested.sealed_request``)."""

    request_id: int
    requester: str
    status: RequestStatus
    patient: str


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access a proxy served, for ``AuditLog.log_accesses``: the grantee's signed request."""

    capsule_hashes: Sequence[bytes]  # 32 bytes each, as the grantee signed them
    nonce: int
    deadline: int  # unix seconds, as signed
    evaluated_at: int  # block at which the proxy evaluated the grant
    evaluated_time: int  # that block's timestamp
    signature: bytes  # the grantee's 65-byte EIP-712 signature of the ProxyRequest

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple of ``AuditLog.Access``."""
        return (
            [bytes(h) for h in self.capsule_hashes],
            self.nonce,
            self.deadline,
            self.evaluated_at,
            self.evaluated_time,
            bytes(self.signature),
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """Result of :meth:`~emrshare.chain.RecordIndex.append_once`.

    ``already`` is true when an earlier attempt had landed (``receipt`` is then None).
    """

    record_ids: tuple[RecordId, ...]
    receipt: Receipt | None
    already: bool


S = TypeVar("S", bound=StrEnum)


def status_from_code(cls: type[S], code: int, source: str) -> S:
    """Member ``code`` of ``cls`` (the contract's ``uint8``, in declaration order), or
    :class:`ChainError` if ``source`` (``"Studies.studyOf"``) answered an unknown one."""
    members: list[S] = list(cls)
    if not isinstance(code, int) or not 0 <= code < len(members):
        raise ChainError(
            f"{source} answered {code!r}, which no known status encodes; "
            "check that the deployment matches this release"
        )
    return members[code]


class PrescriptionStatus(StrEnum):
    """A prescription's state on chain time (``Prescriptions.statusOf``); ``NONE``: no
    prescription has that id."""

    NONE = "none"
    ACTIVE = "active"
    NEEDS_REVIEW = "needs_review"
    DISPENSED = "dispensed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @classmethod
    def from_code(cls, code: int) -> PrescriptionStatus:
        """The status the contract encodes as ``code`` (``ChainError`` for an unknown one)."""
        return status_from_code(cls, code, "Prescriptions.statusOf")


@dataclass(frozen=True, slots=True)
class Prescription:
    """A prescription's on-chain part (``Prescriptions.prescriptionOf``): no drug, dose or
    patient, only who issued it, when, until when, and how many fills are left."""

    prescription_id: bytes  # the commitment keccak256(abi.encode(salt, sha256(document)))
    prescriber: str
    issued_at: int  # unix seconds, chain time
    valid_until: int  # unix seconds, chain time
    fills: int
    fills_used: int
    reviewed: bool
    cancelled: bool
    status: PrescriptionStatus
    reader: str  # the reader key's address (reviews and fills carry its signature)


class ClaimStatus(StrEnum):
    """An insurance claim's state (``Claims.claimOf``); ``NONE``: no claim has that id."""

    NONE = "none"
    FILED = "filed"
    CONSENTED = "consented"
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    DENIED = "denied"

    @classmethod
    def from_code(cls, code: int) -> ClaimStatus:
        """The status the contract encodes as ``code`` (``ChainError`` for an unknown one)."""
        return status_from_code(cls, code, "Claims.claimOf")

    @property
    def adjudicated(self) -> bool:
        """Whether the insurer has decided the claim."""
        return self in (ClaimStatus.APPROVED, ClaimStatus.PARTIALLY_APPROVED, ClaimStatus.DENIED)


@dataclass(frozen=True, slots=True)
class ClaimOnChain:
    """An insurance claim's on-chain part (``Claims.claimOf``): who filed it with whom for
    which patient, the amounts in minor units, the reason code and the records' hash."""

    claim_id: bytes
    hospital: str
    insurer: str
    patient: str
    amount: int  # minor units
    approved: int  # minor units; 0 until adjudicated (and for a denial)
    reason: int  # administrative reason code (emrshare.roles.ClaimReason); 0 for approval
    filed_at: int  # unix seconds, chain time
    status: ClaimStatus
    records_hash: bytes  # keccak256 of the ascending record ids (Grants.scopeOf of consent)
