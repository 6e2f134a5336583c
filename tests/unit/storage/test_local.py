"""LocalStore specifics: integrity on read, crash safety, shared use by processes, memory."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from emrshare.errors import (
    BlobNotFound,
    IntegrityError,
    StorageError,
    UnsupportedVersion,
    WireFormatError,
)
from emrshare.storage import LocalStore, read_all
from emrshare.storage.cid import CidInfo
from emrshare.storage.unixfs import decode_dag_pb
from emrshare.types import Cid

ROOT = Path(__file__).resolve().parents[3]


def block_path(store: LocalStore, cid: CidInfo) -> Path:
    return store._block_path(cid)


def leaves(store: LocalStore, cid: Cid) -> list[CidInfo]:
    root = CidInfo.parse(cid)
    return [c for c, _ in decode_dag_pb(store.get_block(root)).links]


def test_corrupt_leaf_raises_integrity_error_naming_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = random.Random(1).randbytes(3 * 262_144)
    cid = store.put(data)
    bad = leaves(store, cid)[1]
    path = block_path(store, bad)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    stream = store.get(cid)
    delivered = next(stream)
    with pytest.raises(IntegrityError) as err:
        next(stream)
    assert err.value.cid == str(bad)
    assert str(bad) in str(err.value)
    # Only the verified first chunk came out; nothing of the corrupt block.
    assert delivered == data[:262_144]


def test_corrupt_root_and_truncated_block(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"small record")
    path = block_path(store, CidInfo.parse(cid))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IntegrityError, match=cid):
        read_all(store, cid)
    with pytest.raises(IntegrityError):
        store.stat(cid)
    with pytest.raises(IntegrityError):
        store.pin(cid)


def test_missing_inner_block(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(random.Random(2).randbytes(600_000))
    gone = leaves(store, cid)[2]
    block_path(store, gone).unlink()
    with pytest.raises(BlobNotFound) as err:
        read_all(store, cid)
    assert err.value.cid == str(gone)
    with pytest.raises(BlobNotFound):
        store.pin(cid)


def test_put_block_checks_the_cid(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    info = CidInfo.for_block(b"abc", 0x55, 1)
    with pytest.raises(IntegrityError):
        store.put_block(info, b"abd")
    assert not store.has_block(info)
    store.put_block(info, b"abc")
    assert store.get_block(info) == b"abc"


def test_a_version_1_store_is_read_and_marked_version_2(tmp_path: Path) -> None:
    # Version 1 had loose blocks and pins only; version 2 reads them as they are.
    cid = LocalStore(tmp_path / "v1").put(b"written by version 1")
    marker = tmp_path / "v1" / "emrshare-store.json"
    marker.write_text(json.dumps({"format": "emrshare-blockstore", "version": [1, 0]}))
    store = LocalStore(tmp_path / "v1")
    assert read_all(store, cid) == b"written by version 1" and store.is_pinned(cid)
    assert json.loads(marker.read_text())["version"] == [2, 0]


def test_unknown_store_version_and_foreign_dir(tmp_path: Path) -> None:
    LocalStore(tmp_path / "a")
    (tmp_path / "a" / "emrshare-store.json").write_text(
        json.dumps({"format": "emrshare-blockstore", "version": [3, 0]})
    )
    with pytest.raises(UnsupportedVersion):
        LocalStore(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "emrshare-store.json").write_text("not json")
    with pytest.raises(WireFormatError):
        LocalStore(tmp_path / "b")


def test_unwritable_store_is_a_storage_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "tmp").rmdir()
    (tmp_path / "tmp").write_text("in the way")
    with pytest.raises(StorageError, match="could not write"):
        store.put(b"x" * 10)


_CRASHER = textwrap.dedent(
    """
    import os, random, sys
    import emrshare.storage.local as local
    from emrshare.storage import LocalStore

    local._BATCH_BYTES = 1_000_000  # flush often, so the crash lands between batches
    local._SMALL_BATCH = int(sys.argv[2])  # blocks written as files before packs start

    def chunks():
        rng = random.Random(9)
        for i in range(40):
            if i == 25:
                os._exit(3)  # the process dies in the middle of a put
            yield rng.randbytes(100_000)

    LocalStore(sys.argv[1]).put(chunks())
    """
)


@pytest.mark.parametrize("loose", [16, 2], ids=["loose-files", "packs"])
def test_crash_mid_put_leaves_only_whole_blocks(tmp_path: Path, loose: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _CRASHER, str(tmp_path), str(loose)], cwd=ROOT)
    assert proc.returncode == 3
    assert list((tmp_path / "tmp").iterdir())  # the interrupted batch stayed in tmp/
    store = LocalStore(tmp_path)
    # ... until the store was opened again: the dead writer's temp files are reclaimed.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.pins() == []
    files = list((tmp_path / "blocks").rglob("*.data"))
    keys = store.block_keys()
    assert keys  # whole batches reached their names before the crash
    assert len(keys) > len(files) if loose == 2 else len(keys) == len(files)
    for f in files:
        # Every file on disk is a complete block whose name is the hash of its bytes.
        mh = b"\x12\x20" + hashlib.sha256(f.read_bytes()).digest()
        assert base64.b32encode(mh).decode().rstrip("=").lower() == f.name.removesuffix(".data")
    for key in keys:  # and so is every packed block
        mh = base64.b32decode(key.upper() + "=" * (-len(key) % 8))
        loose_file = tmp_path / "blocks" / key[-3:-1] / f"{key}.data"
        block = store._packs.read(key) if key in store._packs else loose_file.read_bytes()
        assert block is not None and hashlib.sha256(block).digest() == mh[2:]
    assert store.gc().removed_blocks == len(keys)
    assert store.block_keys() == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "packs").iterdir()) == []


def _stream(total: int) -> Iterator[bytes]:
    rng = random.Random(4)
    for _ in range(total // 65_536):
        yield rng.randbytes(65_536)


def test_memory_is_bounded_both_ways(tmp_path: Path) -> None:
    total = 64 * 1024 * 1024
    store = LocalStore(tmp_path)
    tracemalloc.start()
    try:
        cid = store.put(_stream(total))
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        n = 0
        for piece in store.get(cid):
            n += len(piece)
        _, peak_get = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == total
    assert peak_put < 4 * 1024 * 1024, peak_put
    assert peak_get < 4 * 1024 * 1024, peak_get


def test_gc_keeps_pinned_shared_blocks(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    shared = random.Random(8).randbytes(262_144)
    a = store.put(shared + b"a")
    b = store.put(shared + b"b", pin=False)
    store.gc()
    assert read_all(store, a) == shared + b"a"
    with pytest.raises(BlobNotFound):
        read_all(store, b)


def test_gc_refuses_to_run_over_a_corrupt_pinned_node(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(random.Random(12).randbytes(600_000))
    store.put(b"garbage", pin=False)
    root = CidInfo.parse(cid)
    path = block_path(store, root)
    good = path.read_bytes()
    path.write_bytes(b"\x0a" + good[1:])  # looks like a leaf now: its links must not vanish
    with pytest.raises(IntegrityError, match=cid):
        store.gc()
    path.write_bytes(good)
    assert store.gc().removed_blocks == 1
    assert len(read_all(store, cid)) == 600_000


def test_disk_errors_are_storage_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StorageError, match="in the way"):
        LocalStore(tmp_path / "a-file")
    store = LocalStore(tmp_path / "s")
    cid = store.put(b"y" * 10)
    block = next((tmp_path / "s" / "blocks").glob("*/*.data"))
    block.unlink()
    block.mkdir()  # something that cannot be read as a block
    with pytest.raises(StorageError, match="could not read block"):
        b"".join(store.get(cid))
    other = store.put(b"z" * 10, pin=False)
    (tmp_path / "s" / "pins").rename(tmp_path / "s" / "pins.old")
    (tmp_path / "s" / "pins").write_text("in the way")
    with pytest.raises(StorageError, match="could not pin"):
        store.pin(other)
    for call in (store.pins, store.gc, lambda: store.unpin(cid)):
        with pytest.raises(StorageError, match="in the store at"):
            call()


def test_a_hostile_deep_dag_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    from emrshare.errors import WireFormatError
    from emrshare.storage.unixfs import MAX_DAG_DEPTH, DagBuilder

    store = LocalStore(tmp_path)

    def sink(cid: CidInfo, parts: object) -> None:
        store.put_block(cid, b"".join(parts))  # type: ignore[call-overload]

    # A chain of one-link file nodes (valid hashes, sizes that add up), far deeper than
    # any layout writes: without a cap, reading it overflows Python's recursion limit.
    builder = DagBuilder(sink=sink)
    link = builder._leaf(b"deep")
    assert MAX_DAG_DEPTH < 1_100
    for _ in range(1_100):
        link = builder._node([link])
    with pytest.raises(WireFormatError, match="deeper than"):
        b"".join(store.get(link.cid.cid))
    shallow = builder._node([builder._leaf(b"fine")])
    assert b"".join(store.get(shallow.cid.cid)) == b"fine"


def test_attack_deeply_nested_store_marker(tmp_path: Path) -> None:
    """A damaged marker nested 200,000 deep is a typed error, not a RecursionError or a
    segfault (py_ecc raises the recursion limit when web3 is imported)."""
    import emrshare.chain  # noqa: F401 - the import that used to raise the limit

    LocalStore(tmp_path / "s")
    (tmp_path / "s" / "emrshare-store.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(WireFormatError):
        LocalStore(tmp_path / "s")


def test_recursion_limit_is_capped_after_web3() -> None:
    import sys

    import emrshare.chain  # noqa: F401
    from emrshare._recursion import SAFE_RECURSION_LIMIT

    assert sys.getrecursionlimit() <= SAFE_RECURSION_LIMIT
