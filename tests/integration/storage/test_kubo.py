"""KuboStore over real HTTP on loopback, against a real IPFS RPC daemon: js-ipfs.

The daemon (conftest.py, emrshare.ipfsd) is js-ipfs 0.66.1 run offline; the whole shared
BlobStore suite runs against it. Faults (corrupt blocks, wrong CIDs, slow answers) are
injected by ``FaultProxy`` (kubo_double.py), which forwards to the same daemon. With
EMRSHARE_KUBO_API set, ``test_real_daemon`` also runs against that (a real Kubo).
"""

from __future__ import annotations

import io
import json
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
from emrshare.ipfsd import IpfsDaemon
from emrshare.storage import (
    DEFAULT_PROFILE,
    UNIXFS_V1_2025,
    BlobStore,
    KuboStore,
    LocalStore,
    ReplicatedStore,
    UnixfsProfile,
    compute_cid,
    export_car,
    import_car,
    read_all,
)
from emrshare.storage.cid import CidInfo
from tests.integration.storage.kubo_double import FaultProxy, Params, Served, free_port
from tests.unit.storage.contract import BlobStoreContract


@pytest.fixture
def proxy(jsipfs: IpfsDaemon) -> Iterator[tuple[FaultProxy, Served]]:
    app = FaultProxy(jsipfs.api_url)
    served = Served(app).start()
    try:
        yield app, served
    finally:
        served.stop()


class TestKuboStoreDefault(BlobStoreContract):
    @pytest.fixture
    def store(self, jsipfs: IpfsDaemon) -> Iterator[BlobStore]:
        with KuboStore(jsipfs.api_url, profile=DEFAULT_PROFILE) as store:
            yield store


class TestKuboStoreV1_2025(BlobStoreContract):
    @pytest.fixture
    def store(self, jsipfs: IpfsDaemon) -> Iterator[BlobStore]:
        with KuboStore(jsipfs.api_url, profile=UNIXFS_V1_2025) as store:
            yield store


class TestReplicatedLocalAndKubo(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path, jsipfs: IpfsDaemon) -> Iterator[BlobStore]:
        with KuboStore(jsipfs.api_url) as kubo:
            yield ReplicatedStore([LocalStore(tmp_path / "local"), kubo], min_pins=2)


def _refs(api_url: str, cid: str) -> list[str]:
    """The node's own list of the direct children of ``cid`` (js-ipfs ``refs``)."""
    answer = httpx.post(f"{api_url}/api/v0/refs", params={"arg": cid}).raise_for_status()
    return [json.loads(line)["Ref"] for line in answer.text.splitlines() if line.strip()]


def _corrupt(target: str, at: int | None = None) -> Any:
    """A rewrite that flips one byte of the answer for CID ``target`` (any spelling)."""
    want = CidInfo.parse(target)

    def rewrite(params: Params, body: bytes) -> bytes:
        if CidInfo.parse(dict(params)["arg"]) != want:
            return body
        raw = bytearray(body)
        raw[len(raw) // 2 if at is None else at] ^= 0xFF
        return bytes(raw)

    return rewrite


def test_every_call_is_a_post_with_explicit_profile_flags(
    proxy: tuple[FaultProxy, Served],
) -> None:
    app, served = proxy
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
    assert params["cid-base"] == "base32"  # js-ipfs would answer base58btc otherwise
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
    assert "cid-base" not in params  # v0 CIDs have one spelling; js-ipfs refuses others


def test_daemon_rejects_get_like_kubo(jsipfs: IpfsDaemon) -> None:
    response = httpx.get(f"{jsipfs.api_url}/api/v0/pin/ls")
    assert response.status_code == 405


def test_corrupt_block_on_node_is_detected(proxy: tuple[FaultProxy, Served]) -> None:
    app, served = proxy
    with KuboStore(served.url) as store:
        data = random.Random(2).randbytes(4 * 262_144)
        cid = store.put(data)
        leaf = _refs(app.upstream, cid)[3]
        app.rewrite["block/get"] = _corrupt(leaf, at=4)
        with pytest.raises(IntegrityError) as err:
            read_all(store, cid)
        assert CidInfo.parse(err.value.cid) == CidInfo.parse(leaf)


def test_node_ignoring_max_file_links_is_refused(proxy: tuple[FaultProxy, Served]) -> None:
    """js-ipfs, like Kubo < 0.35, ignores max-file-links and keeps 174 links per node: the
    DAG differs, and put() says so instead of returning a CID of the wrong profile."""
    app, served = proxy
    wide = UnixfsProfile("wide", 1, True, 1024, 200)
    data = random.Random(3).randbytes(1024 * 300)  # 300 chunks: 200 + 100 links, not 174 + 126
    with (
        KuboStore(served.url, profile=wide) as store,
        pytest.raises(IntegrityError, match="wide") as err,
    ):
        store.put(data)
    assert "max-file-links needs Kubo >= 0.35" in str(err.value)
    assert dict(app.requests[0].params)["max-file-links"] == "200"  # it was sent
    # Up to 174 chunks both DAGs are one node: unixfs-v1-2025 works on js-ipfs to 174 MiB.
    with KuboStore(served.url, profile=wide) as store:
        small = random.Random(4).randbytes(1024 * 174)
        assert store.put(small) == compute_cid(small, wide)


def test_node_answering_a_wrong_cid_is_refused(proxy: tuple[FaultProxy, Served]) -> None:
    app, served = proxy
    other = compute_cid(b"something else")

    def wrong_hash(params: Params, body: bytes) -> bytes:
        line = json.loads(body.splitlines()[-1])
        return json.dumps({**line, "Hash": other}).encode() + b"\n"

    app.rewrite["add"] = wrong_hash
    with KuboStore(served.url) as store, pytest.raises(IntegrityError) as err:
        store.put(b"the real record")
    assert err.value.cid == other


def test_not_found_and_not_pinned(jsipfs: IpfsDaemon) -> None:
    with KuboStore(jsipfs.api_url) as store:
        ghost = CidInfo.for_block(b"ghost", 0x70, 0).cid
        with pytest.raises(BlobNotFound) as err:
            read_all(store, ghost)
        assert err.value.cid == ghost
        with pytest.raises(BlobNotFound):
            b"".join(store.cat(ghost))
        store.unpin(ghost)  # not pinned: fine
        assert store.has(ghost) is False


def test_wrong_endpoint_is_a_configuration_error(jsipfs: IpfsDaemon) -> None:
    with KuboStore(jsipfs.api_url + "/not-kubo") as store, pytest.raises(ConfigurationError):
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


def test_retry_reaches_a_node_that_comes_up(jsipfs: IpfsDaemon) -> None:
    port = free_port()
    served = Served(FaultProxy(jsipfs.api_url), port=port)
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


def test_timeout_is_store_unavailable(proxy: tuple[FaultProxy, Served]) -> None:
    app, served = proxy
    app.delay = 2.0
    with (
        KuboStore(served.url, timeout=0.3) as store,
        pytest.raises(StoreUnavailable, match="timed out"),
    ):
        store.pins()


def test_car_moves_between_local_store_and_kubo(tmp_path: Path, jsipfs: IpfsDaemon) -> None:
    local = LocalStore(tmp_path / "local")
    data = random.Random(5).randbytes(900_000)
    cid = local.put(data)
    car = io.BytesIO()
    export_car(local, [cid], car)
    with KuboStore(jsipfs.api_url) as kubo:
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


def test_replicated_survives_a_dead_kubo(tmp_path: Path, jsipfs: IpfsDaemon) -> None:
    dead = KuboStore(f"http://127.0.0.1:{free_port()}", retries=0)
    with KuboStore(jsipfs.api_url) as live, dead:
        rep = ReplicatedStore(
            [LocalStore(tmp_path / "l"), dead, live], min_pins=2, names=["local", "dead", "kubo"]
        )
        report = rep.put_with_report(b"record ciphertext")
        assert report.stored == ("local", "kubo")
        assert "StoreUnavailable" in report.failures["dead"]
        assert read_all(rep, report.cid) == b"record ciphertext"


KUBO_API = os.environ.get("EMRSHARE_KUBO_API")


@pytest.fixture(params=["js-ipfs", "kubo"])
def real_api(request: pytest.FixtureRequest) -> str:
    """The js-ipfs daemon, and a real Kubo when EMRSHARE_KUBO_API names one."""
    if request.param == "kubo":
        if not KUBO_API:
            pytest.skip("set EMRSHARE_KUBO_API=http://127.0.0.1:5001 to test a real Kubo")
        return KUBO_API
    daemon: IpfsDaemon = request.getfixturevalue("jsipfs")
    return daemon.api_url


@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, UNIXFS_V1_2025], ids=lambda p: p.name)
def test_real_daemon(tmp_path: Path, real_api: str, profile: UnixfsProfile) -> None:
    data = random.Random(6).randbytes(175 * 262_144 + 99)  # 176 chunks of 256 KiB, 44 of 1 MiB
    with KuboStore(real_api, profile=profile) as kubo:
        cid = kubo.put(data)  # put() itself checks Kubo's CID against ours
        assert cid == compute_cid(data, profile)
        assert read_all(kubo, cid, max_size=len(data)) == data
        assert b"".join(kubo.cat(cid)) == data
        assert kubo.stat(cid).size == len(data)
        car = io.BytesIO()
        kubo.export_car(cid, car)
        car.seek(0)
        local = LocalStore(tmp_path / "from-kubo")
        assert import_car(local, car) == [cid]
        kubo.unpin(cid)


def test_block_stat_and_gc_over_rpc(proxy: tuple[FaultProxy, Served]) -> None:
    app, served = proxy
    with KuboStore(served.url) as store:
        cid = store.put(b"x" * 300_000, pin=False)
        assert store.block_stat(cid) == len(store.block_get(CidInfo.parse(cid)))
        assert store.gc().removed_blocks == 3  # root + two leaves
        assert not store.has(cid)
    assert [r.command for r in app.requests][-2:] == ["repo/gc", "block/stat"]


def test_cat_is_verified_before_release(proxy: tuple[FaultProxy, Served]) -> None:
    app, served = proxy
    data = random.Random(9).randbytes(3 * 262_144 + 5)
    with KuboStore(served.url) as store:
        cid = store.put(data)
        assert b"".join(store.cat(cid)) == data
        assert [r.command for r in app.requests][-1] == "cat"
        # A DAG from another profile cannot be recomputed: cat falls back to block reads.
        with KuboStore(served.url, profile=UNIXFS_V1_2025) as v1_store:
            other = v1_store.put(data)
        assert b"".join(store.cat(other)) == data
        assert [r.command for r in app.requests][-1] == "block/get"
        # A node that serves corrupt content: cat yields nothing of it.
        leaf = _refs(app.upstream, cid)[1]
        app.rewrite["cat"] = _corrupt(cid, at=262_144 + 1000)  # a byte of the second chunk
        app.rewrite["block/get"] = _corrupt(leaf)  # inside the chunk: parses, mismatches
        app.requests.clear()
        with pytest.raises(IntegrityError) as err:
            b"".join(store.cat(cid))
        assert CidInfo.parse(err.value.cid) == CidInfo.parse(leaf)
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
