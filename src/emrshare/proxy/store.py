"""The proxy's SQLite state: chain cursor, policies, kfrags (encrypted at rest), the
capsule index, seen nonces and the audit journal.

One database file in the proxy's data dir, in WAL mode. Every chain batch the watcher
applies is committed in one transaction together with the new cursor, so a restart
resumes exactly where the last commit ended: nothing missed, nothing applied twice.

Kfrags are kept sealed with a key derived from the proxy's own box secret (BLAKE2b,
personalised): a copied database file alone does not yield them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.utils

from emrshare._files import connect_sqlite
from emrshare.errors import ConfigurationError, DecryptionError

__all__ = [
    "EntryRecord",
    "JournalEntry",
    "PendingBatch",
    "PolicyRecord",
    "ProxyStore",
    "Rollback",
    "StoredKfrag",
]

#: Layout version, in ``meta``: 2 is the issue #10 layout (no epochs on chain; the
#: journal keeps the grantee's signed request for the audit log); 3 adds the request
#: digest to each spent nonce (a repeat of the identical request is answered again, not
#: journaled again) and the hashes of recently applied blocks (reorg detection). A
#: layout 2 database is upgraded in place.
SCHEMA_VERSION = 3
#: How many applied blocks' hashes are kept: a reorg deeper than this is refused.
BLOCK_WINDOW = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    policy_id BLOB PRIMARY KEY,
    patient TEXT NOT NULL,
    grantee TEXT NOT NULL,
    tag BLOB NOT NULL,
    expiry INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    proxies TEXT NOT NULL,
    created_block INTEGER NOT NULL,
    revoked_block INTEGER
);
CREATE INDEX IF NOT EXISTS policies_by_tag ON policies (patient, tag);
CREATE TABLE IF NOT EXISTS kfrags (
    policy_id BLOB PRIMARY KEY,
    boxed BLOB NOT NULL,
    verifying_pk BLOB NOT NULL,
    delegating_pk BLOB NOT NULL,
    receiving_pk BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    capsule_hash BLOB NOT NULL,
    patient TEXT NOT NULL,
    tag BLOB NOT NULL,
    record_id BLOB NOT NULL,
    block INTEGER NOT NULL,
    -- The same capsule may be appended under several tags (by anyone authorized for
    -- them); each appearance counts only for its own (patient, tag).
    PRIMARY KEY (capsule_hash, patient, tag)
);
CREATE TABLE IF NOT EXISTS nonces (
    signer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    digest BLOB,
    PRIMARY KEY (signer, nonce)
);
-- The hash of every block the watcher's cursor stood at (the last BLOCK_WINDOW): each
-- step checks the chain still has them, and a reorg rolls back to the newest it has.
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
-- One row per serve: exactly what AuditLog.logAccesses needs (the grantee's signed
-- request: capsule hashes, nonce, deadline, signature; the block the proxy evaluated
-- the grant at and that block's timestamp), plus the record ids for operators.
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id BLOB NOT NULL,
    requester TEXT NOT NULL,
    record_ids TEXT NOT NULL,
    block INTEGER NOT NULL,
    capsule_hashes TEXT NOT NULL,
    nonce TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    signature BLOB NOT NULL,
    block_time INTEGER NOT NULL,
    batch_id INTEGER
);
CREATE INDEX IF NOT EXISTS journal_unbatched ON journal (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_tx BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    sender_nonce INTEGER NOT NULL,
    mined_block INTEGER
);
"""
#: What a new database file is created with: the tables and its layout version (a
#: release-1 file has no version row).
_CREATE = _SCHEMA + "INSERT INTO meta (key, value) VALUES ('schema', '3');"  # noqa: S608 - constant


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A grant as the proxy learnt it from chain events."""

    policy_id: bytes
    patient: str
    grantee: str
    tag: bytes
    expiry: int
    threshold: int
    proxies: tuple[str, ...]
    created_block: int
    revoked_block: int | None = None


@dataclass(frozen=True, slots=True)
class StoredKfrag:
    """A kfrag that verified at ingest, and the public keys it verified against.

    The keys are kept so that the kfrag is verified again whenever it is loaded.
    """

    kfrag: bytes = field(repr=False)
    verifying_pk: bytes
    delegating_pk: bytes
    receiving_pk: bytes


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An index entry, as far as the proxy needs it: whose, under which tag."""

    capsule_hash: bytes
    patient: str
    tag: bytes
    record_id: bytes
    block: int


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


@dataclass(frozen=True, slots=True)
class Rollback:
    """What a reorg rollback undid (:meth:`ProxyStore.rollback`)."""

    fork: int
    dropped_policies: tuple[bytes, ...]
    unrevoked_policies: tuple[bytes, ...]
    dropped_entries: int
    unmined_batches: int


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """An audit batch whose signed transaction was stored before it was broadcast."""

    id: int
    raw_tx: bytes
    tx_hash: bytes
    sender_nonce: int
    entry_ids: tuple[int, ...]


class ProxyStore:
    """The proxy's database. Thread-safe: one connection behind a lock.

    ``at_rest_secret`` is the proxy's own box secret key; the kfrag key is derived from it.
    """

    def __init__(self, path: Path, at_rest_secret: bytes) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            # Owner-only: the file holds sealed kfrags, the audit journal and who read what.
            # A damaged file is a LocalStateError (a ConfigurationError) left untouched.
            self._db = connect_sqlite(
                path,
                "proxy database",
                _CREATE,
                check_same_thread=False,
                isolation_level=None,
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot open the proxy database {path}: {exc}") from exc
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._check_schema(path)
        self._db.executescript(_SCHEMA)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )
        key = nacl.hash.blake2b(
            at_rest_secret,
            digest_size=32,
            person=b"emrshare-kfrags",
            encoder=nacl.encoding.RawEncoder,
        )
        self._box = nacl.secret.SecretBox(key)

    def _check_schema(self, path: Path) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            return  # a new database
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) == 2:
            # 2 -> 3: nonces spent before the upgrade keep no digest (a repeat of one of
            # them is refused as replayed, as before); the block table is new.
            self._db.execute("ALTER TABLE nonces ADD COLUMN digest BLOB")
            return
        if row is None or int(row[0]) != SCHEMA_VERSION:
            self._db.close()
            raise ConfigurationError(
                f"the proxy database {path} has an older layout (schema "
                f"{row[0] if row else 1}, this release uses {SCHEMA_VERSION}) made for the "
                "previous contracts; start the proxy with a fresh data dir and let it "
                "follow the new deployment from its start block"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- cursor ------------------------------------------------------------------------

    def cursor(self) -> int | None:
        """The last block whose events were applied, or None before the first run."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='cursor'").fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def set_cursor(tx: sqlite3.Connection, block: int) -> None:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('cursor', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(block),),
        )

    # -- applied blocks (reorg detection) ---------------------------------------------

    @staticmethod
    def record_block(tx: sqlite3.Connection, number: int, block_hash: bytes) -> None:
        """Remember the hash of a block the cursor moved to; keep the last BLOCK_WINDOW."""
        tx.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (number, block_hash))
        tx.execute("DELETE FROM blocks WHERE number <= ?", (number - BLOCK_WINDOW,))

    def recent_blocks(self) -> list[tuple[int, bytes]]:
        """The remembered (number, hash) pairs, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC")
            return [(int(r[0]), bytes(r[1])) for r in rows.fetchall()]

    def rollback(self, fork: int) -> Rollback:
        """Undo everything derived from blocks after ``fork`` (orphaned by a reorg).

        Policies created after it are dropped with their kfrags, index entries after it
        are dropped, revocations after it are undone (the kfrag a revocation deleted
        stays deleted: the proxy fails closed, see docs/proxy-operations.md), audit
        batches mined after it go back to pending (the flusher re-checks their receipt),
        and the cursor moves back to ``fork``. One transaction.
        """
        with self.transaction() as tx:
            dropped = [
                bytes(r[0])
                for r in tx.execute(
                    "SELECT policy_id FROM policies WHERE created_block > ?", (fork,)
                ).fetchall()
            ]
            unrevoked = [
                bytes(r[0])
                for r in tx.execute(
                    "SELECT policy_id FROM policies WHERE revoked_block > ? AND created_block <= ?",
                    (fork, fork),
                ).fetchall()
            ]
            tx.executemany("DELETE FROM kfrags WHERE policy_id = ?", [(p,) for p in dropped])
            tx.execute("DELETE FROM policies WHERE created_block > ?", (fork,))
            tx.execute("UPDATE policies SET revoked_block = NULL WHERE revoked_block > ?", (fork,))
            entries = tx.execute("DELETE FROM entries WHERE block > ?", (fork,)).rowcount
            batches = tx.execute(
                "UPDATE batches SET mined_block = NULL WHERE mined_block > ?", (fork,)
            ).rowcount
            tx.execute("DELETE FROM blocks WHERE number > ?", (fork,))
            self.set_cursor(tx, fork)
        return Rollback(fork, tuple(dropped), tuple(unrevoked), entries, batches)

    # -- policies and kfrags -----------------------------------------------------------

    @staticmethod
    def put_policy(tx: sqlite3.Connection, p: PolicyRecord) -> None:
        tx.execute(
            "INSERT OR IGNORE INTO policies VALUES (?,?,?,?,?,?,?,?,?)",
            (
                p.policy_id,
                p.patient,
                p.grantee,
                p.tag,
                p.expiry,
                p.threshold,
                json.dumps(list(p.proxies)),
                p.created_block,
                p.revoked_block,
            ),
        )

    def policy(self, policy_id: bytes) -> PolicyRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM policies WHERE policy_id = ?", (policy_id,)
            ).fetchone()
        if row is None:
            return None
        return PolicyRecord(
            policy_id=row[0],
            patient=row[1],
            grantee=row[2],
            tag=row[3],
            expiry=row[4],
            threshold=row[5],
            proxies=tuple(json.loads(row[6])),
            created_block=row[7],
            revoked_block=row[8],
        )

    def put_kfrag(self, tx: sqlite3.Connection, policy_id: bytes, stored: StoredKfrag) -> None:
        """Store a verified kfrag, sealed under the at-rest key, with its (public) keys."""
        boxed = bytes(self._box.encrypt(stored.kfrag, nacl.utils.random(24)))
        tx.execute(
            "INSERT OR REPLACE INTO kfrags VALUES (?, ?, ?, ?, ?)",
            (policy_id, boxed, stored.verifying_pk, stored.delegating_pk, stored.receiving_pk),
        )

    def kfrag(self, policy_id: bytes) -> StoredKfrag | None:
        """The stored kfrag, or None (revoked, never received, or not for us)."""
        with self._lock:
            row = self._db.execute(
                "SELECT boxed, verifying_pk, delegating_pk, receiving_pk FROM kfrags "
                "WHERE policy_id = ?",
                (policy_id,),
            ).fetchone()
        if row is None:
            return None
        try:
            kfrag = bytes(self._box.decrypt(row[0]))
        except nacl.exceptions.CryptoError as exc:
            raise DecryptionError() from exc
        return StoredKfrag(kfrag, bytes(row[1]), bytes(row[2]), bytes(row[3]))

    @staticmethod
    def revoke_policy(tx: sqlite3.Connection, policy_id: bytes, block: int) -> None:
        tx.execute(
            "UPDATE policies SET revoked_block = ? WHERE policy_id = ? AND revoked_block IS NULL",
            (block, policy_id),
        )
        tx.execute("DELETE FROM kfrags WHERE policy_id = ?", (policy_id,))

    @staticmethod
    def revoke_tag(tx: sqlite3.Connection, patient: str, tag: bytes, block: int) -> list[bytes]:
        """Revoke every policy of (patient, tag); returns their ids."""
        ids = [
            r[0]
            for r in tx.execute(
                "SELECT policy_id FROM policies WHERE patient = ? AND tag = ? "
                "AND revoked_block IS NULL",
                (patient, tag),
            )
        ]
        for pid in ids:
            ProxyStore.revoke_policy(tx, pid, block)
        return ids

    def kfrag_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM kfrags").fetchone()[0])

    # -- index -------------------------------------------------------------------------

    @staticmethod
    def put_entry(tx: sqlite3.Connection, e: EntryRecord) -> None:
        tx.execute(
            "INSERT OR IGNORE INTO entries VALUES (?,?,?,?,?)",
            (e.capsule_hash, e.patient, e.tag, e.record_id, e.block),
        )

    def entries(self, capsule_hashes: Sequence[bytes]) -> dict[bytes, list[EntryRecord]]:
        """Every indexed appearance of each capsule (usually one)."""
        hashes = list(capsule_hashes)
        marks = ",".join("?" * len(hashes))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM entries WHERE capsule_hash IN ({marks}) "  # noqa: S608 - only ?s
                "ORDER BY block",
                hashes,
            ).fetchall()
        out: dict[bytes, list[EntryRecord]] = {}
        for r in rows:
            out.setdefault(bytes(r[0]), []).append(EntryRecord(*r))
        return out

    # -- nonces ------------------------------------------------------------------------

    def claim_nonce(self, signer: str, nonce: int, deadline: int) -> bool:
        """Record a nonce as used; False if that signer already used it."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO nonces VALUES (?, ?, ?, NULL)",
                (signer, str(nonce), deadline),
            )
            return cur.rowcount == 1

    def prune_nonces(self, chain_time: int) -> int:
        """Forget nonces whose deadline passed: the deadline check refuses them anyway."""
        with self._lock:
            return self._db.execute("DELETE FROM nonces WHERE deadline < ?", (chain_time,)).rowcount

    # -- audit journal -----------------------------------------------------------------

    def nonce_used(self, signer: str, nonce: int) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM nonces WHERE signer = ? AND nonce = ?", (signer, str(nonce))
            ).fetchone()
        return row is not None

    def nonce_digest(self, signer: str, nonce: int) -> bytes | None:
        """The digest of the request that spent ``nonce`` (``b""`` if not recorded), or
        None while the nonce is unspent."""
        with self._lock:
            row = self._db.execute(
                "SELECT digest FROM nonces WHERE signer = ? AND nonce = ?", (signer, str(nonce))
            ).fetchone()
        return None if row is None else bytes(row[0] or b"")

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
                "nonce, deadline, signature, block_time) VALUES (?,?,?,?,?,?,?,?,?)",
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
                    )
                    for s in serves
                ],
            )

    def unbatched(self, limit: int) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, policy_id, requester, record_ids, block, capsule_hashes, nonce, "
                "deadline, signature, block_time FROM journal "
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
            )
            for r in rows
        ]

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
