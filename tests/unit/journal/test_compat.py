"""Journals written before the split into a package open and recover unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from emrshare.journal import JobState, Journal
from tests.unit.journal.test_journal import STREAM, Ledger, Steps, assert_exactly_once, rid

# The ``writes`` table as the first release created it (emrshare/journal.py).
FIRST_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    record_id  BLOB PRIMARY KEY,
    stream     TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    patient    TEXT NOT NULL,
    category   TEXT NOT NULL,
    state      TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',
    source     TEXT,
    secret     BLOB,
    ciphertext BLOB,
    spool      TEXT,
    cid        TEXT,
    tx_hash    BLOB,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    owner      INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_stream ON writes(stream, sequence);
CREATE INDEX IF NOT EXISTS writes_open ON writes(state) WHERE state NOT IN
    ('confirmed', 'rolled_back');
"""


def _schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT name, sql FROM sqlite_master").fetchall())


def test_a_first_release_journal_recovers(tmp_path: Path) -> None:
    ledger = Ledger()
    sources: dict[bytes, bytes] = {rid(1): b"first" * 100, rid(2): b"second" * 100}
    cipher = {r: bytes(b ^ 0x5A for b in data) for r, data in sources.items()}
    # Record 2 was stored before the writer died; record 1 only spooled (inline).
    cid2 = hashlib.sha256(cipher[rid(2)]).hexdigest()
    ledger.blobs[cid2] = cipher[rid(2)]
    ledger.pinned.add(cid2)
    path = tmp_path / "journal.db"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(FIRST_RELEASE_SCHEMA)
        for seq, state, inline, cid in (
            (1, JobState.ENCRYPTED, cipher[rid(1)], None),
            (2, JobState.STORED, None, cid2),
        ):
            db.execute(
                "INSERT INTO writes (record_id, stream, sequence, patient, category, state,"
                " meta, secret, ciphertext, cid, owner, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bytes(rid(seq)),
                    STREAM,
                    seq,
                    "0xp",
                    "lab",
                    state.value,
                    json.dumps({}),
                    b"sealed-data-key",
                    inline,
                    cid,
                    2147483646,  # a writer that is gone
                    1.0,
                    1.0,
                ),
            )
    before = _schema(path)

    with Journal(tmp_path) as journal:
        report = journal.recover(Steps(ledger, sources))
        assert report.ok and sorted(report.confirmed) == sorted(sources)
        assert {j.state for j in journal.jobs()} == {JobState.CONFIRMED}
    assert_exactly_once(ledger, [rid(1), rid(2)], sources)
    after = _schema(path)
    # No migration: the table is as the first release made it, and so is every index it
    # made; the one addition is an index (a first release opening the file ignores it).
    assert [o for o in after if o in before] == before, "the first release's schema changed"
    assert [name for name, _ in after if (name, _) not in before] == ["writes_content"]
