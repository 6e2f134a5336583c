"""LocalStore packs and pin sets: a big write's blocks in one file and its pins in one
file, read, unpinned and collected like loose ones, shared by processes, never trusted."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from emrshare.errors import BlobNotFound, IntegrityError, StorageError
from emrshare.storage import LocalStore, read_all
from emrshare.storage.cid import CidInfo
from emrshare.types import Cid


def _bulk(store: LocalStore, n: int = 100, seed: int = 1) -> tuple[list[Cid], list[bytes]]:
    rng = random.Random(seed)
    blobs = [rng.randbytes(200 + i) for i in range(n)]
    return store.put_many(blobs), blobs


def _packs(store: LocalStore) -> list[Path]:
    return sorted((store.path / "packs").glob("*.pack"))


def test_a_big_blob_streams_into_a_pack(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    data = random.Random(2).randbytes(40 * 262_144 + 17)
    cid = store.put(data)
    assert len(list((tmp_path / "s" / "blocks").glob("*/*.data"))) == 16
    assert len(_packs(store)) == 1
    assert read_all(store, cid, max_size=len(data)) == data
    assert read_all(LocalStore(tmp_path / "s"), cid, max_size=len(data)) == data


def test_a_corrupt_packed_block_is_an_integrity_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    victim = CidInfo.parse(cids[-1])  # a single-block record, packed
    loc = store._packs.locate(victim.key)
    assert loc is not None
    pack = store._packs.dir / f"{loc.pack}.pack"
    raw = bytearray(pack.read_bytes())
    raw[loc.offset] ^= 1
    pack.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as err:
        read_all(LocalStore(tmp_path / "s"), cids[-1])
    assert err.value.cid == str(victim)
    assert read_all(store, cids[-2])  # its neighbours are intact


def test_a_truncated_pack_is_an_integrity_error_not_short_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    pack = _packs(store)[0]
    os.truncate(pack, pack.stat().st_size - 10)
    with pytest.raises(IntegrityError):
        read_all(LocalStore(tmp_path / "s"), cids[-1])


def test_unpin_from_a_pin_set_and_gc_rewrites_the_pack(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, blobs = _bulk(store)
    other = LocalStore(tmp_path / "s")  # another process's view, loaded before the gc
    assert read_all(other, cids[-1]) == blobs[-1]
    gone = cids[50:60]
    for cid in gone:
        store.unpin(cid)
    assert not any(store.is_pinned(c) for c in gone)
    assert not any(LocalStore(tmp_path / "s").is_pinned(c) for c in gone)
    assert all(store.is_pinned(c) for c in cids[:50] + cids[60:])
    assert len(store.pins()) == 90
    before = _packs(store)
    result = store.gc()
    assert result.removed_blocks == 10 and result.freed_bytes > 0
    assert _packs(store) != before  # rewritten with the live blocks only
    for cid, blob in zip(cids, blobs, strict=True):
        if cid in gone:
            assert not store.has(cid)
        else:
            assert read_all(store, cid) == blob
    # The stale view finds the blocks in the rewritten pack.
    assert read_all(other, cids[-1]) == blobs[-1]


def test_gc_deletes_a_dead_pack_and_an_unindexed_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    orphan = store._packs.dir / "deadbeef-1-00.pack"  # a crash between the two renames
    orphan.write_bytes(b"x" * 1000)
    for cid in cids:
        store.unpin(cid)
    assert store.pins() == []
    assert not list((tmp_path / "s" / "pinsets").iterdir())
    result = store.gc()
    assert result.removed_blocks == 100
    assert list(store._packs.dir.iterdir()) == []
    assert store.block_keys() == []


def test_gc_refuses_a_damaged_index_and_deletes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, blobs = _bulk(store)
    store.unpin(cids[0])
    idx = next(store._packs.dir.glob("*.idx"))
    idx.write_bytes(idx.read_bytes()[:-3])  # torn
    fresh = LocalStore(tmp_path / "s")
    with pytest.raises(StorageError, match="damaged"):
        fresh.gc()
    assert len(_packs(fresh)) == 1 and idx.exists()
    assert read_all(fresh, cids[0]) == blobs[0]  # unpinned, and still there: gc stopped


def test_pin_sets_from_two_writers_and_a_repeated_bulk_write(tmp_path: Path) -> None:
    a = LocalStore(tmp_path / "s")
    b = LocalStore(tmp_path / "s")
    cids_a, _ = _bulk(a, seed=1)
    cids_b, blobs_b = _bulk(b, seed=2)
    again, _ = _bulk(a, seed=2)  # the same blobs again: no second copy of any block
    assert again == cids_b
    assert len(a.block_keys()) == 200
    assert all(a.is_pinned(c) for c in cids_b) and all(b.is_pinned(c) for c in cids_a)
    for cid in cids_b:
        a.unpin(cid)
    # b's blobs were pinned twice (two sets): unpinning removes the pin from both.
    assert not any(b.is_pinned(c) for c in cids_b)
    assert a.gc().removed_blocks == 100
    assert all(read_all(b, c) for c in cids_a)
    assert not any(b.has(c) for c in cids_b) and len(blobs_b) == 100


def test_pack_files_are_private(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    _bulk(store)
    store.unpin(store.pins()[0])
    for path in (tmp_path / "s").rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), path


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"X" + raw[1:],  # the magic line
        lambda raw: raw[:-2] + b"\xff\n",  # a byte that is not ascii
        lambda raw: raw + b"not-a-cid\n",  # a root that does not parse
        lambda raw: raw[:-1],  # torn: no final newline
    ],
    ids=["magic", "non-ascii", "bad-root", "torn"],
)
def test_gc_refuses_a_damaged_pin_set_and_deletes_nothing(tmp_path: Path, damage: object) -> None:
    store = LocalStore(tmp_path / "s")
    cids, blobs = _bulk(store)
    path = next((tmp_path / "s" / "pinsets").glob("*.set"))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    fresh = LocalStore(tmp_path / "s")
    with pytest.raises(StorageError, match=r"pin set .* is damaged"):
        fresh.gc()
    assert [read_all(fresh, c) for c in cids] == blobs


@pytest.mark.parametrize(("offset", "length"), [(2**64 - 1, 10), (0, 2**32 - 1)])
def test_a_hostile_index_entry_is_damage_not_a_crash(
    tmp_path: Path, offset: int, length: int
) -> None:
    import struct

    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    idx = next(store._packs.dir.glob("*.idx"))
    raw = idx.read_bytes()
    key = CidInfo.parse(cids[-1]).key.encode()
    at = raw.index(key) + len(key)
    idx.write_bytes(raw[:at] + struct.pack(">QI", offset, length) + raw[at + 12 :])
    fresh = LocalStore(tmp_path / "s")
    with pytest.raises(BlobNotFound):
        read_all(fresh, cids[-1])
    with pytest.raises(StorageError, match="damaged"):
        fresh.gc()


def test_a_stale_pack_index_still_finds_a_block_written_again_as_a_file(tmp_path: Path) -> None:
    a = LocalStore(tmp_path / "s")
    cids, blobs = _bulk(a)
    assert read_all(a, cids[-1]) == blobs[-1]  # a knows the block from the pack
    b = LocalStore(tmp_path / "s")
    for cid in cids:
        b.unpin(cid)
    b.gc()
    assert b.put(blobs[-1]) == cids[-1]  # a small put: a file now
    assert read_all(a, cids[-1]) == blobs[-1]


def test_unpin_from_a_pin_set_waits_for_gc(tmp_path: Path) -> None:
    # gc holds the store's exclusive lock; an unpin rewriting a pin set must not run
    # beside it (gc would miss the rewritten set and delete what it pins).
    import threading

    store = LocalStore(tmp_path / "s")
    cids, blobs = _bulk(store)
    done = threading.Event()
    with store._locked(exclusive=True):  # stands in for a gc in progress
        t = threading.Thread(target=lambda: (LocalStore(tmp_path / "s").unpin(cids[0]), done.set()))
        t.start()
        assert not done.wait(0.5)
        assert store.is_pinned(cids[0])
    t.join(10)
    assert done.is_set() and not store.is_pinned(cids[0])
    assert store.gc().removed_blocks == 1
    assert [read_all(store, c) for c in cids[1:]] == blobs[1:]


def test_gc_names_a_pack_missing_beside_its_index(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    store.unpin(cids[-1])
    _packs(store)[0].unlink()
    with pytest.raises(StorageError, match="is missing but its index is there"):
        LocalStore(tmp_path / "s").gc()


def test_unreadable_pack_and_pin_set_entries_are_storage_errors(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    cids, _ = _bulk(store)
    absent = LocalStore(tmp_path / "other").put(b"never stored in s")
    (store._packs.dir / "x.idx").mkdir()  # in the way: not a file
    (tmp_path / "s" / "pinsets" / "y.set").mkdir()
    fresh = LocalStore(tmp_path / "s")
    with pytest.raises(StorageError, match="look for a block"):
        fresh.has(absent)
    with pytest.raises(StorageError, match="read the pins"):
        fresh.is_pinned(cids[0])


def test_a_failed_write_in_the_pack_writer_thread_fails_the_put_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills up while the writer thread writes a big block: the put raises the
    # store's typed error, nothing of it is visible, and its temp files are gone.
    import errno

    from emrshare.storage import _packs as packs_mod

    calls = {"n": 0}
    real = os.pwritev

    def full(fd: int, parts: list[bytes], offset: int) -> int:
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, parts, offset)

    monkeypatch.setattr(packs_mod.os, "pwritev", full)
    store = LocalStore(tmp_path / "s")
    data = random.Random(3).randbytes(60 * 262_144)
    with pytest.raises(StorageError, match="No space left"):
        store.put(data)
    assert store.pins() == [] and not _packs(store)
    assert not list((tmp_path / "s" / "tmp").iterdir())
    monkeypatch.setattr(packs_mod.os, "pwritev", real)
    cid = store.put(data)  # and the store is fine afterwards
    assert read_all(store, cid, max_size=len(data)) == data
