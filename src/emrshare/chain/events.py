"""Event dataclasses: one per Solidity event of the shipped contracts, decoded by the
bindings (``receipt.event(GrantCreated)``, ``binding.events(EntryAppended, …)``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from emrshare.chain.values import Action, EmergencyReview, Role
from emrshare.types import CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessLogged",
    "AccessRequestAnswered",
    "AccessRequested",
    "CapabilitiesChanged",
    "ChainEvent",
    "EmergencyAccessLogged",
    "EmergencyDeclared",
    "EmergencyEnded",
    "EmergencyKeysSet",
    "EmergencyPolicyCreated",
    "EmergencyPolicyWithdrawn",
    "EmergencyReviewed",
    "EndpointChanged",
    "EntryAppended",
    "GrantCreated",
    "GrantScoped",
    "GrantRevokedEvent",
    "GuardianSet",
    "GuardianWithdrawn",
    "KeysRotated",
    "MemberAdmitted",
    "MemberApplied",
    "MemberReinstated",
    "MemberRemoved",
    "MemberRoleChanged",
    "MemberSuspended",
    "PrescriptionCancelled",
    "PrescriptionDispensed",
    "PrescriptionIssued",
    "PrescriptionReviewed",
    "ProfileRegistered",
    "ProposalApproved",
    "ProposalCreated",
    "ProposalExecuted",
    "ProxyReported",
    "Relayed",
    "SignerRotated",
    "StateLogged",
    "TagRevoked",
    "ThresholdChanged",
    "WriterAuthorized",
    "WriterRevoked",
]


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """Where an event was emitted; every event dataclass starts with these fields.

    ``ABI_NAME`` is the Solidity event a class decodes: its own name, except where that
    name belongs to an exception of :mod:`emrshare.errors` (an event and an exception
    never share a name), and the class then carries the suffix ``Event``.
    """

    ABI_NAME: ClassVar[str] = ""

    block_number: int
    tx_hash: bytes
    log_index: int

    def __init_subclass__(cls) -> None:
        # No super(): the slots dataclass replaces this class, and zero-argument super()
        # would name the replaced one. object.__init_subclass__ takes nothing anyway.
        if "ABI_NAME" not in cls.__dict__:
            cls.ABI_NAME = cls.__name__


@dataclass(frozen=True, slots=True)
class MemberApplied(ChainEvent):
    """A candidate published its keys (and endpoint) before admission."""

    account: str
    umbral_key: bytes
    box_key: bytes
    endpoint: str


@dataclass(frozen=True, slots=True)
class ProposalCreated(ChainEvent):
    """An admin proposed a registry action (its approval is counted)."""

    proposal_id: int
    proposer: str
    action: Action
    target: str
    role: Role
    threshold: int
    reference: bytes  # ABI name ``ref`` (``reference`` is reserved in Solidity)


@dataclass(frozen=True, slots=True)
class ProposalApproved(ChainEvent):
    """An admin approved a proposal; ``approvals`` is the new count."""

    proposal_id: int
    admin: str
    approvals: int


@dataclass(frozen=True, slots=True)
class ProposalExecuted(ChainEvent):
    """A proposal that reached the threshold was executed."""

    proposal_id: int
    executor: str


@dataclass(frozen=True, slots=True)
class MemberAdmitted(ChainEvent):
    """A member was admitted with ``role``."""

    account: str
    role: Role


@dataclass(frozen=True, slots=True)
class MemberRoleChanged(ChainEvent):
    """A member's role changed."""

    account: str
    old_role: Role
    new_role: Role


@dataclass(frozen=True, slots=True)
class MemberRemoved(ChainEvent):
    """A member was removed."""

    account: str


@dataclass(frozen=True, slots=True)
class MemberSuspended(ChainEvent):
    """A proxy was suspended by proposal ``proposal_id``; it is refused from this block on."""

    account: str
    proposal_id: int


@dataclass(frozen=True, slots=True)
class MemberReinstated(ChainEvent):
    """A suspended proxy was reinstated."""

    account: str


@dataclass(frozen=True, slots=True)
class ProxyReported(ChainEvent):
    """A member reported a proxy, publishing ``evidence`` (``evidence_hash`` = its keccak)."""

    report_id: int
    proxy: str
    reporter: str
    evidence_hash: bytes
    evidence: bytes


@dataclass(frozen=True, slots=True)
class ThresholdChanged(ChainEvent):
    """The admin approval threshold M changed."""

    old_threshold: int
    new_threshold: int


@dataclass(frozen=True, slots=True)
class KeysRotated(ChainEvent):
    """A member replaced its Umbral and X25519 keys."""

    account: str
    umbral_key: bytes
    box_key: bytes


@dataclass(frozen=True, slots=True)
class EndpointChanged(ChainEvent):
    """A proxy changed its endpoint URL."""

    account: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class ProfileRegistered(ChainEvent):
    """A patient registered (or replaced) its profile keys."""

    patient: str
    verifying_key: bytes
    box_key: bytes


@dataclass(frozen=True, slots=True)
class StateLogged(ChainEvent):
    """A patient appended a sealed entry to its state log (categories, epochs)."""

    patient: str
    sealed_state: bytes


@dataclass(frozen=True, slots=True)
class Relayed(ChainEvent):
    """The forwarder ran a patient operation signed by ``signer`` (the patient's signing
    key or a guardian); ``to`` and ``selector`` name the call."""

    patient: str
    signer: str
    nonce: int
    to: str
    selector: bytes


@dataclass(frozen=True, slots=True)
class GuardianSet(ChainEvent):
    """A patient named (or renewed) a guardian until ``until`` (unix seconds)."""

    patient: str
    guardian: str
    until: int
    sealed_keys: bytes


@dataclass(frozen=True, slots=True)
class GuardianWithdrawn(ChainEvent):
    """A patient withdrew a guardianship."""

    patient: str
    guardian: str


@dataclass(frozen=True, slots=True)
class SignerRotated(ChainEvent):
    """A patient handed its identity to a new signing key."""

    patient: str
    old_signer: str
    new_signer: str


@dataclass(frozen=True, slots=True)
class EntryAppended(ChainEvent):
    """One sealed index entry; ``head`` is the patient's hash chain after it.

    ``record_id`` is derived from (patient, tag, author, sequence) when the log is decoded.
    """

    patient: str
    tag: CategoryTag
    author: str
    record_id: RecordId
    sequence: int  # per (patient, tag, author)
    head: bytes
    entry: bytes  # sealed entry: parse with emrshare.crypto, then verify


@dataclass(frozen=True, slots=True)
class WriterAuthorized(ChainEvent):
    """A patient authorized ``writer`` to append under ``tag``."""

    patient: str
    tag: CategoryTag
    writer: str
    sealed_payload: bytes  # the writer's category key material, sealed to it


@dataclass(frozen=True, slots=True)
class WriterRevoked(ChainEvent):
    """A patient revoked ``writer``'s authorization for ``tag``."""

    patient: str
    tag: CategoryTag
    writer: str


@dataclass(frozen=True, slots=True)
class GrantCreated(ChainEvent):
    """A grant was created; each proxy finds its sealed kfrag here."""

    policy_id: PolicyId
    patient: str
    grantee: str
    tag: CategoryTag
    expiry: int
    generation: int
    threshold: int
    proxies: tuple[str, ...]
    sealed_kfrags: tuple[bytes, ...]  # aligned with proxies
    sealed_grantee_map: bytes
    #: The scope, strictly ascending; empty: the whole tag. Not in the log itself: the
    #: Grants binding's ``events`` fills it from the grant's :class:`GrantScoped`.
    records: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class GrantScoped(ChainEvent):
    """Emitted beside ``GrantCreated`` (same transaction) for a grant scoped to records."""

    policy_id: PolicyId
    patient: str
    grantee: str
    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class GrantRevokedEvent(ChainEvent):
    """A grant was revoked at block ``revoked_at`` (ABI event ``GrantRevoked``; the name
    ``GrantRevoked`` is the exception a reader meets, :class:`emrshare.errors.GrantRevoked`)."""

    ABI_NAME: ClassVar[str] = "GrantRevoked"

    policy_id: PolicyId
    patient: str
    revoked_at: int  # block


@dataclass(frozen=True, slots=True)
class TagRevoked(ChainEvent):
    """Every grant of the patient's ``tag`` older than ``generation`` was revoked."""

    patient: str
    tag: CategoryTag
    generation: int


@dataclass(frozen=True, slots=True)
class AccessRequested(ChainEvent):
    """A member sent a patient a sealed access request (category, purpose, reason inside)."""

    request_id: int
    patient: str
    requester: str
    sealed_request: bytes  # sealed to the patient's box key


@dataclass(frozen=True, slots=True)
class AccessRequestAnswered(ChainEvent):
    """A patient answered a request; the answer is sealed to the requester."""

    request_id: int
    patient: str
    requester: str
    sealed_answer: bytes


@dataclass(frozen=True, slots=True)
class AccessLogged(ChainEvent):
    """A proxy logged one served access under a grant, with the grantee's signed request.

    ``evaluated_time`` is what the proxy claims as block ``evaluated_at``'s timestamp: the
    chain cannot check it, so readers compare it with the block header.
    """

    policy_id: PolicyId
    patient: str
    proxy: str
    requester: str  # the grant's grantee, whose signature was checked
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    evaluated_at: int  # block
    evaluated_time: int  # unix seconds


@dataclass(frozen=True, slots=True)
class PrescriptionIssued(ChainEvent):
    """A prescriber issued prescription ``id`` (a commitment; no drug or patient)."""

    prescription_id: bytes
    prescriber: str
    valid_until: int  # unix seconds, chain time
    fills: int


@dataclass(frozen=True, slots=True)
class PrescriptionReviewed(ChainEvent):
    """A pharmacist or physician approved prescription ``id``."""

    prescription_id: bytes
    reviewer: str


@dataclass(frozen=True, slots=True)
class PrescriptionDispensed(ChainEvent):
    """A pharmacy dispensed fill number ``fill`` (from 1) of prescription ``id``."""

    prescription_id: bytes
    pharmacy: str
    prescriber: str
    fill: int


@dataclass(frozen=True, slots=True)
class PrescriptionCancelled(ChainEvent):
    """The prescriber cancelled prescription ``id``."""

    prescription_id: bytes
    prescriber: str


@dataclass(frozen=True, slots=True)
class CapabilitiesChanged(ChainEvent):
    """A member's capability mask changed by an executed SET_CAPABILITIES proposal."""

    account: str
    old_capabilities: int
    new_capabilities: int
    proposal_id: int


@dataclass(frozen=True, slots=True)
class EmergencyKeysSet(ChainEvent):
    """The deployer published the consortium emergency keys."""

    umbral_key: bytes
    box_key: bytes


@dataclass(frozen=True, slots=True)
class EmergencyPolicyCreated(ChainEvent):
    """A patient opted in to emergency access; the proxies read their sealed kfrags here
    (``sealed_kfrags[t * len(proxies) + p]`` is tag ``t``'s kfrag for proxy ``p``;
    ``sealed_maps[t]`` tag ``t``'s grantee map, sealed to the consortium emergency box key)."""

    patient: str
    generation: int
    window: int
    threshold: int
    tags: tuple[CategoryTag, ...]
    proxies: tuple[str, ...]
    sealed_kfrags: tuple[bytes, ...]
    sealed_maps: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class EmergencyPolicyWithdrawn(ChainEvent):
    """A patient withdrew (or replaced) its opt-in; proxies delete its kfrags."""

    patient: str
    generation: int


@dataclass(frozen=True, slots=True)
class EmergencyDeclared(ChainEvent):
    """A clinician declared an emergency for a patient."""

    declaration_id: int
    patient: str
    clinician: str
    cosigner: str
    reason_code: int
    purpose_of_use: bytes
    ends_at: int
    sealed_for_patient: bytes
    sealed_for_regulator: bytes


@dataclass(frozen=True, slots=True)
class EmergencyEnded(ChainEvent):
    """A declaration was ended early."""

    declaration_id: int
    ended_by: str
    ended_at: int


@dataclass(frozen=True, slots=True)
class EmergencyAccessLogged(ChainEvent):
    """A proxy served an emergency re-encryption under a declaration."""

    declaration_id: int
    patient: str
    proxy: str
    tag: CategoryTag
    capsule_hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class EmergencyReviewed(ChainEvent):
    """The regulator reviewed a declaration."""

    declaration_id: int
    regulator: str
    review: EmergencyReview
