"""The audit flusher: logs journaled serves on chain, batched, exactly once.

Every serve is journaled (SQLite, fsync'd) before its response leaves. The flusher groups
unlogged journal entries into a batch every ``interval`` seconds or as soon as
``max_entries`` are waiting, signs the audit-log transaction, stores the *signed* bytes
and their nonce together with the batch, and only then broadcasts. After a crash the
stored transaction is broadcast again: the same nonce and hash can be mined at most once,
so each entry reaches the chain exactly once. A batch whose transaction failed on chain
goes back to the journal and is logged again, and so does one the node rejects as never
minable; batches are cut so each one's gas stays within half the block gas limit.

An emergency serve (issue 15) is its own batch: one ``Emergency.logEmergencyAccess``
transaction per served request, sent at the next tick (not after ``interval``), dated with
the chain time of the block the serve was judged at. The contract accepts a log dated
inside the declaration's active span even after the declaration ended or expired, so the
declaring clinician cannot keep a serve off chain by ending its declaration at once. Only
a serve whose patient withdrew or replaced the opt-in before its log was sent can no
longer be logged; it stays in the journal, marked, and is reported in the proxy's log
(docs/threat-model.md says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence

from emrshare.chain import AccessEntry, EmergencyStatus, SignedTransaction
from emrshare.errors import EmrShareError, TransactionFailed
from emrshare.proxy.chainview import EmergencyLog, ProxyChain, audit_gas
from emrshare.proxy.node.store import JournalEntry, PendingBatch, ProxyStore

__all__ = ["AuditFlusher", "split_by_gas"]

log = logging.getLogger("emrshare.proxy.audit")

#: Declarations under which a serve judged while they were active can still be logged.
_LOGGABLE = (EmergencyStatus.ACTIVE, EmergencyStatus.ENDED, EmergencyStatus.EXPIRED)

#: What a node says of a transaction that no block can ever hold.
_NEVER_MINABLE = ("intrinsic gas too high", "exceeds block gas limit", "gas limit reached")


def _never_minable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in _NEVER_MINABLE)


def _item(e: JournalEntry) -> AccessEntry:
    return AccessEntry(e.capsule_hashes, e.nonce, e.deadline, e.block, e.block_time, e.signature)


def _free_nonces(start: int, taken: set[int]) -> Iterator[int]:
    n = start
    while True:
        if n not in taken:
            yield n
        n += 1


def split_by_gas(entries: Sequence[JournalEntry], budget: int) -> list[list[JournalEntry]]:
    """``entries`` in order, cut into batches whose :func:`audit_gas` stays within
    ``budget`` (an entry too large on its own still gets a batch of its own)."""
    base = audit_gas([])
    out: list[list[JournalEntry]] = []
    current: list[JournalEntry] = []
    gas = base
    for e in entries:
        cost = audit_gas([_item(e)]) - base
        if current and gas + cost > budget:
            out.append(current)
            current, gas = [], base
        current.append(e)
        gas += cost
    if current:
        out.append(current)
    return out


class AuditFlusher:
    """Moves the journal to the chain's audit log."""

    def __init__(
        self,
        chain: ProxyChain,
        store: ProxyStore,
        *,
        interval: float = 2.0,
        max_entries: int = 64,
    ) -> None:
        self.chain = chain
        self.store = store
        self.interval = interval
        self.max_entries = max_entries
        self.last_error: str | None = None
        self.rebroadcast_after = 5.0
        self._last_flush = time.monotonic()
        self._broadcast_at: dict[int, float] = {}

    def settle(self) -> int:
        """Check broadcast batches: mark mined ones, rebroadcast or re-queue the rest.

        One batch's failure never keeps the others from being handled: a batch the node
        rejects as never minable (over the block gas limit) is dropped and its entries go
        back to the journal, where the next flush splits them. Returns how many batches
        are still waiting to be mined.
        """
        waiting = 0
        self._recheck_mined()
        pending = self.store.pending_batches()
        if not pending:
            return 0
        account_nonce = self.chain.account_nonce()
        failure: EmrShareError | None = None
        for batch in pending:
            try:
                waiting += self._settle_one(batch, account_nonce)
            except EmrShareError as exc:
                log.warning("audit batch %d: %s", batch.id, exc)
                failure = exc
                waiting += 1
        if failure is not None:
            self.last_error = str(failure)
        return waiting

    def _settle_one(self, batch: PendingBatch, account_nonce: int) -> int:
        """Handle one pending batch; 1 if it is still waiting to be mined, else 0."""
        status = self.chain.receipt_block(batch.tx_hash)
        if status is not None:
            self.store.batch_mined(batch.id, status)
            self._broadcast_at.pop(batch.id, None)
            return 0
        if batch.sender_nonce < account_nonce:
            # The nonce was spent by a transaction that is not ours-and-successful
            # (a revert, or a replacement): the entries are not on chain; log them again.
            log.warning("audit batch %d was not mined successfully; re-queued", batch.id)
            self._drop(batch.id)
            return 0
        # Not mined yet: broadcast again now and then (it may have been dropped from the
        # pool, or sent by a process that crashed before it could).
        now = time.monotonic()
        if now - self._broadcast_at.get(batch.id, -1e9) >= self.rebroadcast_after:
            try:
                self.chain.broadcast(batch.raw_tx)
            except TransactionFailed as exc:
                if not _never_minable(exc):
                    raise
                log.warning("audit batch %d can never be mined (%s); re-queued", batch.id, exc)
                self._drop(batch.id)
                return 0
            self._broadcast_at[batch.id] = now
        return 1

    def _drop(self, batch_id: int) -> None:
        self.store.drop_batch(batch_id)
        self._broadcast_at.pop(batch_id, None)

    def _recheck_mined(self) -> None:
        """A batch mined in a block the watcher has not hash-checked yet may be orphaned
        by a reorg: its receipt is gone (pending again: rebroadcast, or re-queued once its
        nonce is spent otherwise) or in another block. Behind the cursor, the watcher's
        rollback un-marks batches of orphaned blocks."""
        cursor = self.store.cursor()
        for batch_id, tx_hash, mined in self.store.mined_batches_after(cursor or 0):
            now = self.chain.receipt_block(tx_hash)
            if now is None:
                log.warning("audit batch %d: block %d was orphaned; sent again", batch_id, mined)
                self.store.batch_unmined(batch_id)
                self._broadcast_at.pop(batch_id, None)
            elif now != mined:
                self.store.batch_mined(batch_id, now)

    def unsettled(self) -> bool:
        """Batches waiting to be mined, or mined in blocks a reorg may still orphan."""
        cursor = self.store.cursor()
        return bool(self.store.pending_batches() or self.store.mined_batches_after(cursor or 0))

    def flush_once(self) -> int:
        """Settle earlier batches, then log up to ``max_entries`` new entries.

        The audit contract logs one policy per transaction, so the entries become at
        least one batch (one transaction, one nonce) per policy, each batch's gas at most
        half the block gas limit. A batch the node rejects goes back to the journal.
        Returns how many entries were batched and sent.
        """
        self.settle()
        entries = self.store.unbatched(self.max_entries)
        if not entries:
            return 0
        by_policy: dict[bytes, list[JournalEntry]] = {}
        emergency: list[JournalEntry] = []
        for e in entries:
            if e.declaration_id is not None:
                emergency.append(e)
            else:
                by_policy.setdefault(e.policy_id, []).append(e)
        budget = self.chain.block_gas_limit() // 2
        pending = self.store.pending_batches()
        # The lowest nonces no pending batch holds: a dropped batch's nonce is reused, so
        # no gap ever stalls the later batches in the pool.
        taken = {b.sender_nonce for b in pending}
        free = _free_nonces(self.chain.account_nonce(), taken)
        sent = 0
        parts: list[tuple[list[JournalEntry], Callable[[int], SignedTransaction]]] = [
            ([e], functools.partial(self._sign_emergency, e)) for e in self._loggable(emergency)
        ]
        for pid, group in by_policy.items():
            policy = self.store.policy(pid)
            if policy is None:  # cannot happen: the serve needed the policy
                log.error("journal names unknown policy 0x%s; kept for later", pid.hex())
                continue
            for part in split_by_gas(group, budget):
                items = [_item(e) for e in part]
                sign: Callable[[int], SignedTransaction] = functools.partial(
                    self.chain.sign_audit_batch, pid, policy.grantee, policy.proxies, items
                )
                parts.append((part, sign))
        for part, sign in parts:
            nonce = next(free)
            signed = sign(nonce)
            # Stored before it is broadcast: a crash in between is finished by settle().
            batch_id = self.store.add_batch(
                [e.id for e in part], signed.raw, signed.tx_hash, signed.nonce
            )
            try:
                self.chain.broadcast(signed.raw)
            except TransactionFailed as exc:
                # Rejected on first sight: never in the pool, so never mined.
                log.warning("audit batch %d rejected (%s); re-queued", batch_id, exc)
                self._drop(batch_id)
                self.last_error = str(exc)
                free = _free_nonces(nonce, taken)  # the nonce is free again
                continue
            self._broadcast_at[batch_id] = time.monotonic()
            sent += len(part)
        self._last_flush = time.monotonic()
        return sent

    def _sign_emergency(self, e: JournalEntry, nonce: int) -> SignedTransaction:
        assert e.declaration_id is not None
        log = EmergencyLog(e.declaration_id, e.proxies, e.tag, e.capsule_hashes, e.block_time)
        return self.chain.sign_emergency_log(log, nonce)

    def _loggable(self, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
        """The emergency serves the contract can still log: their declaration exists and
        its opt-in stands (ended or expired since is fine, the log is dated at the serve).
        The others are marked in the journal and reported."""
        if not entries:
            return []
        block = self.chain.head()
        out: list[JournalEntry] = []
        for e in entries:
            assert e.declaration_id is not None
            view = self.chain.emergency_declaration(e.declaration_id, block)
            status = view.status
            # An ended declaration reads Ended even once its opt-in is withdrawn or
            # replaced (which the contract refuses to log under): ask the followed opt-in.
            policy = self.store.emergency_policy(view.patient) if view.patient else None
            if status in _LOGGABLE and policy is not None and policy.generation == view.generation:
                out.append(e)
                continue
            if status is EmergencyStatus.ENDED:
                status = EmergencyStatus.WITHDRAWN
            log.error(
                "emergency serve %d under declaration %d cannot be logged on chain: the "
                "declaration is %s; it stays in this proxy's journal",
                e.id,
                e.declaration_id,
                status.name.lower(),
            )
            self.store.abandon([e.id])
        return out

    def due(self) -> bool:
        """True when a flush should run now (K entries waiting, an emergency serve
        waiting, or T seconds passed)."""
        count = self.store.unbatched_count()
        if count >= self.max_entries or (count and self.store.unbatched_emergency()):
            return True
        return count > 0 and time.monotonic() - self._last_flush >= self.interval

    def drain(self, timeout: float = 30.0) -> bool:
        """Flush everything and wait until every batch is mined (used at shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                while self.flush_once():
                    pass
                if self.settle() == 0 and self.store.unbatched_count() == 0:
                    return True
            except EmrShareError as exc:
                self.last_error = str(exc)
                log.warning("audit drain: %s", exc)
            time.sleep(0.2)
        return False

    async def run(self, stop: asyncio.Event, tick: float = 0.2) -> None:
        """Flush when due until ``stop`` is set."""
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.due):
                    await asyncio.to_thread(self.flush_once)
                elif await asyncio.to_thread(self.unsettled):
                    await asyncio.to_thread(self.settle)
                self.last_error = None
            except EmrShareError as exc:
                self.last_error = str(exc)
                log.warning("audit flusher: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
