"""The audit flusher: logs journaled serves on chain, batched, exactly once.

Every serve is journaled (SQLite, fsync'd) before its response leaves. The flusher groups
unlogged journal entries into a batch every ``interval`` seconds or as soon as
``max_entries`` are waiting, signs the audit-log transaction, stores the *signed* bytes
and their nonce together with the batch, and only then broadcasts. After a crash the
stored transaction is broadcast again: the same nonce and hash can be mined at most once,
so each entry reaches the chain exactly once. A batch whose transaction failed on chain
goes back to the journal and is logged again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from emrshare.errors import EmrShareError
from emrshare.proxy.chainview import AuditItem, ProxyChain
from emrshare.proxy.store import JournalEntry, ProxyStore

__all__ = ["AuditFlusher"]

log = logging.getLogger("emrshare.proxy.audit")


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

        Returns how many batches are still waiting to be mined.
        """
        waiting = 0
        self._recheck_mined()
        pending = self.store.pending_batches()
        if not pending:
            return 0
        account_nonce = self.chain.account_nonce()
        for batch in pending:
            status = self.chain.receipt_block(batch.tx_hash)
            if status is not None:
                self.store.batch_mined(batch.id, status)
                self._broadcast_at.pop(batch.id, None)
            elif batch.sender_nonce < account_nonce:
                # The nonce was spent by a transaction that is not ours-and-successful
                # (a revert, or a replacement): the entries are not on chain; log them again.
                log.warning("audit batch %d was not mined successfully; re-queued", batch.id)
                self.store.drop_batch(batch.id)
            else:
                # Not mined yet: broadcast again now and then (it may have been dropped
                # from the pool, or sent by a process that crashed before it could).
                now = time.monotonic()
                if now - self._broadcast_at.get(batch.id, -1e9) >= self.rebroadcast_after:
                    self.chain.broadcast(batch.raw_tx)
                    self._broadcast_at[batch.id] = now
                waiting += 1
        return waiting

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

        The audit contract logs one policy per transaction, so the entries become one
        batch (one transaction, one nonce) per policy. Returns how many were batched.
        """
        self.settle()
        entries = self.store.unbatched(self.max_entries)
        if not entries:
            return 0
        by_policy: dict[bytes, list[JournalEntry]] = {}
        for e in entries:
            by_policy.setdefault(e.policy_id, []).append(e)
        pending = self.store.pending_batches()
        nonce = max([self.chain.account_nonce()] + [b.sender_nonce + 1 for b in pending])
        for pid, group in by_policy.items():
            policy = self.store.policy(pid)
            if policy is None:  # cannot happen: the serve needed the policy
                log.error("journal names unknown policy 0x%s; kept for later", pid.hex())
                continue
            items = [
                AuditItem(e.capsule_hashes, e.nonce, e.deadline, e.block, e.block_time, e.signature)
                for e in group
            ]
            raw, tx_hash = self.chain.sign_audit_batch(
                pid, policy.grantee, policy.proxies, items, nonce
            )
            batch_id = self.store.add_batch([e.id for e in group], raw, tx_hash, nonce)
            self.chain.broadcast(raw)
            self._broadcast_at[batch_id] = time.monotonic()
            nonce += 1
        self._last_flush = time.monotonic()
        return len(entries)

    def due(self) -> bool:
        """True when a flush should run now (K entries waiting, or T seconds passed)."""
        count = self.store.unbatched_count()
        if count >= self.max_entries:
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
