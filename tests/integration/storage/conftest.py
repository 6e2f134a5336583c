"""A real IPFS RPC daemon for the storage tests: js-ipfs (tools/node_modules), offline.

One daemon per test session (it takes seconds to start); :func:`jsipfs` hands each test
an empty node: every recursive pin removed and the repo garbage-collected first. The
daemon's log tail is attached to the report of every failed test that used it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emrshare.devnet import IpfsDaemon

_DAEMONS: list[IpfsDaemon] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and {"jsipfs", "jsipfs_daemon"} & set(getattr(item, "fixturenames", ())):
        for daemon in _DAEMONS:
            report.sections.append(("js-ipfs log (tail)", daemon.log_tail()))


@pytest.fixture(scope="session")
def jsipfs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsDaemon]:
    """A js-ipfs daemon on free loopback ports, temp repo 0700, shared by the session.

    Stopped with its process group at teardown (also on Ctrl-C); a parent-death signal
    ends it if pytest itself is killed.
    """
    base = tmp_path_factory.mktemp("jsipfs")
    daemon = IpfsDaemon.start(base / "repo", log_path=base / "jsipfs.log")
    _DAEMONS.append(daemon)
    try:
        yield daemon
    finally:
        _DAEMONS.remove(daemon)
        daemon.stop()


def _empty(api_url: str) -> None:
    with httpx.Client(base_url=f"{api_url}/api/v0", timeout=60) as rpc:
        keys = rpc.post("/pin/ls", params={"type": "recursive"}).raise_for_status().json()
        for cid in keys.get("Keys") or {}:
            rpc.post("/pin/rm", params={"arg": cid, "recursive": "true"}).raise_for_status()
        rpc.post("/repo/gc").raise_for_status()


@pytest.fixture
def jsipfs(jsipfs_daemon: IpfsDaemon) -> IpfsDaemon:
    """The session's js-ipfs daemon, emptied for this test (no pins, no blocks)."""
    if not jsipfs_daemon.running:
        pytest.fail(f"the js-ipfs daemon died:\n{jsipfs_daemon.log_tail()}")
    _empty(jsipfs_daemon.api_url)
    return jsipfs_daemon
