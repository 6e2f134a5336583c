"""ReplicatedStore: k-of-n writes with failure reports, verified reads that fail over."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from emrshare.errors import (
    BlobNotFound,
    ConfigurationError,
    IntegrityError,
    ReplicationError,
)
from emrshare.storage import UNIXFS_V1_2025, LocalStore, ReplicatedStore, read_all
from emrshare.storage.cid import CidInfo
from emrshare.storage.unixfs import decode_dag_pb


def broken(store: LocalStore) -> LocalStore:
    """Make a real store unable to write (its temp dir is replaced by a file)."""
    (store.path / "tmp").rmdir()
    (store.path / "tmp").write_text("disk trouble")
    return store


def test_k_of_n_write_reports_failures(tmp_path: Path) -> None:
    a, b, c = (LocalStore(tmp_path / n) for n in "abc")
    rep = ReplicatedStore([a, broken(b), c], min_pins=2, names=["a", "b", "c"])
    data = random.Random(1).randbytes(500_000)
    report = rep.put_with_report(io.BytesIO(data))
    assert report.stored == ("a", "c")
    assert set(report.failures) == {"b"}
    assert "could not write" in report.failures["b"]
    assert rep.last_report == report
    assert a.stat(report.cid).pinned
    assert c.stat(report.cid).pinned
    assert read_all(rep, report.cid) == data


def test_below_k_raises_with_failures(tmp_path: Path) -> None:
    a, b, c = (LocalStore(tmp_path / n) for n in "abc")
    rep = ReplicatedStore([a, broken(b), broken(c)], min_pins=2, names=["a", "b", "c"])
    with pytest.raises(ReplicationError) as err:
        rep.put(b"record")
    assert (err.value.needed, err.value.got) == (2, 1)
    assert set(err.value.failures) == {"b", "c"}


def test_profile_mismatch_counts_as_failure(tmp_path: Path) -> None:
    a = LocalStore(tmp_path / "a")
    b = LocalStore(tmp_path / "b", UNIXFS_V1_2025)
    c = LocalStore(tmp_path / "c")
    rep = ReplicatedStore([a, b, c], min_pins=2, names=["a", "b", "c"])
    report = rep.put_with_report(random.Random(2).randbytes(300_000))
    assert report.stored == ("a", "c")
    assert "profile mismatch" in report.failures["b"]


def test_read_fails_over_mid_stream_and_stays_verified(tmp_path: Path) -> None:
    a, b = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    rep = ReplicatedStore([a, b], min_pins=2, names=["a", "b"])
    data = random.Random(3).randbytes(5 * 262_144)
    cid = rep.put(data)
    # Corrupt the third chunk on replica a only: reading resumes on b at that offset.
    leaf = decode_dag_pb(a.get_block(CidInfo.parse(cid))).links[2][0]
    path = a._block_path(leaf)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert read_all(rep, cid) == data
    # Corrupt on both: an IntegrityError, never bad bytes.
    path_b = b._block_path(leaf)
    path_b.write_bytes(path_b.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        read_all(rep, cid)


def test_missing_everywhere_is_not_found(tmp_path: Path) -> None:
    rep = ReplicatedStore([LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")], min_pins=1)
    only_b = rep.replicas[1].put(b"only on b")
    assert read_all(rep, only_b) == b"only on b"
    ghost = CidInfo.for_block(b"ghost", 0x70, 0).cid
    with pytest.raises(BlobNotFound):
        read_all(rep, ghost)


@pytest.mark.parametrize(("k", "names"), [(0, None), (3, None), (1, ["x", "x"])])
def test_configuration_is_checked(tmp_path: Path, k: int, names: list[str] | None) -> None:
    stores = [LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")]
    with pytest.raises(ConfigurationError):
        ReplicatedStore(stores, min_pins=k, names=names)
