"""The proxy's SQLite state: chain cursor, policies, kfrags (encrypted at rest), the
capsule index, seen nonces and the audit journal (its queries: :mod:`.audit_store`).

One database file in the proxy's data dir, in WAL mode (layout: :mod:`._schema`). Every
chain batch the watcher applies is committed in one transaction together with the new
cursor, so a restart resumes exactly where the last commit ended: nothing missed,
nothing applied twice.

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

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.utils

from emrshare.errors import DecryptionError
from emrshare.proxy.node._schema import BLOCK_WINDOW, SCHEMA_VERSION, open_database
from emrshare.proxy.node.audit_store import AuditQueries, JournalEntry, PendingBatch, Serve
from emrshare.proxy.node.emergency_store import EmergencyPolicyRecord, EmergencyQueries

__all__ = [
    "BLOCK_WINDOW",
    "SCHEMA_VERSION",
    "EmergencyPolicyRecord",
    "EntryRecord",
    "JournalEntry",
    "PendingBatch",
    "PolicyRecord",
    "ProxyStore",
    "Rollback",
    "Serve",
    "StoredKfrag",
]


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
class Rollback:
    """What a reorg rollback undid (:meth:`ProxyStore.rollback`)."""

    fork: int
    dropped_policies: tuple[bytes, ...]
    unrevoked_policies: tuple[bytes, ...]
    dropped_entries: int
    unmined_batches: int


class ProxyStore(AuditQueries, EmergencyQueries):
    """The proxy's database. Thread-safe: one connection behind a lock.

    ``at_rest_secret`` is the proxy's own box secret key; the kfrag key is derived from it.
    """

    def __init__(self, path: Path, at_rest_secret: bytes) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_database(path)
        key = nacl.hash.blake2b(
            at_rest_secret,
            digest_size=32,
            person=b"emrshare-kfrags",
            encoder=nacl.encoding.RawEncoder,
        )
        self._box = nacl.secret.SecretBox(key)

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
            dropped += self.drop_emergency_after(tx, fork)
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
