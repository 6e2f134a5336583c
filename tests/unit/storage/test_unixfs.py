"""UnixFS DAGs: CIDs against Kubo's rules (``ipfs_cid`` oracle) and the balanced layout.

``ipfs_cid`` (Debian package ipfs-cid) is an independent implementation of ``ipfs add``'s
defaults; it runs as a subprocess (no sockets).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrshare.storage import DEFAULT_PROFILE, UNIXFS_V1_2025, LocalStore, UnixfsProfile, compute_cid
from emrshare.storage.cid import DAG_PB, RAW, CidInfo
from emrshare.storage.unixfs import decode_dag_pb, file_size_of_root

CHUNK = 262_144
IPFS_CID = shutil.which("ipfs_cid")
needs_oracle = pytest.mark.skipif(
    IPFS_CID is None, reason="ipfs_cid (Debian package ipfs-cid) is not installed: make setup"
)


def write_deterministic(path: Path, size: int, seed: int = 1, zeros: bool = False) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 1 << 20)
            fh.write(bytes(n) if zeros else rng.randbytes(n))
            left -= n


def oracle(path: Path) -> dict[str, str]:
    assert IPFS_CID is not None
    out = subprocess.run([IPFS_CID, str(path)], capture_output=True, check=True, text=True)
    result: dict[str, str] = json.loads(out.stdout)
    return result


SIZES = [
    0,
    1,
    2,
    1000,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK,
    174 * CHUNK - 1,
    174 * CHUNK,  # one full node of 174 leaves
    174 * CHUNK + 1,  # the tree grows a level
    175 * CHUNK + 12_345,
    349 * CHUNK + 7,  # three depth-1 subtrees under the root
]


@needs_oracle
@pytest.mark.parametrize("size", SIZES)
def test_default_profile_matches_ipfs_cid(tmp_path: Path, size: int) -> None:
    path = tmp_path / "input.bin"
    write_deterministic(path, size, seed=size)
    expected = oracle(path)
    with open(path, "rb") as fh:
        cid = compute_cid(fh)
    assert cid == expected["CIDv0"]
    assert CidInfo.parse(cid).v1().cid == expected["CIDv1"]


@needs_oracle
def test_repeated_chunks_match_ipfs_cid(tmp_path: Path) -> None:
    path = tmp_path / "zeros.bin"
    write_deterministic(path, 200 * CHUNK + 5, zeros=True)
    with open(path, "rb") as fh:
        assert compute_cid(fh) == oracle(path)["CIDv0"]


@needs_oracle
@pytest.mark.slow
def test_100_mb_matches_ipfs_cid_and_store(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    size = 100 * 1024 * 1024 + 4321
    write_deterministic(path, size, seed=100)
    expected = oracle(path)["CIDv0"]
    store = LocalStore(tmp_path / "store")
    with open(path, "rb") as fh:
        cid = store.put(fh)
    assert cid == expected
    assert store.stat(cid).size == size
    got = 0
    with open(path, "rb") as fh:
        for piece in store.get(cid):
            assert fh.read(len(piece)) == piece
            got += len(piece)
    assert got == size


def test_single_chunk_v1_2025_is_the_raw_block() -> None:
    data = random.Random(3).randbytes(UNIXFS_V1_2025.chunk_size)
    info = CidInfo.parse(compute_cid(data, UNIXFS_V1_2025))
    assert (info.version, info.codec) == (1, RAW)
    assert info == CidInfo.for_block(data, RAW, 1)
    empty = compute_cid(b"", UNIXFS_V1_2025)
    assert empty == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_v1_2025_root_links_raw_1mib_leaves(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", UNIXFS_V1_2025)
    size = 5 * (1 << 20) + 17
    data = random.Random(5).randbytes(size)
    root = CidInfo.parse(store.put(data))
    assert (root.version, root.codec) == (1, DAG_PB)
    node = decode_dag_pb(store.get_block(root))
    assert len(node.links) == 6
    for i, (child, tsize) in enumerate(node.links):
        assert (child.version, child.codec) == (1, RAW)
        piece = data[i << 20 : (i + 1) << 20]
        assert child == CidInfo.for_block(piece, RAW, 1)
        assert tsize == len(piece)
    assert file_size_of_root(root, store.get_block(root)) == size


@pytest.mark.parametrize(("leaves", "fanout"), [(2, 2), (3, 2), (5, 2), (9, 3), (10, 3), (28, 3)])
def test_balanced_layout_shape(tmp_path: Path, leaves: int, fanout: int) -> None:
    """All leaves at one depth = ceil(log_fanout(leaves)); no node over ``fanout`` links."""
    profile = UnixfsProfile("shape", 1, True, 1, fanout)
    store = LocalStore(tmp_path / "s", profile)
    data = bytes(range(leaves))
    root = CidInfo.parse(store.put(data))
    depths: list[int] = []
    order: list[bytes] = []

    def walk(cid: CidInfo, depth: int) -> None:
        block = store.get_block(cid)
        if cid.codec == RAW:
            depths.append(depth)
            order.append(block)
            return
        links = decode_dag_pb(block).links
        assert 1 <= len(links) <= fanout
        for child, _ in links:
            walk(child, depth + 1)

    walk(root, 0)
    assert b"".join(order) == data
    assert set(depths) == {math.ceil(math.log(leaves, fanout) - 1e-9)}


def test_default_profile_constants() -> None:
    assert (DEFAULT_PROFILE.cid_version, DEFAULT_PROFILE.raw_leaves) == (0, False)
    assert (DEFAULT_PROFILE.chunk_size, DEFAULT_PROFILE.max_links) == (262_144, 174)
    assert DEFAULT_PROFILE.chunker == "size-262144"
    assert (UNIXFS_V1_2025.cid_version, UNIXFS_V1_2025.raw_leaves) == (1, True)
    assert (UNIXFS_V1_2025.chunk_size, UNIXFS_V1_2025.max_links) == (1 << 20, 1024)


@given(
    data=st.binary(min_size=0, max_size=40_000),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=12),
)
@settings(max_examples=60, deadline=None)
def test_cid_does_not_depend_on_how_input_arrives(data: bytes, cuts: list[int]) -> None:
    profile = UnixfsProfile("small", 1, True, 1000, 4)
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    assert compute_cid(iter(pieces), profile) == compute_cid(data, profile)
    assert compute_cid(io.BytesIO(data), profile) == compute_cid(data, profile)
