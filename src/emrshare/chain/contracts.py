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
from functools import cache
from typing import Any, ClassVar, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3

from emrshare.chain.artifacts import load_artifact
from emrshare.chain.client import ChainClient, Receipt, SignedTransaction, _abi_type
from emrshare.chain.deploy import Deployment
from emrshare.chain.events import EventCursor, event_topic, get_logs_paged, topic_for
from emrshare.chain.ids import record_id
from emrshare.errors import ChainError, ConfigurationError, ContractRevert
from emrshare.types import CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessEntry",
    "AccessLogged",
    "AccessRequest",
    "AccessRequestAnswered",
    "AccessRequested",
    "Action",
    "ActiveWindow",
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
    "MemberReinstated",
    "MemberRemoved",
    "MemberRoleChanged",
    "MemberSuspended",
    "PatientProfiles",
    "Policy",
    "Profile",
    "ProfileRegistered",
    "Proposal",
    "ProposalApproved",
    "ProposalCreated",
    "ProposalExecuted",
    "ProxyReported",
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
    SUSPEND = 4  # a proxy, on verified evidence (``ProxyReported``)
    REINSTATE = 5


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
    ANSWERED = 2  # the sealed answer says approved (with the policy ids) or denied


# ------------------------------------------------------------ value types


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


_ENUM_FIELDS: dict[str, Callable[[int], Any]] = {
    "role": Role,
    "old_role": Role,
    "new_role": Role,
    "action": Action,
}


#: ABI names that are not the snake_case of the Python field (Solidity reserved words).
_RENAMED = {"ref": "reference"}


def _snake(name: str) -> str:
    return _RENAMED.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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


@cache
def _function_abi(contract: str, fn: str) -> tuple[bytes, tuple[str, ...]]:
    """Selector and canonical argument types of a function of a shipped contract."""
    (item,) = [
        i for i in load_artifact(contract).abi if i.get("type") == "function" and i["name"] == fn
    ]
    types = tuple(_abi_type(p) for p in item["inputs"])
    return keccak(text=f"{fn}({','.join(types)})")[:4], types


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
        self._abi = abi
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
        # eth-abi directly with a cached selector: web3's encode_abi walks every argument
        # through its ABI mappers, which costs more than a bulk append's other Python.
        selector, types = _function_abi(self.NAME, fn)
        fixed = [_checksummed(t, a) for t, a in zip(types, args, strict=True)]
        return selector + abi_encode(list(types), fixed)

    def _call(self, fn: str, *args: Any, block: int | None = None) -> tuple[Any, ...]:
        """``eth_call`` of ``fn`` at ``block`` (default: latest), decoded."""
        at: int | str = "latest" if block is None else block
        out = self.client.call_raw(self.address, self._encode(fn, args), at)
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

    def _events_of_kinds(
        self,
        kinds: Sequence[type[ChainEvent]],
        from_block: int,
        to_block: int,
        **filters: Any,
    ) -> list[ChainEvent]:
        """Events of several ``kinds`` in one paged ``eth_getLogs``, in chain order.

        The filtered fields must sit at the same indexed positions in every kind.
        """
        per_kind = [self._topics(k, filters) for k in kinds]
        if any(t[1:] != per_kind[0][1:] for t in per_kind):
            raise TypeError("these events index the filtered fields at different positions")
        topics = [[t[0] for t in per_kind], *per_kind[0][1:]]
        found: list[ChainEvent] = []
        for log in get_logs_paged(self.client.w3, self.address, topics, from_block, to_block):
            ev = self.decode_log(log)
            if ev is not None and type(ev) in kinds:
                found.append(ev)
        found.sort(key=lambda ev: (ev.block_number, ev.log_index))
        return found

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
    """Members, roles, keys, proxy endpoints; M-of-N admin proposals; proxy reports."""

    NAME = "ConsortiumRegistry"
    EVENTS = (
        MemberApplied,
        ProposalCreated,
        ProposalApproved,
        ProposalExecuted,
        MemberAdmitted,
        MemberRoleChanged,
        MemberRemoved,
        MemberSuspended,
        MemberReinstated,
        ProxyReported,
        ThresholdChanged,
        KeysRotated,
        EndpointChanged,
    )

    # reads (each at ``block``, default latest)
    def member(self, account: str, *, block: int | None = None) -> Member:
        """A member's or applicant's record (reverts with ``Registry_NotMember`` otherwise)."""
        (m,) = self._call("memberOf", account, block=block)
        return Member(Web3.to_checksum_address(account), Role(m[0]), m[1], m[2], m[3], m[4], m[5])

    def role_of(self, account: str, *, block: int | None = None) -> Role:
        """The account's role (``Role.NONE`` if it is not a member; suspension not shown)."""
        return Role(self._call("roleOf", account, block=block)[0])

    def has_role(self, account: str, role: Role, *, block: int | None = None) -> bool:
        """Whether the account is a member with ``role`` and not suspended."""
        return bool(self._call("hasRole", account, int(role), block=block)[0])

    def is_active_member(self, account: str, *, block: int | None = None) -> bool:
        """Whether the account is a member (any role) and not suspended."""
        return bool(self._call("isActiveMember", account, block=block)[0])

    def is_suspended(self, account: str, *, block: int | None = None) -> bool:
        """Whether the account is a member or applicant that is suspended now."""
        return self.member(account, block=block).suspended_at != 0

    def suspended_at(self, account: str, *, block: int | None = None) -> int:
        """The block a member was suspended at, 0 if it is not suspended."""
        return self.member(account, block=block).suspended_at

    def all_have_role(
        self, accounts: Sequence[str], role: Role, *, block: int | None = None
    ) -> tuple[bool, int]:
        """``(True, len(accounts))`` if every account has ``role`` unsuspended, else
        ``(False, index of the first that does not)``; one call."""
        ok, first_bad = self._call("allHaveRole", list(accounts), int(role), block=block)
        return bool(ok), int(first_bad)

    def member_count(self, *, block: int | None = None) -> int:
        """Number of members."""
        return int(self._call("memberCount", block=block)[0])

    def members(self, offset: int = 0, limit: int = 100, *, block: int | None = None) -> list[str]:
        """One page of member addresses."""
        page = self._call("members", offset, limit, block=block)[0]
        return [Web3.to_checksum_address(a) for a in page]

    def all_members(self, page: int = 100, *, block: int | None = None) -> list[Member]:
        """Every member with its record, read page by page."""
        out: list[Member] = []
        offset = 0
        while True:
            addrs = self.members(offset, page, block=block)
            out += [self.member(a, block=block) for a in addrs]
            if len(addrs) < page:
                return out
            offset += page

    def proxies(self, *, block: int | None = None) -> list[Member]:
        """Every member with role ``PROXY`` that is not suspended (endpoints, box keys)."""
        return [
            m for m in self.all_members(block=block) if m.role is Role.PROXY and m.suspended_at == 0
        ]

    def admin_config(self, *, block: int | None = None) -> AdminConfig:
        """Number of admins N and approval threshold M."""
        n, m = self._call("adminConfig", block=block)
        return AdminConfig(int(n), int(m))

    def proposal(self, proposal_id: int, *, block: int | None = None) -> Proposal:
        """A proposal by id (``Registry_UnknownProposal`` if there is none)."""
        (p,) = self._call("proposal", proposal_id, block=block)
        return Proposal(
            proposal_id,
            Action(p[0]),
            Role(p[1]),
            p[2],
            p[3],
            p[4],
            _py(p[5]),
            p[6],
            _py(p[7]),
            bytes(p[8]),
        )

    def proposal_count(self, *, block: int | None = None) -> int:
        """Number of proposals ever made (ids 0 .. count-1)."""
        return int(self._call("proposalCount", block=block)[0])

    def report_count(self, *, block: int | None = None) -> int:
        """Number of proxy reports ever made (ids 0 .. count-1)."""
        return int(self._call("reportCount", block=block)[0])

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
        self,
        action: Action,
        target: str,
        role: Role = Role.NONE,
        threshold: int = 0,
        reference: bytes = bytes(32),
    ) -> Receipt:
        """Propose (and approve) an action; ``receipt.event(ProposalCreated).proposal_id``.

        ``reference`` (32 bytes) is cited in the proposal, e.g. the ``evidence_hash`` of the
        :class:`ProxyReported` a SUSPEND acts on.
        """
        if len(reference) != 32:
            raise ValueError("a proposal reference is 32 bytes")
        if reference == bytes(32):
            return self._send("propose", int(action), target, int(role), threshold)
        return self._send(
            "proposeWithReference", int(action), target, int(role), threshold, reference
        )

    def approve(self, proposal_id: int) -> Receipt:
        """Approve a proposal as an admin."""
        return self._send("approve", proposal_id)

    def execute(self, proposal_id: int) -> Receipt:
        """Execute a proposal that has reached the threshold."""
        return self._send("execute", proposal_id)

    def report_proxy(self, proxy: str, evidence: bytes) -> Receipt:
        """Report a proxy with ``evidence`` (1..16384 bytes, published);
        ``receipt.event(ProxyReported).report_id``."""
        return self._send("reportProxy", proxy, evidence)


class PatientProfiles(_Binding):
    """Patients' kfrag-verifying and box keys, under their own addresses."""

    NAME = "PatientProfiles"
    EVENTS = (ProfileRegistered,)

    def profile(self, patient: str, *, block: int | None = None) -> Profile:
        """The profile (reverts with ``PatientProfiles_NotRegistered`` if there is none)."""
        (p,) = self._call("profileOf", patient, block=block)
        return Profile(Web3.to_checksum_address(patient), p[0], p[1], p[2])

    def is_registered(self, patient: str, *, block: int | None = None) -> bool:
        """Whether the address has registered a profile."""
        return bool(self._call("isRegistered", patient, block=block)[0])

    def register(self, verifying_key: bytes, box_key: bytes) -> Receipt:
        """Register or replace the sender's profile keys."""
        return self._send("register", verifying_key, box_key)


class RecordIndex(_Binding):
    """Per-patient append-only index of sealed entries, with writer authorizations."""

    NAME = "RecordIndex"
    EVENTS = (EntryAppended, WriterAuthorized, WriterRevoked)

    # reads (each at ``block``, default latest)
    def next_sequence(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> int:
        """The sequence the next append by ``writer`` under (patient, tag) must name."""
        return int(self._call("nextSequence", patient, tag, writer, block=block)[0])

    def is_writer(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> bool:
        """Whether ``writer`` may append under (patient, tag) now (authorized and an
        active Provider, or the patient itself)."""
        return bool(self._call("isWriter", patient, tag, writer, block=block)[0])

    def is_authorized(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> bool:
        """Whether ``writer`` holds an authorization for (patient, tag), membership aside."""
        return bool(self._call("isAuthorized", patient, tag, writer, block=block)[0])

    def head(self, patient: str, *, block: int | None = None) -> IndexHead:
        """The patient's hash-chain head and entry count (at ``block``)."""
        (c,) = self._call("chainOf", patient, block=block)
        return IndexHead(c[0], c[1])

    def entries(
        self, patient: str, tag: CategoryTag | Sequence[CategoryTag] | None = None, **kw: Any
    ) -> Iterator[EntryAppended]:
        """The patient's entries (optionally of one or several tags), in index order."""
        return self.events(EntryAppended, patient=patient, tag=tag, **kw)

    # transactions
    def authorize_writer(self, tag: CategoryTag, writer: str, sealed_payload: bytes) -> Receipt:
        """Let ``writer`` (an active Provider) append under the sender's ``tag``."""
        return self._send("authorizeWriter", tag, writer, sealed_payload)

    def revoke_writer(self, tag: CategoryTag, writer: str) -> Receipt:
        """Withdraw ``writer``'s authorization for the sender's ``tag``."""
        return self._send("revokeWriter", tag, writer)

    def revoke_writers(self, tag: CategoryTag, writers: Sequence[str]) -> Receipt:
        """Withdraw several writers of the sender's ``tag`` (each must be authorized)."""
        return self._send("revokeWriters", tag, list(writers))

    def rekey_writers(
        self,
        old_tag: CategoryTag,
        new_tag: CategoryTag,
        writers: Sequence[str],
        sealed_payloads: Sequence[bytes],
    ) -> Receipt:
        """Move writers from ``old_tag`` to ``new_tag`` (a new epoch) in one transaction."""
        return self._send("rekeyWriters", old_tag, new_tag, list(writers), list(sealed_payloads))

    def append(self, patient: str, tag: CategoryTag, sequence: int, entry: bytes) -> Receipt:
        """Append one entry; ``sequence`` must equal :meth:`next_sequence` (exactly-once)."""
        return self._send("append", patient, tag, sequence, entry)

    def append_batch(
        self, patient: str, tag: CategoryTag, first_sequence: int, entries: Sequence[bytes]
    ) -> Receipt:
        """Append entries under one tag; entry ``i`` gets ``first_sequence + i``."""
        return self._send("appendBatch", patient, tag, first_sequence, list(entries))

    def append_entries(
        self,
        patient: str,
        tag: CategoryTag,
        first_sequence: int,
        sealed: Sequence[bytes],
        *,
        gas: int | None = None,
    ) -> Receipt:
        """Append ``sealed`` entries (``append`` for one, ``appendBatch`` for more), fast.

        The bulk write path: the receipt carries no logs and no decoded events (a batch
        emits hundreds, and decoding them costs more than the round trip). ``gas`` skips
        the estimate. A wrong sequence still raises ``RecordIndex_WrongSequence``.
        """
        if not sealed:
            raise ValueError("append_entries needs at least one entry")
        if len(sealed) == 1:
            data = self._encode("append", (patient, tag, first_sequence, sealed[0]))
        else:
            data = self._encode("appendBatch", (patient, tag, first_sequence, list(sealed)))
        return self.client.send(self.address, data, gas=gas, with_logs=False)

    def writer_events(
        self, patient: str, writer: str, from_block: int, to_block: int
    ) -> list[WriterAuthorized | WriterRevoked]:
        """``writer``'s authorizations and revocations by ``patient`` (every tag) in
        ``[from_block, to_block]``, in chain order, in one paged ``eth_getLogs``."""
        found = self._events_of_kinds(
            (WriterAuthorized, WriterRevoked), from_block, to_block, patient=patient, writer=writer
        )
        return [ev for ev in found if isinstance(ev, WriterAuthorized | WriterRevoked)]

    def append_once(
        self, patient: str, tag: CategoryTag, first_sequence: int, entries: Sequence[bytes]
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
                receipt = self.append(patient, tag, first_sequence, entries[0])
            else:
                receipt = self.append_batch(patient, tag, first_sequence, entries)
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
    """Grants, revocation, tag-wide revocation and sealed access requests."""

    NAME = "Grants"
    EVENTS = (
        GrantCreated,
        GrantRevoked,
        TagRevoked,
        AccessRequested,
        AccessRequestAnswered,
    )

    # reads (each at ``block``, default latest)
    def is_active(self, policy_id: PolicyId, *, block: int | None = None) -> bool:
        """Whether the grant is active on chain time (of ``block``)."""
        return bool(self._call("isActive", policy_id, block=block)[0])

    def status(self, policy_id: PolicyId, *, block: int | None = None) -> GrantStatus:
        """The grant's :class:`GrantStatus` on chain time (of ``block``)."""
        return GrantStatus(self._call("statusOf", policy_id, block=block)[0])

    def policy(self, policy_id: PolicyId, *, block: int | None = None) -> Policy:
        """The stored grant (reverts with ``Grants_UnknownPolicy`` if there is none)."""
        (p,) = self._call("policyOf", policy_id, block=block)
        return Policy(policy_id, _py(p[0]), p[1], p[2], p[3], p[4], p[5], bytes(p[6]))

    def active_window(self, policy_id: PolicyId, *, block: int | None = None) -> ActiveWindow:
        """When the grant could be served (``Grants_UnknownPolicy`` if there is none)."""
        patient, created, end, expiry, binding = self._call("activeWindow", policy_id, block=block)
        return ActiveWindow(_py(patient), int(created), int(end), int(expiry), bytes(binding))

    def binding(self, policy_id: PolicyId, *, block: int | None = None) -> bytes:
        """The grant's stored 27-byte binding (zero if there is no grant)."""
        return bytes(self._call("bindingOf", policy_id, block=block)[0])

    def binding_for(
        self, grantee: str, proxies: Sequence[str], *, block: int | None = None
    ) -> bytes:
        """The binding the contract computes for (grantee, proxies); equals ids.binding_for."""
        return bytes(self._call("bindingFor", grantee, list(proxies), block=block)[0])

    def generation(self, patient: str, tag: CategoryTag, *, block: int | None = None) -> int:
        """The current generation of a patient's tag (bumped by ``revoke_tag``)."""
        return int(self._call("generationOf", patient, tag, block=block)[0])

    def generation_ended_at(
        self, patient: str, tag: CategoryTag, generation: int, *, block: int | None = None
    ) -> int:
        """The block at which that generation of the tag ended, 0 while it is current."""
        return int(self._call("generationEndedAt", patient, tag, generation, block=block)[0])

    def policy_count(self, patient: str, *, block: int | None = None) -> int:
        """Number of grants the patient ever created."""
        return int(self._call("policyCount", patient, block=block)[0])

    def policies(
        self, patient: str, offset: int = 0, limit: int = 100, *, block: int | None = None
    ) -> list[PolicyId]:
        """One page of the patient's policy ids, oldest first."""
        page = self._call("policiesOf", patient, offset, limit, block=block)[0]
        return [PolicyId(bytes(p)) for p in page]

    def request(self, request_id: int, *, block: int | None = None) -> AccessRequest:
        """An access request by id (``Grants_UnknownRequest`` if there is none)."""
        (r,) = self._call("requestOf", request_id, block=block)
        return AccessRequest(request_id, _py(r[0]), RequestStatus(r[1]), _py(r[2]))

    def request_count(self, *, block: int | None = None) -> int:
        """Number of access requests ever made (ids 1 .. count)."""
        return int(self._call("requestCount", block=block)[0])

    def hash_proxy_request(
        self,
        proxy: str,
        policy_id: PolicyId,
        capsule_hashes: Sequence[bytes],
        nonce: int,
        deadline: int,
        *,
        block: int | None = None,
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
                block=block,
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
        """Revoke every grant of the sender's ``tag`` at once (generation bump)."""
        return self._send("revokeTag", tag)

    def request_access(self, patient: str, sealed_request: bytes) -> Receipt:
        """Send a patient a sealed request; ``receipt.event(AccessRequested).request_id``."""
        return self._send("requestAccess", patient, sealed_request)

    def answer_request(self, request_id: int, sealed_answer: bytes) -> Receipt:
        """Answer a pending request addressed to the sender with a sealed answer."""
        return self._send("answerRequest", request_id, sealed_answer)


class AuditLog(_Binding):
    """Accesses served by proxies, logged per grant with the grantees' signed requests."""

    NAME = "AuditLog"
    EVENTS = (AccessLogged,)

    def domain_separator(self, *, block: int | None = None) -> bytes:
        """The EIP-712 domain separator the log checks signatures under (Grants')."""
        return bytes(self._call("domainSeparator", block=block)[0])

    def log_accesses(
        self,
        policy_id: PolicyId,
        grantee: str,
        proxies: Sequence[str],
        accesses: Sequence[AccessEntry],
    ) -> Receipt:
        """Log served accesses; ``grantee`` and ``proxies`` (in grant order) are the grant's."""
        return self._send(
            "logAccesses",
            policy_id,
            grantee,
            list(proxies),
            [a.as_abi() for a in accesses],
        )

    def sign_log_accesses(
        self,
        policy_id: PolicyId,
        grantee: str,
        proxies: Sequence[str],
        accesses: Sequence[AccessEntry],
        *,
        nonce: int,
        gas: int,
    ) -> SignedTransaction:
        """:meth:`log_accesses`, signed with ``nonce`` and ``gas`` but not sent: a proxy
        stores it and broadcasts it (again, after a restart) with ``client.broadcast``."""
        data = self._encode(
            "logAccesses", (policy_id, grantee, list(proxies), [a.as_abi() for a in accesses])
        )
        return self.client.sign(self.address, data, gas=gas, nonce=nonce)


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

    def events_between(
        self, from_block: int, to_block: int, kinds: Sequence[type[ChainEvent]]
    ) -> list[ChainEvent]:
        """Events of ``kinds`` (of any contracts) in ``[from_block, to_block]``, decoded
        and in chain order, from one paged ``eth_getLogs`` over the contracts that emit
        them."""
        bindings = [b for b in self._bindings() if any(k in b.EVENTS for k in kinds)]
        stray = [k.__name__ for k in kinds if not any(k in b.EVENTS for b in bindings)]
        if stray:
            raise TypeError(f"no contract of the deployment emits {', '.join(stray)}")
        by_address = {b.address: b for b in bindings}
        topic0 = [event_topic(b._event_abi[k]) for b in bindings for k in kinds if k in b.EVENTS]
        client = self.registry.client
        found: list[ChainEvent] = []
        for log in get_logs_paged(client.w3, list(by_address), [topic0], from_block, to_block):
            binding = by_address.get(Web3.to_checksum_address(log["address"]))
            ev = binding.decode_log(log) if binding is not None else None
            if ev is not None and type(ev) in kinds:
                found.append(ev)
        found.sort(key=lambda ev: (ev.block_number, ev.log_index))
        return found

    def _bindings(self) -> tuple[_Binding, ...]:
        return (self.registry, self.profiles, self.index, self.grants, self.audit)

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
