"""Shared fixtures: real anvil and ganache nodes, the in-process py-evm chain, markers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from emrshare.devnet import DevNode, dev_private_keys

ROOT = Path(__file__).resolve().parent.parent
CHAIN_KINDS = ("anvil", "ganache")
_NODES: dict[str, DevNode] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder: tests/unit → unit, tests/integration → integration."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] == "unit":
            item.add_marker(pytest.mark.unit)
        elif parts and parts[0] == "integration":
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the tail of every node log the failed test used to its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for name in getattr(item, "fixturenames", ()):
            if name in ("devnode", "anvil", "ganache"):
                for node in _NODES.values():
                    report.sections.append((f"{node.kind} log (tail)", node.log_tail()))
                break


def _node(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    node = DevNode.start(kind, log_dir=tmp_path_factory.mktemp(kind))  # type: ignore[arg-type]
    _NODES[kind] = node
    try:
        yield node
    finally:
        _NODES.pop(kind, None)
        node.stop()


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    """A real anvil node on a free loopback port, shared by the session."""
    yield from _node("anvil", tmp_path_factory)


@pytest.fixture(scope="session")
def ganache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNode]:
    """A real ganache node on a free loopback port, shared by the session."""
    yield from _node("ganache", tmp_path_factory)


@pytest.fixture(scope="session", params=CHAIN_KINDS)
def devnode(request: pytest.FixtureRequest) -> DevNode:
    """Each chain test runs once on anvil and once on ganache."""
    node: DevNode = request.getfixturevalue(request.param)
    return node


@pytest.fixture
def chain(devnode: DevNode) -> Iterator[DevNode]:
    """``devnode`` with its state snapshotted before the test and reverted after it."""
    snap = devnode.rpc("evm_snapshot")
    try:
        yield devnode
    finally:
        devnode.rpc("evm_revert", [snap])


@pytest.fixture
def w3(chain: DevNode) -> Web3:
    """A web3 client for the test's node."""
    return Web3(Web3.HTTPProvider(chain.rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="session")
def dev_keys() -> list[bytes]:
    """Private keys of the ten funded development accounts (same on anvil and ganache)."""
    return dev_private_keys(10)


@pytest.fixture
def evm_w3() -> Web3:
    """An in-process py-evm chain (eth-tester): no sockets, for pure-Python cases."""
    from web3 import EthereumTesterProvider

    return Web3(EthereumTesterProvider())


@pytest.fixture(scope="session")
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
