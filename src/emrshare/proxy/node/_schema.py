"""The proxy database's layout, its version, and the upgrades it knows (2 -> 3 -> 4)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from emrshare._files import connect_sqlite
from emrshare.errors import ConfigurationError

__all__ = ["BLOCK_WINDOW", "SCHEMA_VERSION", "open_database"]

#: Layout version, in ``meta``: 2 is the issue #10 layout (no epochs on chain; the
#: journal keeps the grantee's signed request for the audit log); 3 adds the request
#: digest to each spent nonce (a repeat of the identical request is answered again, not
#: journaled again) and the hashes of recently applied blocks (reorg detection). A
#: layout 2 database is upgraded in place. 4 adds the emergency opt-ins and, per journaled
#: serve, the emergency declaration, tag and proxies it was served under (issue 15).
SCHEMA_VERSION = 4
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
-- the grant at and that block's timestamp), plus the record ids for operators. An
-- emergency serve (logged by Emergency.logEmergencyAccess, one per transaction) also has
-- its declaration, tag and the opt-in's proxies (NULL for a grant's serve).
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
    batch_id INTEGER,
    declaration_id INTEGER,
    tag BLOB,
    proxies TEXT
);
CREATE INDEX IF NOT EXISTS journal_unbatched ON journal (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_tx BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    sender_nonce INTEGER NOT NULL,
    mined_block INTEGER
);
-- A patient's standing emergency opt-in (this proxy's kfrags of its tags are in kfrags).
CREATE TABLE IF NOT EXISTS emergency_policies (
    patient TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    tags TEXT NOT NULL,
    proxies TEXT NOT NULL,
    created_block INTEGER NOT NULL
);
"""
#: What a new database file is created with: the tables and its layout version (a
#: release-1 file has no version row).
_CREATE = _SCHEMA + "INSERT INTO meta (key, value) VALUES ('schema', '4');"  # noqa: S608 - constant


def open_database(path: Path) -> sqlite3.Connection:
    """Open (or create) the proxy database at ``path`` in WAL mode, upgraded to this
    layout; an older layout that cannot be upgraded raises :class:`ConfigurationError`."""
    try:
        # Owner-only: the file holds sealed kfrags, the audit journal and who read what.
        # A damaged file is a LocalStateError (a ConfigurationError) left untouched.
        db = connect_sqlite(
            path,
            "proxy database",
            _CREATE,
            check_same_thread=False,
            isolation_level=None,
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the proxy database {path}: {exc}") from exc
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    _upgrade(db, path)
    db.executescript(_SCHEMA)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
    )
    return db


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    if "meta" not in tables:
        return  # a new database
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    version = None if row is None else int(row[0])
    if version == 2:
        # 2 -> 3: nonces spent before the upgrade keep no digest (a repeat of one of
        # them is refused as replayed, as before); the block table is new.
        db.execute("ALTER TABLE nonces ADD COLUMN digest BLOB")
        version = 3
    if version == 3:
        # 3 -> 4: every journaled serve so far was a grant's; the opt-in table is new.
        have = {r[1] for r in db.execute("PRAGMA table_info(journal)")}
        for column in ("declaration_id INTEGER", "tag BLOB", "proxies TEXT"):
            if column.split()[0] not in have:
                db.execute(f"ALTER TABLE journal ADD COLUMN {column}")
        return
    if row is None or int(row[0]) != SCHEMA_VERSION:
        db.close()
        raise ConfigurationError(
            f"the proxy database {path} has an older layout (schema "
            f"{row[0] if row else 1}, this release uses {SCHEMA_VERSION}) made for the "
            "previous contracts; start the proxy with a fresh data dir and let it "
            "follow the new deployment from its start block"
        )
