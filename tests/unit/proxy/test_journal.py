"""Group commit: concurrent serves share commits, each returns only once durable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from emrshare.proxy.journal import GroupCommit
from emrshare.proxy.store import ProxyStore, Serve


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
