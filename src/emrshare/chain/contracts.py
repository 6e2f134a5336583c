"""Typed bindings: one class per contract, reads separate from transactions.

Reads return dataclasses; transactions return a :class:`~emrshare.chain.client.Receipt`
whose ``events`` are the decoded event dataclasses below (``receipt.event(GrantCreated)``).
Every revert raises :class:`~emrshare.errors.ContractRevert` with the custom error's name
and arguments. Event queries filter on indexed fields by their snake_case names and page
over block ranges; :meth:`_Binding.poll` resumes from an :class:`EventCursor`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from eth_abi.abi import decode as abi_decode
from web3 import Web3

from emrshare.chain.artifacts import load_artifact
from emrshare.chain.client import ChainClient, Receipt, _abi_type
from emrshare.chain.deploy import Deployment
from emrshare.chain.events import EventCursor, event_topic, get_logs_paged, topic_for
from emrshare.chain.ids import record_id
from emrshare.errors import ChainError, ConfigurationError, ContractRevert
from emrshare.types import CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessEntry",
    "AccessLogged",
    "AccessRequest",
    "AccessRequestApproved",
    "AccessRequestDenied",
    "AccessRequested",
    "Action",
    "AdminConfig",
    "Appended",
    "AuditLog",
    "ChainEvent",
    "ConsortiumRegistry",
    "Contracts",
    "EndpointChanged",
    "EntryAppended",
    "GrantCreated",
    "GrantParams",
    "GrantRevoked",
    "GrantStatus",
    "Grants",
    "IndexHead",
    "KeysRotated",
    "Member",
    "MemberAdmitted",
    "MemberApplied",
    "MemberRemoved",
    "MemberRoleChanged",
    "PatientProfiles",
    "Policy",
    "Profile",
    "ProfileRegistered",
    "Proposal",
    "ProposalApproved",
    "ProposalCreated",
    "ProposalExecuted",
    "RecordIndex",
    "RequestStatus",
    "Role",
    "TagRevoked",
    "ThresholdChanged",
    "WriterAuthorized",
    "WriterRevoked",
]

E = TypeVar("E", bound="ChainEvent")


# ------------------------------------------------------------------- enums


class Role(IntEnum):
    """A consortium member's role (``NONE``: not a member)."""

    NONE = 0
    PROVIDER = 1
    PROXY = 2
    REGULATOR = 3
    INSURER = 4
    PHARMACY = 5
    ADMIN = 6


class Action(IntEnum):
    """What a registry proposal does."""

    ADMIT = 0
    CHANGE_ROLE = 1
    REMOVE = 2
    SET_THRESHOLD = 3


class GrantStatus(IntEnum):
    """A grant's state on chain time."""

    NONE = 0
    ACTIVE = 1
    REVOKED = 2
    EXPIRED = 3
    TAG_REVOKED = 4


class RequestStatus(IntEnum):
    """An access request's state."""

    NONE = 0
    PENDING = 1
    APPROVED = 2
    DENIED = 3


# ------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Member:
    """A member (or applicant, role ``NONE``) of the consortium registry."""

    account: str
    role: Role
    admitted_at: int  # block; 0 while only applied
    umbral_key: bytes  # 33-byte compressed Umbral receiving key
    box_key: bytes  # 32-byte X25519 key
    endpoint: str  # proxies: base URL


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


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Number of admins (N) and approval threshold (M)."""

    admin_count: int
    threshold: int


@dataclass(frozen=True, slots=True)
class Profile:
    """A patient's registered public keys."""

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
    epoch: int
    expiry: int  # unix seconds, chain time
    proxies: Sequence[str]
    threshold: int
    sealed_kfrags: Sequence[bytes]  # aligned with proxies
    sealed_grantee_map: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != 32 or len(self.tag) != 32:
            raise ValueError("a grant's nonce and tag are 32 bytes each")
        if not 0 <= self.expiry < 2**40:
            raise ValueError(f"expiry {self.expiry} is not a unix time in seconds (uint40)")
        if not 0 <= self.threshold < 256 or not 0 <= self.epoch < 2**32:
            raise ValueError("threshold is a uint8 and epoch a uint32")

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple of ``Grants.GrantParams``."""
        return (
            self.nonce,
            Web3.to_checksum_address(self.grantee),
            self.tag,
            self.epoch,
            self.expiry,
            [Web3.to_checksum_address(p) for p in self.proxies],
            self.threshold,
            list(self.sealed_kfrags),
            self.sealed_grantee_map,
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A grant as stored on chain (grantee, proxies, threshold, kfrags: ``GrantCreated``)."""

    policy_id: PolicyId
    patient: str
    expiry: int  # unix seconds, chain time
    generation: int  # of (patient, tag) when granted
    revoked_at: int  # block; 0 while not revoked
    tag: CategoryTag
    proxies_hash: bytes  # proxies_hash(proxies)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """An access request and its answer."""

    request_id: int
    requester: str
    status: RequestStatus
    patient: str
    policy_id: PolicyId  # zero until approved


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access a proxy served, for ``AuditLog.log_accesses``."""

    requester: str
    records_hash: bytes  # keccak256 of the served record ids
    count: int
    evaluated_at: int  # block at which the proxy evaluated the grant

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple ``(requester, recordsHash, count, evaluatedAt)``."""
        return (
            Web3.to_checksum_address(self.requester),
            self.records_hash,
            self.count,
            self.evaluated_at,
        )


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """Where an event was emitted; every event dataclass starts with these fields."""

    block_number: int
    tx_hash: bytes
    log_index: int


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
class EntryAppended(ChainEvent):
    """One sealed index entry; ``head`` is the patient's hash chain after it.

    ``record_id`` is derived from (patient, tag, author, sequence) when the log is decoded.
    """

    patient: str
    tag: CategoryTag
    author: str
    record_id: RecordId
    sequence: int  # per (patient, tag, author)
    epoch: int
    head: bytes
    entry: bytes  # sealed entry: parse with emrshare.crypto, then verify


@dataclass(frozen=True, slots=True)
class WriterAuthorized(ChainEvent):
    """A patient authorized ``writer`` to append under ``tag``."""

    patient: str
    tag: CategoryTag
    writer: str
    sealed_payload: bytes  # (category, epoch, category public key) sealed to the writer


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
    epoch: int
    expiry: int
    generation: int
    threshold: int
    proxies: tuple[str, ...]
    sealed_kfrags: tuple[bytes, ...]  # aligned with proxies
    sealed_grantee_map: bytes


@dataclass(frozen=True, slots=True)
class GrantRevoked(ChainEvent):
    """A grant was revoked at block ``revoked_at``."""

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
    """A member asked a patient for access to a category."""

    request_id: int
    patient: str
    requester: str
    category: bytes
    purpose: bytes  # FHIR PurposeOfUse code, ASCII left-aligned: see purpose_code()
    reason_hash: bytes


@dataclass(frozen=True, slots=True)
class AccessRequestApproved(ChainEvent):
    """A patient approved a request; ``policy_id`` is the new grant."""

    request_id: int
    patient: str
    requester: str
    policy_id: PolicyId


@dataclass(frozen=True, slots=True)
class AccessRequestDenied(ChainEvent):
    """A patient denied a request."""

    request_id: int
    patient: str
    requester: str


@dataclass(frozen=True, slots=True)
class AccessLogged(ChainEvent):
    """A proxy logged one served access under a grant."""

    policy_id: PolicyId
    proxy: str
    requester: str
    records_hash: bytes
    count: int
    evaluated_at: int


_ENUM_FIELDS: dict[str, Callable[[int], Any]] = {
    "role": Role,
    "old_role": Role,
    "new_role": Role,
    "action": Action,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _py(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return Web3.to_checksum_address(value)
    if isinstance(value, list | tuple):
        return tuple(_py(v) for v in value)
    return value


def _checksummed(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if abi_type == "address[]":
        return [Web3.to_checksum_address(v) for v in value]
    return value


# ----------------------------------------------------------------- bindings


class _Binding:
    """Shared plumbing: ABI encoding, calls, sends, event decoding and queries."""

    NAME: ClassVar[str]
    EVENTS: ClassVar[tuple[type[ChainEvent], ...]]

    def __init__(self, client: ChainClient, address: str, *, start_block: int = 0) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.start_block = start_block
        abi = load_artifact(self.NAME).abi
        self._contract = client.w3.eth.contract(address=self.address, abi=abi)
        self._functions = {i["name"]: i for i in abi if i.get("type") == "function"}
        by_name = {i["name"]: i for i in abi if i.get("type") == "event"}
        self._event_abi: dict[type[ChainEvent], Mapping[str, Any]] = {
            cls: by_name[cls.__name__] for cls in self.EVENTS
        }
        self._by_topic = {event_topic(a): (cls, a) for cls, a in self._event_abi.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _encode(self, fn: str, args: Sequence[Any]) -> bytes:
        # web3 accepts only EIP-55 addresses: checksum every address argument here, once,
        # instead of at each call site (an invalid address still raises ValueError).
        inputs = self._functions[fn]["inputs"]
        fixed = [_checksummed(p["type"], a) for p, a in zip(inputs, args, strict=True)]
        return bytes.fromhex(self._contract.encode_abi(fn, fixed)[2:])

    def _call(self, fn: str, *args: Any) -> tuple[Any, ...]:
        out = self.client.call_raw(self.address, self._encode(fn, args))
        types = [_abi_type(p) for p in self._functions[fn]["outputs"]]
        try:
            return tuple(abi_decode(types, out))
        except Exception as exc:  # eth-abi raises several decoding error types
            # Typically empty output: no contract (or another one) at this address.
            raise ChainError(
                f"{self.NAME}.{fn} at {self.address} answered {len(out)} bytes that do not "
                f"decode as its outputs; check that the deployment matches this chain "
                "(Deployment.check)"
            ) from exc

    def _send(self, fn: str, *args: Any, gas: int | None = None) -> Receipt:
        r = self.client.send(self.address, self._encode(fn, args), gas=gas)
        events = tuple(
            ev
            for log in r.logs
            if Web3.to_checksum_address(log["address"]) == self.address
            for ev in [self.decode_log(log)]
            if ev is not None
        )
        return Receipt(r.tx_hash, r.block_number, r.gas_used, r.logs, events)

    def decode_log(self, log: Mapping[str, Any]) -> ChainEvent | None:
        """Decode one raw log of this contract into its event dataclass (None if unknown).

        A log with a known topic that does not decode raises :class:`ChainError`.
        """
        topics = [bytes(t) for t in log["topics"]]
        if not topics or topics[0] not in self._by_topic:
            return None
        try:
            return self._decode_known(log, topics)
        except Exception as exc:  # eth-abi, a wrong topic count, a malformed field
            raise ChainError(
                f"a {self._by_topic[topics[0]][0].__name__} log of {self.address} in block "
                f"{log.get('blockNumber')} does not decode; the node returned a malformed "
                "log or the ABI does not match the deployed contract"
            ) from exc

    def _decode_known(self, log: Mapping[str, Any], topics: list[bytes]) -> ChainEvent:
        cls, abi = self._by_topic[topics[0]]
        indexed = [p for p in abi["inputs"] if p["indexed"]]
        plain = [p for p in abi["inputs"] if not p["indexed"]]
        values: dict[str, Any] = {}
        for p, t in zip(indexed, topics[1:], strict=True):
            values[p["name"]] = abi_decode([_abi_type(p)], t)[0]
        data = log["data"]
        raw = bytes(data) if not isinstance(data, str) else bytes.fromhex(data[2:])
        for p, v in zip(plain, abi_decode([_abi_type(p) for p in plain], raw), strict=True):
            values[p["name"]] = v
        kwargs: dict[str, Any] = {
            "block_number": int(log["blockNumber"]),
            "tx_hash": bytes(log["transactionHash"]),
            "log_index": int(log["logIndex"]),
        }
        for name, v in values.items():
            key = _snake(name)
            conv = _ENUM_FIELDS.get(key)
            kwargs[key] = conv(v) if conv else _py(v)
        if cls is EntryAppended:
            # Derived, not emitted: see RecordIndex.recordIdOf.
            kwargs["record_id"] = record_id(
                kwargs["patient"], kwargs["tag"], kwargs["author"], kwargs["sequence"]
            )
        return cls(**kwargs)

    def _topics(self, cls: type[ChainEvent], filters: Mapping[str, Any]) -> list[Any]:
        abi = self._event_abi[cls]
        indexed = [p for p in abi["inputs"] if p["indexed"]]
        known = {_snake(p["name"]) for p in indexed}
        unknown = set(filters) - known
        if unknown:
            raise TypeError(
                f"{cls.__name__} can be filtered on {sorted(known)}, not {sorted(unknown)}"
            )
        topics: list[Any] = [event_topic(abi)]
        for p in indexed:
            v = filters.get(_snake(p["name"]))
            if v is None:
                topics.append(None)
            elif isinstance(v, list | tuple | set | frozenset):
                topics.append([topic_for(p["type"], x) for x in v])
            else:
                topics.append(topic_for(p["type"], v))
        return topics

    def events(
        self,
        cls: type[E],
        *,
        from_block: int | None = None,
        to_block: int | None = None,
        page_size: int = 2_000,
        **filters: Any,
    ) -> Iterator[E]:
        """Events of type ``cls`` in chain order, filtered on indexed fields.

        A filter value may be one value or a list (any of them). ``to_block`` defaults to
        the newest block with the client's confirmations.
        """
        if cls not in self._event_abi:
            raise TypeError(f"{type(self).__name__} emits no {cls.__name__}")
        start = self.start_block if from_block is None else from_block
        end = self.client.safe_block() if to_block is None else to_block
        for log in get_logs_paged(
            self.client.w3, self.address, self._topics(cls, filters), start, end, page_size
        ):
            ev = self.decode_log(log)
            if isinstance(ev, cls):
                yield ev

    def poll(
        self, cls: type[E], cursor: EventCursor, key: str, *, page_size: int = 2_000, **filters: Any
    ) -> list[E]:
        """New events since ``cursor``'s position for ``key``; advances and saves the cursor.

        **Warning:** the cursor is saved before the caller handles the events, so a crash
        in between skips them (at most once). For at least once, read with :meth:`events`
        and call ``cursor.advance(key, last_block + 1)`` after handling.
        """
        start = cursor.next_block(key, self.start_block)
        end = self.client.safe_block()
        if end < start:
            return []
        found = list(
            self.events(cls, from_block=start, to_block=end, page_size=page_size, **filters)
        )
        cursor.advance(key, end + 1)
        return found


class ConsortiumRegistry(_Binding):
    """Members, roles, keys, proxy endpoints; M-of-N admin proposals."""

    NAME = "ConsortiumRegistry"
    EVENTS = (
        MemberApplied,
        ProposalCreated,
        ProposalApproved,
        ProposalExecuted,
        MemberAdmitted,
        MemberRoleChanged,
        MemberRemoved,
        ThresholdChanged,
        KeysRotated,
        EndpointChanged,
    )

    # reads
    def member(self, account: str) -> Member:
        """A member's or applicant's record (reverts with ``Registry_NotMember`` otherwise)."""
        (m,) = self._call("memberOf", account)
        return Member(Web3.to_checksum_address(account), Role(m[0]), m[1], m[2], m[3], m[4])

    def role_of(self, account: str) -> Role:
        """The account's role (``Role.NONE`` if it is not a member)."""
        return Role(self._call("roleOf", account)[0])

    def has_role(self, account: str, role: Role) -> bool:
        """Whether the account is a member with ``role``."""
        return bool(self._call("hasRole", account, int(role))[0])

    def member_count(self) -> int:
        """Number of members."""
        return int(self._call("memberCount")[0])

    def members(self, offset: int = 0, limit: int = 100) -> list[str]:
        """One page of member addresses."""
        return [Web3.to_checksum_address(a) for a in self._call("members", offset, limit)[0]]

    def all_members(self, page: int = 100) -> list[Member]:
        """Every member with its record, read page by page."""
        out: list[Member] = []
        offset = 0
        while True:
            addrs = self.members(offset, page)
            out += [self.member(a) for a in addrs]
            if len(addrs) < page:
                return out
            offset += page

    def proxies(self) -> list[Member]:
        """Every member with role ``PROXY`` (their endpoints and box keys)."""
        return [m for m in self.all_members() if m.role is Role.PROXY]

    def admin_config(self) -> AdminConfig:
        """Number of admins N and approval threshold M."""
        n, m = self._call("adminConfig")
        return AdminConfig(int(n), int(m))

    def proposal(self, proposal_id: int) -> Proposal:
        """A proposal by id (``Registry_UnknownProposal`` if there is none)."""
        (p,) = self._call("proposal", proposal_id)
        return Proposal(
            proposal_id, Action(p[0]), Role(p[1]), p[2], p[3], p[4], _py(p[5]), p[6], _py(p[7])
        )

    def proposal_count(self) -> int:
        """Number of proposals ever made (ids 0 .. count-1)."""
        return int(self._call("proposalCount")[0])

    # transactions
    def apply(self, umbral_key: bytes, box_key: bytes, endpoint: str = "") -> Receipt:
        """Publish the sender's keys (and proxy endpoint) before admission."""
        return self._send("applyForMembership", umbral_key, box_key, endpoint)

    def rotate_keys(self, umbral_key: bytes, box_key: bytes) -> Receipt:
        """Replace the sender's (a member's) Umbral and X25519 keys."""
        return self._send("rotateKeys", umbral_key, box_key)

    def set_endpoint(self, endpoint: str) -> Receipt:
        """Set the sender's (a proxy's) endpoint URL."""
        return self._send("setEndpoint", endpoint)

    def propose(
        self, action: Action, target: str, role: Role = Role.NONE, threshold: int = 0
    ) -> Receipt:
        """Propose (and approve) an action; ``receipt.event(ProposalCreated).proposal_id``."""
        return self._send("propose", int(action), target, int(role), threshold)

    def approve(self, proposal_id: int) -> Receipt:
        """Approve a proposal as an admin."""
        return self._send("approve", proposal_id)

    def execute(self, proposal_id: int) -> Receipt:
        """Execute a proposal that has reached the threshold."""
        return self._send("execute", proposal_id)


class PatientProfiles(_Binding):
    """Patients' kfrag-verifying and box keys, under their own addresses."""

    NAME = "PatientProfiles"
    EVENTS = (ProfileRegistered,)

    def profile(self, patient: str) -> Profile:
        """The profile (reverts with ``PatientProfiles_NotRegistered`` if there is none)."""
        (p,) = self._call("profileOf", patient)
        return Profile(Web3.to_checksum_address(patient), p[0], p[1], p[2])

    def register(self, verifying_key: bytes, box_key: bytes) -> Receipt:
        """Register or replace the sender's profile keys."""
        return self._send("register", verifying_key, box_key)


class RecordIndex(_Binding):
    """Per-patient append-only index of sealed entries, with writer authorizations."""

    NAME = "RecordIndex"
    EVENTS = (EntryAppended, WriterAuthorized, WriterRevoked)

    # reads
    def next_sequence(self, patient: str, tag: CategoryTag, writer: str) -> int:
        """The sequence the next append by ``writer`` under (patient, tag) must name."""
        return int(
            self._call(
                "nextSequence",
                patient,
                tag,
                writer,
            )[0]
        )

    def is_writer(self, patient: str, tag: CategoryTag, writer: str) -> bool:
        """Whether ``writer`` may append under (patient, tag)."""
        return bool(self._call("isWriter", patient, tag, writer)[0])

    def head(self, patient: str) -> IndexHead:
        """The patient's hash-chain head and entry count."""
        (c,) = self._call("chainOf", patient)
        return IndexHead(c[0], c[1])

    def entries(
        self, patient: str, tag: CategoryTag | Sequence[CategoryTag] | None = None, **kw: Any
    ) -> Iterator[EntryAppended]:
        """The patient's entries (optionally of one or several tags), in index order."""
        return self.events(EntryAppended, patient=patient, tag=tag, **kw)

    # transactions
    def authorize_writer(self, tag: CategoryTag, writer: str, sealed_payload: bytes) -> Receipt:
        """Let ``writer`` append under the sender's ``tag``; the payload is sealed to it."""
        return self._send("authorizeWriter", tag, writer, sealed_payload)

    def revoke_writer(self, tag: CategoryTag, writer: str) -> Receipt:
        """Withdraw ``writer``'s authorization for the sender's ``tag``."""
        return self._send("revokeWriter", tag, writer)

    def append(
        self, patient: str, tag: CategoryTag, epoch: int, sequence: int, entry: bytes
    ) -> Receipt:
        """Append one entry; ``sequence`` must equal :meth:`next_sequence` (exactly-once)."""
        return self._send("append", patient, tag, epoch, sequence, entry)

    def append_batch(
        self,
        patient: str,
        tag: CategoryTag,
        epoch: int,
        first_sequence: int,
        entries: Sequence[bytes],
    ) -> Receipt:
        """Append entries under one tag; entry ``i`` gets ``first_sequence + i``."""
        return self._send(
            "appendBatch",
            patient,
            tag,
            epoch,
            first_sequence,
            list(entries),
        )

    def append_once(
        self,
        patient: str,
        tag: CategoryTag,
        epoch: int,
        first_sequence: int,
        entries: Sequence[bytes],
    ) -> Appended:
        """Append ``entries`` at ``first_sequence`` exactly once, safe to call again.

        A writer records ``first_sequence`` (its :meth:`next_sequence`) before sending, and
        after a crash or timeout simply calls this again with the same arguments: if the
        earlier transaction landed, the contract answers ``RecordIndex_WrongSequence`` with
        ``expected`` past this batch and the result says ``already=True``. Any other
        sequence mismatch is re-raised (another process is writing as the same writer).
        """
        sender = self.client.address
        if sender is None:
            raise ConfigurationError("a read-only ChainClient cannot append")
        ids = tuple(
            record_id(patient, tag, sender, first_sequence + i) for i in range(len(entries))
        )
        try:
            if len(entries) == 1:
                receipt = self.append(patient, tag, epoch, first_sequence, entries[0])
            else:
                receipt = self.append_batch(patient, tag, epoch, first_sequence, entries)
        except ContractRevert as exc:
            expected = exc.args_by_name.get("expected")
            if (
                exc.name == "RecordIndex_WrongSequence"
                and isinstance(expected, int)
                and expected >= first_sequence + len(entries)
                and first_sequence == exc.args_by_name.get("given")
            ):
                return Appended(ids, None, already=True)
            raise
        return Appended(ids, receipt, already=False)


@dataclass(frozen=True, slots=True)
class Appended:
    """Result of :meth:`RecordIndex.append_once`.

    ``already`` is true when an earlier attempt had landed (``receipt`` is then None).
    """

    record_ids: tuple[RecordId, ...]
    receipt: Receipt | None
    already: bool


class Grants(_Binding):
    """Grants, revocation, tag-wide revocation and access requests."""

    NAME = "Grants"
    EVENTS = (
        GrantCreated,
        GrantRevoked,
        TagRevoked,
        AccessRequested,
        AccessRequestApproved,
        AccessRequestDenied,
    )

    # reads
    def is_active(self, policy_id: PolicyId) -> bool:
        """Whether the grant is active on chain time now."""
        return bool(self._call("isActive", policy_id)[0])

    def status(self, policy_id: PolicyId) -> GrantStatus:
        """The grant's :class:`GrantStatus` on chain time."""
        return GrantStatus(self._call("statusOf", policy_id)[0])

    def policy(self, policy_id: PolicyId) -> Policy:
        """The stored grant (reverts with ``Grants_UnknownPolicy`` if there is none)."""
        (p,) = self._call("policyOf", policy_id)
        return Policy(policy_id, _py(p[0]), p[1], p[2], p[3], p[4], p[5])

    def proxies_hash(self, policy_id: PolicyId) -> bytes:
        """The stored hash of the grant's proxy list (zero if there is no grant)."""
        return bytes(self._call("proxiesHashOf", policy_id)[0])

    def generation(self, patient: str, tag: CategoryTag) -> int:
        """The current generation of a patient's tag (bumped by ``revoke_tag``)."""
        return int(self._call("generationOf", patient, tag)[0])

    def policy_count(self, patient: str) -> int:
        """Number of grants the patient ever created."""
        return int(self._call("policyCount", patient)[0])

    def policies(self, patient: str, offset: int = 0, limit: int = 100) -> list[PolicyId]:
        """One page of the patient's policy ids, oldest first."""
        page = self._call("policiesOf", patient, offset, limit)[0]
        return [PolicyId(bytes(p)) for p in page]

    def request(self, request_id: int) -> AccessRequest:
        """An access request by id (``Grants_UnknownRequest`` if there is none)."""
        (r,) = self._call("requestOf", request_id)
        return AccessRequest(request_id, _py(r[0]), RequestStatus(r[1]), _py(r[2]), r[3])

    def request_count(self) -> int:
        """Number of access requests ever made (ids 1 .. count)."""
        return int(self._call("requestCount")[0])

    def hash_proxy_request(
        self,
        proxy: str,
        policy_id: PolicyId,
        capsule_hashes: Sequence[bytes],
        nonce: int,
        deadline: int,
    ) -> bytes:
        """The EIP-712 digest a grantee signs for a proxy request (computed on chain)."""
        return bytes(
            self._call(
                "hashProxyRequest",
                proxy,
                policy_id,
                list(capsule_hashes),
                nonce,
                deadline,
            )[0]
        )

    # transactions
    def grant(self, params: GrantParams) -> Receipt:
        """Create a grant; ``receipt.event(GrantCreated).policy_id`` is its id."""
        return self._send("grant", params.as_abi())

    def revoke(self, policy_id: PolicyId) -> Receipt:
        """Revoke one of the sender's grants; ``GrantRevoked.revoked_at`` is the block."""
        return self._send("revoke", policy_id)

    def revoke_tag(self, tag: CategoryTag) -> Receipt:
        """Revoke every grant of the sender's ``tag`` at once (epoch bump)."""
        return self._send("revokeTag", tag)

    def request_access(
        self, patient: str, category: bytes, purpose: bytes, reason_hash: bytes
    ) -> Receipt:
        """Ask a patient for access; ``receipt.event(AccessRequested).request_id``."""
        return self._send("requestAccess", patient, category, purpose, reason_hash)

    def approve_request(self, request_id: int, params: GrantParams) -> Receipt:
        """Approve a pending request by creating the grant ``params`` for the requester."""
        return self._send("approveRequest", request_id, params.as_abi())

    def deny_request(self, request_id: int) -> Receipt:
        """Deny a pending request addressed to the sender."""
        return self._send("denyRequest", request_id)


class AuditLog(_Binding):
    """Accesses served by proxies, logged per grant."""

    NAME = "AuditLog"
    EVENTS = (AccessLogged,)

    def log_accesses(
        self, policy_id: PolicyId, proxies: Sequence[str], accesses: Sequence[AccessEntry]
    ) -> Receipt:
        """Log served accesses; ``proxies`` is the grant's proxy list, in grant order."""
        return self._send(
            "logAccesses",
            policy_id,
            list(proxies),
            [a.as_abi() for a in accesses],
        )


@dataclass(frozen=True, slots=True)
class Contracts:
    """All bindings of one deployment, sharing one client."""

    registry: ConsortiumRegistry
    profiles: PatientProfiles
    index: RecordIndex
    grants: Grants
    audit: AuditLog

    @classmethod
    def from_deployment(cls, client: ChainClient, deployment: Deployment) -> Contracts:
        """Bind every contract of ``deployment`` to ``client``; queries start at its start block."""
        s = deployment.start_block
        return cls(
            registry=ConsortiumRegistry(
                client, deployment.address_of("ConsortiumRegistry"), start_block=s
            ),
            profiles=PatientProfiles(
                client, deployment.address_of("PatientProfiles"), start_block=s
            ),
            index=RecordIndex(client, deployment.address_of("RecordIndex"), start_block=s),
            grants=Grants(client, deployment.address_of("Grants"), start_block=s),
            audit=AuditLog(client, deployment.address_of("AuditLog"), start_block=s),
        )

    def with_client(self, client: ChainClient) -> Contracts:
        """The same contracts, used through another client (another signing key)."""
        s = self.registry.start_block
        return Contracts(
            registry=ConsortiumRegistry(client, self.registry.address, start_block=s),
            profiles=PatientProfiles(client, self.profiles.address, start_block=s),
            index=RecordIndex(client, self.index.address, start_block=s),
            grants=Grants(client, self.grants.address, start_block=s),
            audit=AuditLog(client, self.audit.address, start_block=s),
        )


# Keep dataclass field order and ABI input order in sync (checked by the unit tests).
EVENT_CLASSES: tuple[type[ChainEvent], ...] = tuple(
    cls
    for b in (ConsortiumRegistry, PatientProfiles, RecordIndex, Grants, AuditLog)
    for cls in b.EVENTS
)


def _event_field_names(cls: type[ChainEvent]) -> list[str]:
    return [f.name for f in fields(cls)][3:]
