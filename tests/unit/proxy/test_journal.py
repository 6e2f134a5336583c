"""Group commit: concurrent serves share commits, each returns only once durable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from emrshare.proxy.node.audit_journal import GroupCommit
from emrshare.proxy.node.store import ProxyStore, Serve


def test_concurrent_serves_all_durable_and_nonces_spent(tmp_path: Path) -> None:
    store = ProxyStore(tmp_path / "p.sqlite3", b"\x01" * 32)
    journal = GroupCommit(store)
    threads = [
        threading.Thread(
            target=journal.record,
            args=(Serve(b"\x02" * 32, f"0xA{i % 3}", (bytes([i]) * 32,), 7, i, 100),),
        )
        for i in range(64)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.unbatched_count() == 64
    assert journal.commits <= 64
    assert all(store.nonce_used(f"0xA{i % 3}", i) for i in range(64))
    assert not store.nonce_used("0xA0", 1)  # nonce 1 was 0xA1's


def test_failed_commit_is_raised_to_its_callers(tmp_path: Path) -> None:
    store = ProxyStore(tmp_path / "p.sqlite3", b"\x01" * 32)
    journal = GroupCommit(store)
    store.close()
    with pytest.raises(Exception, match="closed"):
        journal.record(Serve(b"\x02" * 32, "0xA", (), 1, 1, 2))


def test_attack_huge_deadline_fails_other_grantees_in_its_group(tmp_path: Path) -> None:
    """One serve the journal cannot store (a deadline over SQLite's signed 64 bits) must
    fail alone: its group's commit is retried serve by serve."""
    store = ProxyStore(tmp_path / "p.sqlite3", b"\x01" * 32)
    journal = GroupCommit(store)
    errors: dict[int, BaseException] = {}

    def serve(i: int) -> None:
        deadline = 2**63 if i == 15 else 100
        try:
            journal.record(Serve(b"\x02" * 32, f"0xB{i}", (bytes([i]) * 32,), 7, i, deadline))
        except BaseException as exc:
            errors[i] = exc

    for _round in range(3):
        errors.clear()
        store_before = store.unbatched_count()
        # Hold the commit lock so that every serve queues, then one leader takes them all.
        with journal._cv:
            threads = [threading.Thread(target=serve, args=(i,)) for i in range(30)]
            for t in threads:
                t.start()
        for t in threads:
            t.join()
        assert set(errors) == {15}
        assert isinstance(errors[15], OverflowError)
        assert store.unbatched_count() == store_before + 29
    assert store.nonce_used("0xB3", 3) and not store.nonce_used("0xB15", 15)
