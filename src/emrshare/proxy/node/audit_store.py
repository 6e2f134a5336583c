"""The audit journal's tables: served requests and the signed audit transactions that
log them (stored before they are broadcast, so each serve is logged exactly once)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

__all__ = ["AuditQueries", "JournalEntry", "PendingBatch", "Serve"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One served request, journaled before its response left (see :class:`Serve`)."""

    id: int
    policy_id: bytes
    requester: str
    record_ids: tuple[bytes, ...]
    block: int
    capsule_hashes: tuple[bytes, ...] = ()
    nonce: int = 0
    deadline: int = 0
    signature: bytes = field(default=b"", repr=False)
    block_time: int = 0
    #: An emergency serve's declaration, tag and opt-in proxies (None, b"", () for a grant's).
    declaration_id: int | None = None
    tag: bytes = b""
    proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Serve:
    """A serve to journal, with the request nonce it consumes.

    ``capsule_hashes``, ``nonce``, ``deadline`` and ``signature`` are the grantee's signed
    request as served; ``block`` the block the grant was evaluated at and ``block_time``
    that block's timestamp. The audit contract checks the signature against the grantee
    (with this proxy as the request's proxy), so a serve without them cannot be logged.
    """

    policy_id: bytes
    requester: str
    record_ids: tuple[bytes, ...]
    block: int
    nonce: int | None = None
    deadline: int = 0
    capsule_hashes: tuple[bytes, ...] = ()
    signature: bytes = field(default=b"", repr=False)
    block_time: int = 0
    #: The request's EIP-712 digest: a later request with this nonce must repeat it.
    digest: bytes = b""
    #: An emergency serve (issue 15): logged by ``Emergency.logEmergencyAccess`` under this
    #: declaration, tag and opt-in proxy list instead of by the audit log.
    declaration_id: int | None = None
    tag: bytes = b""
    proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """An audit batch whose signed transaction was stored before it was broadcast."""

    id: int
    raw_tx: bytes
    tx_hash: bytes
    sender_nonce: int
    entry_ids: tuple[int, ...]


class AuditQueries:
    """The journal and batch queries of :class:`~emrshare.proxy.node.store.ProxyStore`
    (which provides the connection, its lock and :meth:`transaction`)."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:  # provided by ProxyStore

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def journal(self, serve: Serve) -> int:
        """Durably record one serve (fsync'd commit); returns its journal id."""
        self.journal_many([serve])
        with self._lock:
            return int(self._db.execute("SELECT max(id) FROM journal").fetchone()[0])

    def journal_many(self, serves: Sequence[Serve]) -> None:
        """Durably record serves and their nonces in one fsync'd commit."""
        with self.transaction() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO nonces VALUES (?, ?, ?, ?)",
                [
                    (s.requester, str(s.nonce), s.deadline, s.digest or None)
                    for s in serves
                    if s.nonce is not None
                ],
            )
            tx.executemany(
                "INSERT INTO journal (policy_id, requester, record_ids, block, capsule_hashes, "
                "nonce, deadline, signature, block_time, declaration_id, tag, proxies) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.policy_id,
                        s.requester,
                        json.dumps([r.hex() for r in s.record_ids]),
                        s.block,
                        json.dumps([h.hex() for h in s.capsule_hashes]),
                        str(s.nonce or 0),
                        s.deadline,
                        s.signature,
                        s.block_time,
                        s.declaration_id,
                        s.tag or None,
                        json.dumps(list(s.proxies)) if s.declaration_id is not None else None,
                    )
                    for s in serves
                ],
            )

    def unbatched(self, limit: int) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, policy_id, requester, record_ids, block, capsule_hashes, nonce, "
                "deadline, signature, block_time, declaration_id, tag, proxies FROM journal "
                "WHERE batch_id IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            JournalEntry(
                r[0],
                r[1],
                r[2],
                tuple(bytes.fromhex(x) for x in json.loads(r[3])),
                r[4],
                tuple(bytes.fromhex(x) for x in json.loads(r[5])),
                int(r[6]),
                r[7],
                bytes(r[8]),
                r[9],
                None if r[10] is None else int(r[10]),
                bytes(r[11] or b""),
                tuple(json.loads(r[12])) if r[12] else (),
            )
            for r in rows
        ]

    def unbatched_emergency(self) -> bool:
        """Whether an emergency serve waits to be logged (the flusher sends those at once)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM journal WHERE batch_id IS NULL AND declaration_id IS NOT NULL "
                "LIMIT 1"
            )
            return row.fetchone() is not None

    def abandon(self, entry_ids: Sequence[int]) -> None:
        """Mark journal entries as never to be logged (batch 0): an emergency serve whose
        patient withdrew or replaced the opt-in before its log was sent (the contract logs
        only under the opt-in the declaration opened). The rows stay, for the operator."""
        with self.transaction() as tx:
            tx.executemany(
                "UPDATE journal SET batch_id = 0 WHERE id = ? AND batch_id IS NULL",
                [(i,) for i in entry_ids],
            )

    def unbatched_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM journal WHERE batch_id IS NULL")
            return int(row.fetchone()[0])

    def add_batch(
        self, entry_ids: Sequence[int], raw_tx: bytes, tx_hash: bytes, sender_nonce: int
    ) -> int:
        """Store a signed audit transaction and bind the entries to it, before broadcast."""
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO batches (raw_tx, tx_hash, sender_nonce) VALUES (?,?,?)",
                (raw_tx, tx_hash, sender_nonce),
            )
            batch_id = int(cur.lastrowid or 0)
            tx.executemany(
                "UPDATE journal SET batch_id = ? WHERE id = ? AND batch_id IS NULL",
                [(batch_id, i) for i in entry_ids],
            )
            return batch_id

    def pending_batches(self) -> list[PendingBatch]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, raw_tx, tx_hash, sender_nonce FROM batches "
                "WHERE mined_block IS NULL ORDER BY id"
            ).fetchall()
            out = []
            for r in rows:
                ids = tuple(
                    x[0]
                    for x in self._db.execute(
                        "SELECT id FROM journal WHERE batch_id = ? ORDER BY id", (r[0],)
                    )
                )
                out.append(PendingBatch(r[0], r[1], r[2], r[3], ids))
        return out

    def mined_batches_after(self, block: int) -> list[tuple[int, bytes, int]]:
        """(id, tx hash, mined block) of batches marked mined after ``block``: not yet
        behind the watcher's hash-checked cursor, so a reorg may still orphan them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, tx_hash, mined_block FROM batches WHERE mined_block > ? ORDER BY id",
                (block,),
            ).fetchall()
        return [(int(r[0]), bytes(r[1]), int(r[2])) for r in rows]

    def batch_unmined(self, batch_id: int) -> None:
        """A batch marked mined whose block was orphaned: pending again."""
        with self.transaction() as tx:
            tx.execute("UPDATE batches SET mined_block = NULL WHERE id = ?", (batch_id,))

    def batch_mined(self, batch_id: int, block: int) -> None:
        with self.transaction() as tx:
            tx.execute("UPDATE batches SET mined_block = ? WHERE id = ?", (block, batch_id))

    def drop_batch(self, batch_id: int) -> None:
        """Forget a batch whose transaction can never be mined; its entries go back."""
        with self.transaction() as tx:
            tx.execute("UPDATE journal SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            tx.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
