"""LocalStore.put_many: the same CIDs, pins and bytes as put, with one durability round."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from emrshare.storage import LocalStore, read_all
from emrshare.storage import local as local_mod


@pytest.mark.parametrize("count", [1, 5, 40])
def test_put_many_equals_put(tmp_path: Path, count: int) -> None:
    blobs = [os.urandom(100 + 997 * i) for i in range(count)] + [b"", b"same", b"same"]
    many = LocalStore(tmp_path / "many")
    one = LocalStore(tmp_path / "one")
    cids = many.put_many([io.BytesIO(b) if i % 2 else b for i, b in enumerate(blobs)])
    assert cids == [one.put(b) for b in blobs]
    for cid, blob in zip(cids, blobs, strict=True):
        assert read_all(many, cid) == blob
        assert many.is_pinned(cid)
    assert sorted(many.pins()) == sorted(set(cids))
    assert not list((tmp_path / "many" / "tmp").iterdir())  # nothing left half-written


def test_put_many_without_pin_and_large_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    big = os.urandom(600_000)  # several chunks: a DAG, not a single block
    cids = store.put_many([big, b"x" * 10], pin=False)
    assert read_all(store, cids[0]) == big
    assert store.pins() == []
    assert store.gc().removed_blocks > 0  # unpinned: collectable


def test_put_many_without_syncfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Platforms without syncfs flush file by file; the result is the same.
    monkeypatch.setattr(local_mod, "_SYNCFS", None)
    store = LocalStore(tmp_path / "s")
    blobs = [os.urandom(50) for _ in range(30)]
    cids = store.put_many(blobs)
    assert [read_all(store, c) for c in cids] == blobs
    assert all(store.is_pinned(c) for c in cids)


def test_only_the_embedded_store_is_a_bulk_store(tmp_path: Path) -> None:
    from emrshare.storage import BlobStore, BulkBlobStore, KuboStore, ReplicatedStore

    local = LocalStore(tmp_path / "s")
    assert isinstance(local, BulkBlobStore)
    kubo = KuboStore("http://127.0.0.1:9")
    replicas = ReplicatedStore([local, LocalStore(tmp_path / "t")], min_pins=1)
    for plain in (kubo, replicas):
        assert isinstance(plain, BlobStore)
        assert not isinstance(plain, BulkBlobStore)
    kubo.close()
