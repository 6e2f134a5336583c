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


def test_a_big_put_many_is_packed_and_reads_back(tmp_path: Path) -> None:
    # Past the first few, a bulk write's blocks go into one pack and its pins into one
    # pin set instead of a file each; reads, pins and the CIDs are the same.
    store = LocalStore(tmp_path / "s")
    blobs = [os.urandom(50 + i) for i in range(300)]
    cids = store.put_many(blobs)
    assert cids == [LocalStore(tmp_path / f"one{i % 3}").put(b) for i, b in enumerate(blobs)]
    assert [read_all(store, c) for c in cids] == blobs
    assert all(store.is_pinned(c) for c in cids)
    assert len(list((tmp_path / "s" / "blocks").glob("*/*.data"))) <= local_mod._SMALL_BATCH
    assert len(list((tmp_path / "s" / "packs").glob("*.pack"))) == 1
    assert len(list((tmp_path / "s" / "pins").iterdir())) == 0
    assert len(list((tmp_path / "s" / "pinsets").glob("*.set"))) == 1
    assert len(store.block_keys()) == 300
    assert not list((tmp_path / "s" / "tmp").iterdir())
    # Another process's view (a fresh object) sees the same.
    other = LocalStore(tmp_path / "s")
    assert read_all(other, cids[-1]) == blobs[-1] and other.is_pinned(cids[-1])


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
