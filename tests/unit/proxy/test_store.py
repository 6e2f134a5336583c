"""The proxy database: cursor, kfrags at rest, nonces, index, journal and audit batches."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from emrshare.errors import ConfigurationError, DecryptionError
from emrshare.proxy.node.store import EntryRecord, PolicyRecord, ProxyStore, Serve, StoredKfrag

SECRET = b"\x07" * 32


def _store(tmp_path: Path, secret: bytes = SECRET) -> ProxyStore:
    return ProxyStore(tmp_path / "proxy.sqlite3", secret)


def _policy(pid: bytes = b"\x01" * 32, tag: bytes = b"\xaa" * 32) -> PolicyRecord:
    return PolicyRecord(pid, "0xPatient", "0xGrantee", tag, 2_000_000_000, 2, ("0xP1",), 5)


def test_cursor_persists_and_rolls_back(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.cursor() is None
    with s.transaction() as tx:
        s.set_cursor(tx, 10)

    def crash() -> None:
        with s.transaction() as tx:
            s.set_cursor(tx, 20)
            s.put_policy(tx, _policy())
            raise RuntimeError("crash mid-batch")

    with pytest.raises(RuntimeError):
        crash()
    assert s.cursor() == 10
    assert s.policy(b"\x01" * 32) is None
    s.close()
    assert _store(tmp_path).cursor() == 10


def test_kfrag_encrypted_at_rest(tmp_path: Path) -> None:
    s = _store(tmp_path)
    kfrag = b"KFRAG-SECRET-BYTES" * 4
    stored = StoredKfrag(kfrag, b"v" * 33, b"d" * 33, b"r" * 33)
    with s.transaction() as tx:
        s.put_kfrag(tx, b"\x01" * 32, stored)
    assert s.kfrag(b"\x01" * 32) == stored
    assert "KFRAG" not in repr(stored)
    s.close()
    raw = (tmp_path / "proxy.sqlite3").read_bytes()
    wal = tmp_path / "proxy.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert kfrag not in raw
    with pytest.raises(DecryptionError):
        _store(tmp_path, b"\x08" * 32).kfrag(b"\x01" * 32)


def test_revoke_deletes_kfrag(tmp_path: Path) -> None:
    s = _store(tmp_path)
    with s.transaction() as tx:
        s.put_policy(tx, _policy())
        s.put_kfrag(tx, b"\x01" * 32, StoredKfrag(b"k", b"v", b"d", b"r"))
        s.put_policy(tx, _policy(b"\x02" * 32))
        s.put_kfrag(tx, b"\x02" * 32, StoredKfrag(b"k", b"v", b"d", b"r"))
        s.put_policy(tx, _policy(b"\x03" * 32, tag=b"\xbb" * 32))
        s.put_kfrag(tx, b"\x03" * 32, StoredKfrag(b"k", b"v", b"d", b"r"))
    with s.transaction() as tx:
        s.revoke_policy(tx, b"\x01" * 32, 7)
    assert s.kfrag(b"\x01" * 32) is None
    assert s.policy(b"\x01" * 32).revoked_block == 7  # type: ignore[union-attr]
    with s.transaction() as tx:
        ids = s.revoke_tag(tx, "0xPatient", b"\xaa" * 32, 9)
    assert ids == [b"\x02" * 32]
    assert s.kfrag(b"\x02" * 32) is None
    assert s.kfrag(b"\x03" * 32) is not None
    assert s.kfrag_count() == 1


def test_nonces_single_use_and_pruned(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.claim_nonce("0xA", 1, 100)
    assert not s.claim_nonce("0xA", 1, 100)
    assert s.claim_nonce("0xB", 1, 100)
    assert s.prune_nonces(101) == 2
    assert s.claim_nonce("0xA", 1, 200)


def test_entries_lookup(tmp_path: Path) -> None:
    s = _store(tmp_path)
    e = EntryRecord(b"\x09" * 32, "0xPatient", b"\xaa" * 32, b"rec", 3)
    with s.transaction() as tx:
        s.put_entry(tx, e)
        s.put_entry(tx, e)  # replayed event: idempotent
    assert s.entries([b"\x09" * 32, b"\x08" * 32]) == {b"\x09" * 32: [e]}
    # The same capsule appended under another tag is a second appearance, not a clash.
    other = EntryRecord(b"\x09" * 32, "0xPatient", b"\xbb" * 32, b"rec2", 4)
    with s.transaction() as tx:
        s.put_entry(tx, other)
    assert s.entries([b"\x09" * 32]) == {b"\x09" * 32: [e, other]}


def test_journal_batches_and_requeue(tmp_path: Path) -> None:
    s = _store(tmp_path)
    ids = [
        s.journal(
            Serve(
                b"\x01" * 32,
                "0xG",
                (b"r%d" % i,),
                10 + i,
                100 + i,
                2_000,
                capsule_hashes=(bytes([i]) * 32,),
                signature=b"\x05" * 65,
                block_time=1_000 + i,
            )
        )
        for i in range(5)
    ]
    assert s.unbatched_count() == 5
    first = s.unbatched(3)
    assert [e.id for e in first] == ids[:3]
    # Everything the audit contract needs comes back as journaled.
    assert first[0].record_ids == (b"r0",)
    assert first[1].capsule_hashes == (b"\x01" * 32,) and first[1].nonce == 101
    assert first[1].deadline == 2_000 and first[1].signature == b"\x05" * 65
    assert first[1].block == 11 and first[1].block_time == 1_001
    bid = s.add_batch([e.id for e in first], b"raw", b"hash", 7)
    assert s.unbatched_count() == 2
    (pending,) = s.pending_batches()
    assert pending.entry_ids == tuple(ids[:3]) and pending.sender_nonce == 7
    s.drop_batch(bid)
    assert s.unbatched_count() == 5
    bid = s.add_batch(ids, b"raw2", b"hash2", 8)
    s.batch_mined(bid, 99)
    assert s.pending_batches() == []
    assert s.unbatched_count() == 0


def test_wal_mode(tmp_path: Path) -> None:
    _store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "proxy.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_database_files_are_owner_only(tmp_path: Path) -> None:
    s = ProxyStore(tmp_path / "data" / "proxy.sqlite3", SECRET)
    with s.transaction() as tx:
        s.set_cursor(tx, 1)
    files = sorted((tmp_path / "data").iterdir())
    assert {f.name for f in files} >= {"proxy.sqlite3", "proxy.sqlite3-wal"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    s.close()


def test_a_database_of_the_old_layout_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "proxy.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('cursor', '5')")
    db.commit()
    db.close()
    with pytest.raises(ConfigurationError, match="fresh data dir"):
        ProxyStore(path, b"\x01" * 32)


def test_new_database_is_born_with_the_current_layout(tmp_path: Path) -> None:
    from emrshare.proxy.node._schema import _CREATE, SCHEMA_VERSION

    assert f"('schema', '{SCHEMA_VERSION}')" in _CREATE
    store = ProxyStore(tmp_path / "p" / "proxy.sqlite3", b"k" * 32)
    row = store._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    store.close()
    assert row == (str(SCHEMA_VERSION),)
    # Opening it again is not mistaken for an older layout.
    ProxyStore(tmp_path / "p" / "proxy.sqlite3", b"k" * 32).close()
