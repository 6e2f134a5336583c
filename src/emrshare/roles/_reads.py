"""The verified read path shared by ``Patient``, ``Provider`` and ``Requester``.

Every read checks the whole chain of trust: the patient's index events form the hash
chain the contract commits to (:func:`verified_entries`), the opened entry is the one its
event names and its author was an active Provider then (:func:`check_entry`), and the
blob matches its CID, its AEAD and the entry's plaintext hash (``_blob_io``).
:class:`GrantedReader` adds the grantee's side: grants followed from the chain and
capsule fragments from M-of-N proxies, awaited on the async threshold client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import umbral_pre

from emrshare._ids import resolve_id
from emrshare.chain import (
    ZERO_HEAD,
    ConsortiumRegistry,
    EntryAppended,
    GrantCreated,
    GrantStatus,
    RecordIndex,
    Role,
    verify_chain,
)
from emrshare.crypto import (
    GranteeMap,
    IndexEntry,
    MemberKeys,
    SealedEntry,
    open_entry_as_grantee,
    open_grantee_map,
)
from emrshare.errors import (
    AccessDenied,
    EmrShareError,
    GrantExpired,
    GrantRevoked,
    IndexIntegrityError,
    RecordNotFound,
    Unavailable,
    VerificationError,
)
from emrshare.network import Network
from emrshare.proxy import (
    Evidence,
    ProxyEndpoint,
    ThresholdClient,
    ThresholdPolicy,
    ThresholdResult,
)
from emrshare.roles._common import checksum
from emrshare.roles._reports import keep_evidence
from emrshare.roles._scope import covers, names_entry
from emrshare.types import Address, RecordId

__all__ = [
    "GrantedReader",
    "MembershipCache",
    "Runner",
    "check_entry",
    "verified_entries",
    "inline",
]

log = logging.getLogger("emrshare.roles")


class MembershipCache:
    """Whether an account was an active Provider member at a block, read from the
    registry at that block and cached per (account, block)."""

    def __init__(self, registry: ConsortiumRegistry) -> None:
        self.registry = registry
        self._known: dict[tuple[str, int], bool] = {}

    def provider_at(self, account: str, block: int) -> bool:
        key = (checksum(account), block)
        if key not in self._known:
            self._known[key] = self.registry.has_role(key[0], Role.PROVIDER, block=block)
        return self._known[key]


def check_entry(
    entry: IndexEntry,
    event: EntryAppended,
    patient: str,
    epoch: int,
    members: MembershipCache,
) -> IndexEntry:
    """An opened entry must be the one the chain event says it is (record id, author, the
    epoch its tag stands for; a 1.2 entry takes them from the event, and its signature
    covers them), signed by its author, and the author must be the patient or an active
    Provider member at the block the entry was appended in. A member suspended or removed
    later keeps its earlier records valid; a record appended while it was not an active
    Provider is refused (the contract refuses such appends too; a reader does not rely on it).
    """
    same_author = checksum(entry.author) == checksum(event.author)
    if bytes(entry.record_id) != bytes(event.record_id) or entry.epoch != epoch or not same_author:
        raise VerificationError(
            f"index entry 0x{bytes(event.record_id).hex()} does not match its chain event "
            "(record id, epoch or author differ); do not trust this record"
        )
    entry.verify_author(checksum(patient))
    author = checksum(entry.author)
    if author != checksum(patient) and not members.provider_at(author, event.block_number):
        raise VerificationError(
            f"record 0x{bytes(event.record_id).hex()} was written by {author}, which was not "
            f"an active Provider member at block {event.block_number}; do not trust this record"
        )
    return entry


def verified_entries(
    index: RecordIndex,
    patient: str,
    block: int,
    *,
    after: tuple[bytes, int, int] | None = None,
) -> tuple[list[EntryAppended], tuple[bytes, int, int]]:
    """The patient's index entries up to ``block``, checked to be the whole chain.

    ``after`` is ``(head, count, last_block)`` of entries already verified (an incremental
    refresh reads only the blocks after ``last_block``). The events must extend the hash
    chain, and the resulting head **and** count must equal the contract's at ``block``:
    a node that drops, reorders or forges events (also the last ones) is caught.
    Returns the new entries and the new ``(head, count, block)``. Raises
    :class:`IndexIntegrityError`.
    """
    head, count, last = after if after is not None else (ZERO_HEAD, 0, index.start_block - 1)
    if block <= last:
        return [], (head, count, last)
    new = list(index.entries(patient, from_block=last + 1, to_block=block))
    head, n = verify_chain(new, head=head)
    count += n
    chain = index.head(patient, block=block)
    if chain.count != count or bytes(chain.head) != head:
        raise IndexIntegrityError(
            f"the index events of patient {checksum(patient)} up to block {block} do not "
            f"match the chain's head ({count} events read, {chain.count} on chain): a node "
            "withheld or altered events; query another node"
        )
    return new, (head, count, block)


T = TypeVar("T")


class Runner(Protocol):
    """How a read runs its blocking steps (chain and store calls): inline for the sync
    facades, on the facade's worker thread for the async ones."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def inline(fn: Callable[[], T]) -> T:
    """The :class:`Runner` of the sync facades: the blocking step runs right here."""
    return fn()


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a grantee's read asks the proxies, resolved from the chain."""

    patient: Address
    event: EntryAppended
    grant: GrantCreated
    grantee_map: GranteeMap
    policy: ThresholdPolicy
    sealed: SealedEntry
    chain_deadline: int


class GrantedReader:
    """A member's reads of what patients granted it: grants followed incrementally from
    the chain, each patient's whole index verified, capsule fragments from the proxies.

    The proxy round trip is awaited (:meth:`open`); the chain and store steps around it
    run through the caller's :class:`Runner`.
    """

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        state_dir: Path,
        members: MembershipCache,
        *,
        proxy_timeout: float,
        retry_for: float,
    ) -> None:
        self.network = network
        self.keys = keys
        self.address = keys.address
        self.state_dir = state_dir
        self.members = members
        self.proxy_timeout = proxy_timeout
        self.retry_for = retry_for
        self._maps: dict[bytes, GranteeMap] = {}
        self._grants_seen: list[tuple[GrantCreated, GranteeMap]] = []
        self._grants_scanned = network.contracts.grants.start_block
        self._entries: dict[str, dict[bytes, EntryAppended]] = {}
        self._verified: dict[str, tuple[bytes, int, int]] = {}
        self._endpoints: dict[str, str] = {}
        self._tls: ssl.SSLContext | None = None
        # Chain state read at one block (grant status, proxies' roles) is asked once per
        # block: reads between two blocks cost one header read, not one call per check.
        self._memo_block = -1
        self._memo: dict[tuple[str, bytes | str], Any] = {}
        #: Evidence files written by the last read (a proxy signed a bad cfrag).
        self.last_evidence: list[Path] = []

    # -- the chain at one block -----------------------------------------------------------

    def at(self) -> tuple[int, int]:
        """The block a read is planned at (the newest confirmed one) and the chain time
        (the latest block's timestamp, which proxies judge deadlines by), from one read."""
        chain = self.network.chain
        latest, now = chain.latest_header()
        return latest - (chain.confirmations - 1), now

    def _once_per_block(self, block: int, key: tuple[str, bytes | str], read: Callable[[], T]) -> T:
        if block != self._memo_block:
            self._memo_block, self._memo = block, {}
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]  # type: ignore[no-any-return]

    def status(self, grant: GrantCreated, block: int) -> GrantStatus:
        """The grant's status at ``block`` (asked once per block)."""
        pid = grant.policy_id
        grants = self.network.contracts.grants
        return self._once_per_block(
            block, ("status", bytes(pid)), lambda: grants.status(pid, block=block)
        )

    def _is_proxy(self, account: str, block: int) -> bool:
        registry = self.network.contracts.registry
        return self._once_per_block(
            block, ("proxy", account), lambda: registry.has_role(account, Role.PROXY, block=block)
        )

    # -- grants and entries --------------------------------------------------------------

    def _open_map(self, ev: GrantCreated) -> GranteeMap:
        key = bytes(ev.policy_id)
        if key not in self._maps:
            profile = self.network.contracts.profiles.profile(ev.patient)
            self._maps[key] = open_grantee_map(
                bytes(ev.sealed_grantee_map),
                self.keys,
                patient_verifying_key=umbral_pre.PublicKey.from_compressed_bytes(
                    bytes(profile.verifying_key)
                ),
            )
        return self._maps[key]

    def grant_events(
        self, patient: str | None, block: int | None = None
    ) -> list[tuple[GrantCreated, GranteeMap]]:
        """Grants to this member (by ``patient``) that it can open, oldest first, up to
        ``block`` (default: the newest confirmed)."""
        # Followed incrementally: a read costs no full event scan.
        grants = self.network.contracts.grants
        end = self.network.chain.safe_block() if block is None else block
        if end >= self._grants_scanned:
            for ev in grants.events(
                GrantCreated, from_block=self._grants_scanned, to_block=end, grantee=self.address
            ):
                try:
                    self._grants_seen.append((ev, self._open_map(ev)))
                except EmrShareError:
                    continue  # not a grant this member can use (forged or not for us)
            self._grants_scanned = end + 1
        if patient is None:
            return list(self._grants_seen)
        patient = checksum(patient)
        return [(ev, m) for ev, m in self._grants_seen if checksum(ev.patient) == patient]

    def patient_chain(self, patient: str, block: int | None = None) -> dict[bytes, EntryAppended]:
        """The patient's whole index up to ``block`` (default: the newest confirmed one),
        verified.

        A grantee reads one category, but it verifies the patient's whole hash chain (a
        node cannot withhold entries, also not the newest): the events read since the last
        call extend the verified head, and the head and count must equal the contract's
        at that block (:class:`IndexIntegrityError` otherwise). Kept in order, by record id.
        """
        seen = self._entries.setdefault(patient, {})
        new, self._verified[patient] = verified_entries(
            self.network.contracts.index,
            patient,
            self.network.chain.safe_block() if block is None else block,
            after=self._verified.get(patient),
        )
        for ev in new:
            seen[bytes(ev.record_id)] = ev
        return seen

    def entry_event(
        self, patient: Address, record: RecordId | bytes | str, block: int | None = None
    ) -> EntryAppended:
        """The index event of ``record``: a full id, or a unique prefix of 8 or more hex
        digits among the records of ``patient`` this member holds a grant for."""
        block = self.network.chain.safe_block() if block is None else block

        def listed() -> list[bytes]:  # what this member can list: what its grants name
            named = names_entry(g for g, _ in self.grant_events(patient, block))
            return [rid for rid, ev in self.patient_chain(patient, block).items() if named(ev)]

        where = f"among the records {patient} granted to {self.address}"
        rid = resolve_id(record, listed, where=where)
        seen = self.patient_chain(patient, block)
        if rid not in seen:
            raise RecordNotFound(
                "0x" + rid.hex(), f"no record 0x{rid.hex()} in the index of patient {patient}"
            )
        return seen[rid]

    # -- the proxy round trip --------------------------------------------------------------

    def _transport(self) -> httpx.AsyncBaseTransport:
        # A fresh transport per read (a sync read runs its own event loop) but one TLS
        # context: building it loads the CA bundle, ~50 ms, more than the read itself.
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return httpx.AsyncHTTPTransport(verify=self._tls)

    def _endpoint(self, proxy: str) -> str:
        if proxy not in self._endpoints:
            self._endpoints[proxy] = self.network.contracts.registry.member(proxy).endpoint
        return self._endpoints[proxy]

    def plan(self, patient: str, record: RecordId | bytes | str) -> _Plan:
        """Resolve a read from the chain: the entry, the grant covering it, the proxies."""
        who = checksum(patient)
        block, now = self.at()
        ev = self.entry_event(who, record, block)
        grants, rid = self.grant_events(who, block), bytes(ev.record_id)
        candidates = [(g, m) for g, m in grants if g.tag == ev.tag and covers(g, rid)]
        if not candidates:
            raise AccessDenied(
                f"no grant covers record 0x{bytes(ev.record_id).hex()} (neither it nor its "
                f"category was granted to {self.address}); request access from the patient",
                {"chain": "no_grant"},
            )
        active = [(g, m) for g, m in candidates if self.status(g, block) is GrantStatus.ACTIVE]
        # With no active grant we still ask the proxies with the newest one: they are the
        # authority, and their refusal carries the reason (revoked, expired).
        grant, gmap = (active or candidates)[-1]
        # One chain deadline for the whole read: every retry sends each proxy the same
        # signed request (same nonce), which it answers again without logging twice.
        deadline = now + 300
        sealed = SealedEntry.from_bytes(bytes(ev.entry))
        return _Plan(who, ev, grant, gmap, self.policy(grant, gmap, block), sealed, deadline)

    def policy(self, grant: GrantCreated, gmap: GranteeMap, block: int) -> ThresholdPolicy:
        """The proxies to ask for ``grant``: only active Proxy members at ``block`` count
        (a suspended or removed proxy is not asked, so its cfrags cannot make up the
        threshold)."""
        endpoints = [
            ProxyEndpoint(p, self._endpoint(p)) for p in grant.proxies if self._is_proxy(p, block)
        ]
        return ThresholdPolicy.from_grantee_map(
            gmap, endpoints, self.keys.receiving_public_key.to_compressed_bytes()
        )

    def client(self) -> ThresholdClient:
        """A threshold client for one read (or one batched listing)."""
        return ThresholdClient(
            self.keys.ethereum_key,
            chain_id=self.network.deployment.chain_id,
            grants_contract=self.network.deployment.address_of("Grants"),
            timeout=self.proxy_timeout,
            transport=self.network.proxy_transport or self._transport(),
        )

    async def open(self, patient: str, record: RecordId | bytes | str, run: Runner) -> IndexEntry:
        """One granted record's index entry, opened with M-of-N proxies' cfrags and
        verified; the blocking steps run through ``run``."""
        plan = await run(lambda: self.plan(patient, record))
        client = self.client()
        async with client:
            try:
                result = await self._reencrypt(client, plan)
            except (AccessDenied, Unavailable) as exc:
                refused = functools.partial(self._refused, exc, client.evidence, plan)
                raise await run(refused) from exc
        return await run(lambda: self._finish(plan, result, client.evidence))

    async def _reencrypt(self, client: ThresholdClient, plan: _Plan) -> ThresholdResult:
        return await self.reencrypt(client, plan.policy, [plan.sealed], plan.chain_deadline)

    async def reencrypt(
        self,
        client: ThresholdClient,
        policy: ThresholdPolicy,
        sealed: Sequence[SealedEntry],
        chain_deadline: int,
    ) -> ThresholdResult:
        """Capsule fragments for ``sealed`` (one request per proxy). "Not now" answers (a
        proxy has not seen a fresh grant yet, or is down) are retried for a short while;
        refusals ("no") are not."""
        deadline = time.monotonic() + self.retry_for
        capsules = [s.capsule for s in sealed]
        while True:
            try:
                return await client.reencrypt(policy, capsules, deadline=chain_deadline)
            except Unavailable:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    def _refused(
        self, exc: AccessDenied | Unavailable, evidence: Sequence[Evidence], plan: _Plan
    ) -> Exception:
        """The error to raise for a refused or unanswered read: evidence written and named,
        and a refusal typed by the grant's status on chain."""
        self.last_evidence = keep_evidence(self.state_dir, evidence)
        if self.last_evidence:
            named = ", ".join(str(p) for p in self.last_evidence)
            exc.args = (
                f"{exc}; a proxy signed a bad capsule fragment: evidence written to {named} "
                "(report it to the consortium)",
            )
        if isinstance(exc, AccessDenied):
            st = self.network.contracts.grants.status(plan.grant.policy_id)
            if st is GrantStatus.REVOKED and not isinstance(exc, GrantRevoked):
                return GrantRevoked(str(exc), exc.reasons)
            if st is GrantStatus.EXPIRED and not isinstance(exc, GrantExpired):
                return GrantExpired(str(exc), exc.reasons)
        return exc

    def _finish(
        self, plan: _Plan, result: ThresholdResult, evidence: Sequence[Evidence]
    ) -> IndexEntry:
        self.last_evidence = keep_evidence(self.state_dir, evidence)
        for path in self.last_evidence:
            log.warning("a proxy signed a bad capsule fragment; evidence written to %s", path)
        entry = open_entry_as_grantee(
            plan.sealed, self.keys, plan.grantee_map, result.cfrags[0], origin=plan.event
        )
        return check_entry(entry, plan.event, plan.patient, plan.grantee_map.epoch, self.members)
