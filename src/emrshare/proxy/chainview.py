"""What the proxy needs from the chain, as one small protocol, and the events it follows.

The proxy never trusts an answer from another block for a policy decision:
:meth:`ProxyChain.policy_status` reads the grants contract at the block the request is
evaluated at (the latest, read after the request arrived), and the service shares that
answer only among requests judged at that same block (number and hash). Events feed only the
proxy's own indexes (which capsule belongs to which patient and tag; which kfrag
belongs to which policy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import umbral_pre
from eth_utils.crypto import keccak

from emrshare.chain import (
    AccessEntry,
    EmergencyPolicyCreated,
    EmergencyPolicyWithdrawn,
    EmergencyStatus,
    EntryAppended,
    GrantCreated,
    GrantRevokedEvent,
    GrantStatus,
    SignedTransaction,
    TagRevoked,
)
from emrshare.crypto.entry import SealedEntry

__all__ = [
    "AccessEntry",
    "EmergencyPolicyCreated",
    "EmergencyLog",
    "EmergencyPolicyWithdrawn",
    "EmergencyView",
    "GrantCreated",
    "GrantRevokedEvent",
    "GrantStatus",
    "IndexedCapsule",
    "ProxyChain",
    "ProxyEvent",
    "TagRevoked",
    "audit_gas",
    "emergency_gas",
]


@dataclass(frozen=True, slots=True)
class IndexedCapsule:
    """An :class:`~emrshare.chain.EntryAppended` whose entry is a sealed entry, as the
    proxy indexes it: the capsule (``capsule_hash`` = keccak256(bytes(capsule))) and whose
    record, under which tag, it belongs to. Same position fields as the chain's events.
    """

    block_number: int
    log_index: int
    patient: str
    tag: bytes
    record_id: bytes
    capsule_hash: bytes
    #: The parsed capsule, when the source already parsed it (saves parsing it per request).
    capsule: umbral_pre.Capsule | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_event(cls, ev: EntryAppended) -> IndexedCapsule | None:
        """The capsule hash of ``ev``'s sealed entry; None if the entry does not have a
        sealed entry's layout (nothing a proxy could ever serve). The capsule is not
        parsed here (a proxy follows every entry on chain and most are never read): a
        request for it parses it, and a capsule that does not parse, or whose bytes are
        not what the client hashed, is refused then."""
        raw = SealedEntry.raw_capsule(ev.entry)
        if raw is None:
            return None
        return cls(
            block_number=ev.block_number,
            log_index=ev.log_index,
            patient=ev.patient,
            tag=bytes(ev.tag),
            record_id=bytes(ev.record_id),
            capsule_hash=bytes(keccak(raw)),
        )


#: The events a proxy follows: the chain's grant and emergency opt-in events, and the index
#: entries it can serve.
ProxyEvent = (
    GrantCreated
    | GrantRevokedEvent
    | TagRevoked
    | IndexedCapsule
    | EmergencyPolicyCreated
    | EmergencyPolicyWithdrawn
)


@dataclass(frozen=True, slots=True)
class EmergencyView:
    """An emergency declaration as a proxy checks it, read at one block: its status on
    that block's time, and (unless ``status`` is NONE) its patient, clinician, the
    generation of the opt-in it opened and the end of its time box (``ends_at``, unix
    seconds)."""

    status: EmergencyStatus
    patient: str = ""
    clinician: str = ""
    generation: int = 0
    ends_at: int = 0


def emergency_gas(proxies: int, capsules: int) -> int:
    """The fixed gas of one ``Emergency.logEmergencyAccess`` transaction (as
    :func:`audit_gas`: signed before broadcast, never re-estimated)."""
    return 120_000 + 3_000 * proxies + 2_000 * capsules


@dataclass(frozen=True, slots=True)
class EmergencyLog:
    """One emergency serve as ``Emergency.logEmergencyAccess`` logs it: the declaration,
    the opt-in's proxies (in opt-in order), the tag, the capsule hashes served and the
    chain time of the block the proxy judged the serve at (``served_at``)."""

    declaration_id: int
    proxies: tuple[str, ...]
    tag: bytes
    capsule_hashes: tuple[bytes, ...]
    served_at: int

    @property
    def gas(self) -> int:
        """The fixed gas its transaction is signed with (:func:`emergency_gas`)."""
        return emergency_gas(len(self.proxies), len(self.capsule_hashes))


def audit_gas(items: Sequence[AccessEntry]) -> int:
    """The fixed gas an audit-log transaction of ``items`` is signed with.

    Fixed, generous: the signed bytes are stored before broadcast and must stay valid
    without re-estimating (signature recovery ~6k, each capsule hash ~1k of calldata,
    event and hashing). The flusher keeps each batch's total under the block gas limit.
    """
    return 100_000 + sum(40_000 + 2_000 * len(i.capsule_hashes) for i in items)


class ProxyChain(Protocol):
    """The chain as a proxy sees it. Blocking calls; the service runs them off the loop."""

    @property
    def chain_id(self) -> int: ...

    @property
    def grants_contract(self) -> str: ...

    @property
    def proxy_address(self) -> str:
        """The proxy's own Ethereum address (its member identity and audit sender)."""
        ...

    def head(self) -> int:
        """The latest block number."""
        ...

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block ``number`` on the node's current chain (None if it has none)."""
        ...

    def latest(self) -> tuple[int, int]:
        """The latest block's number and chain time (unix seconds), read together."""
        ...

    def latest_head(self) -> tuple[int, int, bytes]:
        """The latest block's number, chain time and hash, read together."""
        ...

    def events(self, from_block: int, to_block: int) -> Sequence[ProxyEvent]:
        """The events the proxy follows in [from_block, to_block], in chain order."""
        ...

    def policy_status(self, policy_id: bytes, block: int) -> GrantStatus:
        """The policy's state evaluated at ``block``."""
        ...

    def policy_scope(self, policy_id: bytes, block: int) -> bytes:
        """``Grants.scopeOf`` at ``block``: the hash of the records the grant is scoped
        to, or 32 zero bytes for a grant of its whole tag."""
        ...

    def granted_records(self, policy_id: bytes) -> Sequence[tuple[bytes, ...]]:
        """The record lists of the grant events of ``policy_id`` (its ``GrantScoped``,
        joined to ``GrantCreated`` by the binding; more than one across a reorg); the
        caller keeps the one that hashes to :meth:`policy_scope`."""
        ...

    def patient_verifying_key(self, patient: str, block: int) -> bytes:
        """The patient's registered kfrag-verifying key (33 bytes)."""
        ...

    def receiving_key(self, member: str, block: int) -> bytes:
        """A member's registered Umbral receiving key (33 bytes)."""
        ...

    def is_active_proxy(self, account: str, block: int) -> bool:
        """Whether ``account`` holds the Proxy role and is not suspended at ``block``."""
        ...

    def is_active_member(self, account: str, block: int) -> bool:
        """Whether ``account`` is a consortium member, not removed or suspended, at ``block``."""
        ...

    def block_gas_limit(self) -> int:
        """The latest block's gas limit (no transaction above it can ever be mined)."""
        ...

    def sign_audit_batch(
        self,
        policy_id: bytes,
        grantee: str,
        proxies: Sequence[str],
        items: Sequence[AccessEntry],
        nonce: int,
    ) -> SignedTransaction:
        """Sign (not send) the audit-log transaction of one policy's accesses with
        ``nonce`` and the fixed gas of :func:`audit_gas`.

        ``grantee`` and ``proxies`` are the policy's (the contract checks them against its
        binding).
        """
        ...

    @property
    def emergency_contract(self) -> str:
        """The Emergency contract (verifying contract of emergency requests)."""
        ...

    def emergency_declaration(self, declaration_id: int, block: int) -> EmergencyView:
        """The declaration's status and parties at ``block`` (status NONE if unknown)."""
        ...

    def emergency_capable(self, account: str, block: int) -> bool:
        """Whether ``account`` is an active member holding CAP_EMERGENCY at ``block``."""
        ...

    def emergency_opens_tag(self, patient: str, tag: bytes, block: int) -> bool:
        """Whether the patient's standing opt-in opens ``tag`` at ``block``."""
        ...

    def emergency_umbral_key(self, block: int) -> bytes:
        """The consortium emergency Umbral key (33 bytes; empty while not published)."""
        ...

    def sign_emergency_log(self, log: EmergencyLog, nonce: int) -> SignedTransaction:
        """Sign (not send) ``Emergency.logEmergencyAccess`` of one emergency serve with
        ``nonce`` and the fixed gas of :func:`emergency_gas` (``log.gas``)."""
        ...

    def account_nonce(self) -> int:
        """The proxy account's transaction count at the latest block."""
        ...

    def broadcast(self, raw_tx: bytes) -> None:
        """Send a signed transaction; a duplicate of a known one is not an error."""
        ...

    def receipt_block(self, tx_hash: bytes) -> int | None:
        """The block a transaction was mined in (status 1), or None if not (yet) mined."""
        ...
