"""KuboStore over real HTTP on loopback, against the labelled Kubo RPC TEST DOUBLE.

The double (kubo_double.py) is not Kubo: it answers as the Kubo RPC reference documents.
``test_real_kubo_daemon`` runs against a real daemon when EMRSHARE_KUBO_API is set.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emrshare.errors import (
    BlobNotFound,
    ConfigurationError,
    IntegrityError,
    StorageError,
    StoreUnavailable,
)
from emrshare.storage import (
    DEFAULT_PROFILE,
    UNIXFS_V1_2025,
    BlobStore,
    KuboStore,
    LocalStore,
    ReplicatedStore,
    compute_cid,
    export_car,
    import_car,
    read_all,
)
from emrshare.storage.cid import CidInfo
from emrshare.storage.unixfs import decode_dag_pb
from tests.integration.storage.kubo_double import KuboDouble, Served, free_port
from tests.unit.storage.contract import BlobStoreContract


@pytest.fixture
def double(tmp_path: Path) -> Iterator[tuple[KuboDouble, Served]]:
    app = KuboDouble(tmp_path / "kubo-double")
    served = Served(app).start()
    try:
        yield app, served
    finally:
        served.stop()


class TestKuboStoreDefault(BlobStoreContract):
    @pytest.fixture
    def store(self, double: tuple[KuboDouble, Served]) -> Iterator[BlobStore]:
        with KuboStore(double[1].url, profile=DEFAULT_PROFILE) as store:
            yield store


class TestKuboStoreV1_2025(BlobStoreContract):
    @pytest.fixture
    def store(self, double: tuple[KuboDouble, Served]) -> Iterator[BlobStore]:
        with KuboStore(double[1].url, profile=UNIXFS_V1_2025) as store:
            yield store


class TestReplicatedLocalAndKubo(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path, double: tuple[KuboDouble, Served]) -> Iterator[BlobStore]:
        with KuboStore(double[1].url) as kubo:
            yield ReplicatedStore([LocalStore(tmp_path / "local"), kubo], min_pins=2)


def test_every_call_is_a_post_with_explicit_profile_flags(
    double: tuple[KuboDouble, Served],
) -> None:
    app, served = double
    with KuboStore(served.url, profile=UNIXFS_V1_2025) as store:
        cid = store.put(random.Random(1).randbytes(3 << 20))
        store.stat(cid)
        store.pin(cid)
        store.unpin(cid)
    assert {r.method for r in app.requests} == {"POST"}
    add = next(r for r in app.requests if r.command == "add")
    params = dict(add.params)
    assert params["cid-version"] == "1"
    assert params["raw-leaves"] == "true"
    assert params["chunker"] == "size-1048576"
    assert params["max-file-links"] == "1024"
    assert params["pin"] == "true"
    commands = [r.command for r in app.requests]
    assert commands[:2] == ["add", "block/get"]
    assert "pin/add" in commands
    assert "pin/rm" in commands
    with KuboStore(served.url) as store:
        store.put(b"default")
    params = dict(app.requests[-1].params)
    assert (params["cid-version"], params["raw-leaves"], params["chunker"]) == (
        "0",
        "false",
        "size-262144",
    )
    assert "max-file-links" not in params


def test_double_rejects_get_like_kubo(double: tuple[KuboDouble, Served]) -> None:
    response = httpx.get(f"{double[1].url}/api/v0/pin/ls")
    assert response.status_code == 405


def test_corrupt_block_on_node_is_detected(double: tuple[KuboDouble, Served]) -> None:
    app, served = double
    with KuboStore(served.url) as store:
        data = random.Random(2).randbytes(4 * 262_144)
        cid = store.put(data)
        leaf = decode_dag_pb(app.store.get_block(CidInfo.parse(cid))).links[3][0]
        path = app.store._block_path(leaf)
        path.write_bytes(b"evil" + path.read_bytes()[4:])
        with pytest.raises(IntegrityError) as err:
            read_all(store, cid)
        assert err.value.cid == str(leaf)


def test_node_answering_a_wrong_cid_is_refused(double: tuple[KuboDouble, Served]) -> None:
    app, served = double
    # A node that ignores max-file-links (Kubo < 0.35) builds a different DAG.
    from emrshare.storage import Profile

    wide = Profile("wide", 1, True, 1024, 200)
    with KuboStore(served.url, profile=wide) as store:
        app.requests.clear()
        store.put(random.Random(3).randbytes(1024 * 300))  # honoured: fine
        wide_params = dict(app.requests[0].params)
        assert wide_params["max-file-links"] == "200"
    real_store_for = app._store_for
    app._store_for = lambda p: real_store_for({k: v for k, v in p.items() if k != "max-file-links"})  # type: ignore[method-assign]
    with KuboStore(served.url, profile=wide) as store, pytest.raises(IntegrityError, match="wide"):
        store.put(random.Random(3).randbytes(1024 * 300))


def test_not_found_and_not_pinned(double: tuple[KuboDouble, Served]) -> None:
    with KuboStore(double[1].url) as store:
        ghost = CidInfo.for_block(b"ghost", 0x70, 0).cid
        with pytest.raises(BlobNotFound) as err:
            read_all(store, ghost)
        assert err.value.cid == ghost
        store.unpin(ghost)  # not pinned: fine
        assert store.has(ghost) is False


def test_wrong_endpoint_is_a_configuration_error(double: tuple[KuboDouble, Served]) -> None:
    with KuboStore(double[1].url + "/not-kubo") as store, pytest.raises(ConfigurationError):
        store.put(b"x")


def test_connection_refused_is_retried_then_unavailable() -> None:
    attempts: list[int] = []
    sleeps: list[float] = []
    store = KuboStore(
        f"http://127.0.0.1:{free_port()}",
        retries=3,
        backoff=0.01,
        on_retry=lambda n, exc: attempts.append(n),
        sleep=sleeps.append,
    )
    with store, pytest.raises(StoreUnavailable, match="4 attempts"):
        store.put(b"nobody home")
    assert attempts == [1, 2, 3]
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff


def test_retry_reaches_a_node_that_comes_up(tmp_path: Path) -> None:
    port = free_port()
    served = Served(KuboDouble(tmp_path / "late"), port=port)
    store = KuboStore(
        served.url,
        retries=2,
        backoff=0.0,
        on_retry=lambda n, e: served.start() if n == 1 else None,
    )
    try:
        with store:
            cid = store.put(b"hello after retry")
            assert read_all(store, cid) == b"hello after retry"
    finally:
        served.stop()


def test_timeout_is_store_unavailable(double: tuple[KuboDouble, Served]) -> None:
    app, served = double
    app.delay = 2.0
    with (
        KuboStore(served.url, timeout=0.3) as store,
        pytest.raises(StoreUnavailable, match="timed out"),
    ):
        store.pins()


def test_car_moves_between_local_store_and_kubo(
    tmp_path: Path, double: tuple[KuboDouble, Served]
) -> None:
    local = LocalStore(tmp_path / "local")
    data = random.Random(5).randbytes(900_000)
    cid = local.put(data)
    car = io.BytesIO()
    export_car(local, [cid], car)
    with KuboStore(double[1].url) as kubo:
        car.seek(0)
        assert kubo.import_car(car) == [cid]
        assert kubo.stat(cid).pinned
        assert read_all(kubo, cid) == data
        back = io.BytesIO()
        kubo.export_car(cid, back)
    other = LocalStore(tmp_path / "other")
    back.seek(0)
    assert import_car(other, back) == [cid]
    assert read_all(other, cid) == data


def test_replicated_survives_a_dead_kubo(tmp_path: Path, double: tuple[KuboDouble, Served]) -> None:
    dead = KuboStore(f"http://127.0.0.1:{free_port()}", retries=0)
    with KuboStore(double[1].url) as live, dead:
        rep = ReplicatedStore(
            [LocalStore(tmp_path / "l"), dead, live], min_pins=2, names=["local", "dead", "kubo"]
        )
        report = rep.put_with_report(b"record ciphertext")
        assert report.stored == ("local", "kubo")
        assert "StoreUnavailable" in report.failures["dead"]
        assert read_all(rep, report.cid) == b"record ciphertext"


KUBO_API = os.environ.get("EMRSHARE_KUBO_API")


@pytest.mark.skipif(
    not KUBO_API, reason="set EMRSHARE_KUBO_API=http://127.0.0.1:5001 to test a real Kubo"
)
@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, UNIXFS_V1_2025], ids=lambda p: p.name)
def test_real_kubo_daemon(tmp_path: Path, profile: object) -> None:
    assert KUBO_API is not None
    data = random.Random(6).randbytes(175 * 262_144 + 99)
    with KuboStore(KUBO_API, profile=profile) as kubo:  # type: ignore[arg-type]
        cid = kubo.put(data)  # put() itself checks Kubo's CID against ours
        assert cid == compute_cid(data, profile)  # type: ignore[arg-type]
        assert read_all(kubo, cid, max_size=len(data)) == data
        assert b"".join(kubo.cat(cid)) == data
        assert kubo.stat(cid).size == len(data)
        car = io.BytesIO()
        kubo.export_car(cid, car)
        car.seek(0)
        local = LocalStore(tmp_path / "from-kubo")
        assert import_car(local, car) == [cid]
        kubo.unpin(cid)


def test_block_stat_and_gc_over_rpc(double: tuple[KuboDouble, Served]) -> None:
    app, served = double
    with KuboStore(served.url) as store:
        cid = store.put(b"x" * 300_000, pin=False)
        assert store.block_stat(cid) == len(app.store.get_block(CidInfo.parse(cid)))
        assert store.gc().removed_blocks == 3  # root + two leaves
        assert not store.has(cid)
    assert [r.command for r in app.requests][-2:] == ["repo/gc", "block/stat"]


def test_cat_is_verified_before_release(double: tuple[KuboDouble, Served]) -> None:
    app, served = double
    data = random.Random(9).randbytes(3 * 262_144 + 5)
    with KuboStore(served.url) as store:
        cid = store.put(data)
        assert b"".join(store.cat(cid)) == data
        assert [r.command for r in app.requests][-1] == "cat"
        # A DAG from another profile cannot be recomputed: cat falls back to block reads.
        other = LocalStore(app.root, UNIXFS_V1_2025).put(data)
        assert b"".join(store.cat(other)) == data
        assert [r.command for r in app.requests][-1] == "block/get"
        # A node that serves corrupt content: cat yields nothing of it.
        leaf = decode_dag_pb(app.store.get_block(CidInfo.parse(cid))).links[1][0]
        path = app.store._block_path(leaf)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF  # inside the chunk: still parses, no longer matches
        path.write_bytes(bytes(raw))
        app.requests.clear()
        with pytest.raises(IntegrityError) as err:
            b"".join(store.cat(cid))
        assert err.value.cid == str(leaf)
        assert [r.command for r in app.requests][:2] == ["cat", "block/get"]


async def _not_kubo(scope: Any, receive: Any, send: Any) -> None:
    """An HTTP server that answers 200 with HTML to everything: reachable, but not Kubo."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"<html>hello</html>"})


def test_an_answer_that_is_not_kubo_is_a_storage_error() -> None:
    served = Served(_not_kubo).start()
    try:
        with KuboStore(served.url) as store:
            cid = compute_cid(b"x")
            for call in (store.pins, lambda: store.block_stat(cid), store.gc):
                with pytest.raises(StorageError, match="not Kubo's"):
                    call()
            with pytest.raises(StorageError, match="not Kubo's"):
                store.import_car(io.BytesIO(b""))
    finally:
        served.stop()


def test_repr_and_messages_hide_the_api_password() -> None:
    store = KuboStore(f"http://alice:s3cret@127.0.0.1:{free_port()}", retries=0)
    with store:
        assert "s3cret" not in repr(store)
        with pytest.raises(StoreUnavailable) as info:
            store.pins()
    assert "s3cret" not in str(info.value)
    assert "alice:***@127.0.0.1" in str(info.value)
