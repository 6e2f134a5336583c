"""The chain watcher: follows grants, revocations, emergency opt-ins and index entries from
a persisted cursor.

Each step reads the events of a block range that is ``confirmations`` blocks behind the
head, opens this proxy's kfrags of new grants, and applies everything together with the
new cursor in one SQLite transaction. A crash before the commit leaves the cursor where
it was, so the range is read again; a crash after it never reads the range twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from emrshare.errors import ChainError, ContractRevert, CryptoError, EmrShareError, WireFormatError
from emrshare.proxy.chainview import (
    EmergencyPolicyCreated,
    EmergencyPolicyWithdrawn,
    GrantCreated,
    GrantRevokedEvent,
    IndexedCapsule,
    ProxyChain,
    ProxyEvent,
    TagRevoked,
)
from emrshare.proxy.node.emergency_store import (
    EmergencyPolicyRecord,
    EmergencyScope,
    emergency_policy_id,
)
from emrshare.proxy.node.service import KfragOpener, ProxyService
from emrshare.proxy.node.store import EntryRecord, PolicyRecord, ProxyStore, StoredKfrag

__all__ = ["ChainWatcher"]

log = logging.getLogger("emrshare.proxy.watcher")


class ChainWatcher:
    """Applies chain events to the proxy store; :meth:`step` is one idempotent increment."""

    def __init__(
        self,
        chain: ProxyChain,
        store: ProxyStore,
        service: ProxyService,
        open_kfrag: KfragOpener,
        *,
        start_block: int,
        confirmations: int = 0,
        max_range: int = 2000,
    ) -> None:
        self.chain = chain
        self.store = store
        self.service = service
        self.open_kfrag = open_kfrag
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.last_error: str | None = None
        #: Reorgs detected (each rolled back and re-applied).
        self.reorgs = 0

    def step(self) -> int:
        """Apply the next range of confirmed blocks; returns how many blocks it covered.

        First checks that the block the cursor stands at is still on the chain; if a
        reorg replaced it, rolls back to the newest remembered block the chain still has
        (:meth:`ProxyStore.rollback`) and returns 1, so the next step re-applies from there.
        """
        cursor = self.store.cursor()
        if cursor is not None and self._rolled_back():
            return 1
        head = self.chain.head()
        safe = head - self.confirmations
        start = self.start_block if cursor is None else cursor + 1
        if start > safe:
            return 0
        end = min(safe, start + self.max_range - 1)
        end_hash = self.chain.block_hash(end)
        events = self.chain.events(start, end)
        # Events and hashes are separate reads: if the chain moved under them, read again.
        if end_hash is None or self.chain.block_hash(end) != end_hash or not self._on_chain():
            return 0
        kfrags = self._open_kfrags(events)
        emergency = self._open_emergency(events)
        revoked: list[bytes] = []
        with self.store.transaction() as tx:
            for ev in events:
                if isinstance(ev, GrantCreated):
                    self.store.put_policy(
                        tx,
                        PolicyRecord(
                            policy_id=bytes(ev.policy_id),
                            patient=ev.patient,
                            grantee=ev.grantee,
                            tag=bytes(ev.tag),
                            expiry=ev.expiry,
                            threshold=ev.threshold,
                            proxies=ev.proxies,
                            created_block=ev.block_number,
                        ),
                    )
                    stored = kfrags.get(ev.policy_id)
                    if stored is not None:
                        self.store.put_kfrag(tx, ev.policy_id, stored)
                elif isinstance(ev, GrantRevokedEvent):
                    self.store.revoke_policy(tx, ev.policy_id, ev.block_number)
                    revoked.append(ev.policy_id)
                elif isinstance(ev, TagRevoked):
                    revoked += self.store.revoke_tag(tx, ev.patient, ev.tag, ev.block_number)
                elif isinstance(ev, EmergencyPolicyCreated):
                    revoked += self.store.drop_emergency_policy(tx, ev.patient, None)
                    revoked += [emergency_policy_id(ev.patient, t) for t in ev.tags]
                    record = EmergencyPolicyRecord(
                        ev.patient,
                        ev.generation,
                        ev.threshold,
                        tuple(bytes(t) for t in ev.tags),
                        ev.proxies,
                        ev.block_number,
                    )
                    self.store.put_emergency_policy(tx, record)
                    opened = emergency.get((ev.patient.lower(), ev.generation), {})
                    for tag, stored in opened.items():
                        self.store.put_kfrag(tx, emergency_policy_id(ev.patient, tag), stored)
                elif isinstance(ev, EmergencyPolicyWithdrawn):
                    revoked += self.store.drop_emergency_policy(tx, ev.patient, ev.generation)
                elif isinstance(ev, IndexedCapsule):
                    self.store.put_entry(
                        tx,
                        EntryRecord(
                            ev.capsule_hash, ev.patient, ev.tag, ev.record_id, ev.block_number
                        ),
                    )
            self.store.set_cursor(tx, end)
            self.store.record_block(tx, end, end_hash)
        for pid in revoked:
            self.service.forget(pid)
        # Nonces whose deadline passed are refused by the deadline check anyway.
        self.store.prune_nonces(self.chain.latest()[1])
        if events:
            log.info("applied %d events from blocks %d..%d", len(events), start, end)
        return end - start + 1

    def _on_chain(self) -> bool:
        """Whether the newest remembered block is still on the node's chain."""
        recent = self.store.recent_blocks()
        return not recent or self.chain.block_hash(recent[0][0]) == recent[0][1]

    def _rolled_back(self) -> bool:
        """Detect a reorg below the cursor and undo what orphaned blocks brought."""
        recent = self.store.recent_blocks()
        if not recent or self.chain.block_hash(recent[0][0]) == recent[0][1]:
            return False
        fork: int | None = None
        for number, block_hash in recent[1:]:
            if self.chain.block_hash(number) == block_hash:
                fork = number
                break
        if fork is None:
            oldest = recent[-1][0]
            if oldest <= self.start_block:
                fork = self.start_block - 1  # everything remembered was orphaned
            else:
                raise ChainError(
                    f"the chain reorganised below block {oldest}, deeper than the "
                    f"{len(recent)} blocks this proxy remembers; start it with a fresh "
                    "data dir to follow the deployment again"
                )
        undone = self.store.rollback(fork)
        for pid in undone.dropped_policies + undone.unrevoked_policies:
            self.service.forget(pid)
        self.reorgs += 1
        log.warning(
            "reorg: rolled back to block %d (%d grants, %d entries dropped, %d revocations "
            "undone, %d audit batches to re-check)",
            fork,
            len(undone.dropped_policies),
            undone.dropped_entries,
            len(undone.unrevoked_policies),
            undone.unmined_batches,
        )
        return True

    def _open_kfrags(self, events: Sequence[ProxyEvent]) -> dict[bytes, StoredKfrag]:
        me = self.chain.proxy_address.lower()
        out: dict[bytes, StoredKfrag] = {}
        for ev in events:
            if not isinstance(ev, GrantCreated):
                continue
            mine = [i for i, p in enumerate(ev.proxies) if p.lower() == me]
            if not mine or mine[0] >= len(ev.sealed_kfrags):
                continue
            try:
                verifying_pk = self.chain.patient_verifying_key(ev.patient, ev.block_number)
                receiving_pk = self.chain.receiving_key(ev.grantee, ev.block_number)
                out[ev.policy_id] = self.open_kfrag(
                    ev.sealed_kfrags[mine[0]], ev, verifying_pk, receiving_pk
                )
            except (CryptoError, WireFormatError, ContractRevert) as exc:
                # A kfrag that does not verify (or a patient/grantee without registered
                # keys) is never stored: this proxy refuses the policy (kfrag_unavailable)
                # and the operator sees it in the log. Any other chain error aborts the
                # step, so the range is read again: a grant is never skipped by an outage.
                log.warning("grant 0x%s: kfrag rejected: %s", ev.policy_id.hex()[:16], exc)
        return out

    def _open_emergency(
        self, events: Sequence[ProxyEvent]
    ) -> dict[tuple[str, int], dict[bytes, StoredKfrag]]:
        """This proxy's verified kfrag of each tag of each opt-in in ``events``
        (``sealed_kfrags[t * len(proxies) + p]``), towards the published emergency key."""
        me = self.chain.proxy_address.lower()
        out: dict[tuple[str, int], dict[bytes, StoredKfrag]] = {}
        for ev in events:
            if not isinstance(ev, EmergencyPolicyCreated):
                continue
            mine = [i for i, p in enumerate(ev.proxies) if p.lower() == me]
            if not mine:
                continue
            opened = out.setdefault((ev.patient.lower(), ev.generation), {})
            n = len(ev.proxies)
            try:
                verifying_pk = self.chain.patient_verifying_key(ev.patient, ev.block_number)
                receiving_pk = self.chain.emergency_umbral_key(ev.block_number)
            except ContractRevert as exc:
                log.warning("emergency opt-in of %s: keys unavailable: %s", ev.patient, exc)
                continue
            for t, tag in enumerate(ev.tags):
                index = t * n + mine[0]
                if index >= len(ev.sealed_kfrags):
                    continue
                scope = EmergencyScope.of(ev.patient, bytes(tag), self.chain.emergency_contract)
                try:
                    opened[bytes(tag)] = self.open_kfrag(
                        ev.sealed_kfrags[index], scope, verifying_pk, receiving_pk
                    )
                except (CryptoError, WireFormatError) as exc:
                    # Not stored: this proxy refuses the tag (kfrag_unavailable).
                    log.warning(
                        "emergency opt-in of %s, tag %d: kfrag rejected: %s", ev.patient, t, exc
                    )
        return out

    async def run(self, poll_interval: float, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set; chain faults are logged and retried."""
        while not stop.is_set():
            try:
                covered = await asyncio.to_thread(self.step)
                self.last_error = None
            except EmrShareError as exc:
                self.last_error = str(exc)
                log.warning("chain watcher: %s", exc)
                covered = 0
            if covered == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)
