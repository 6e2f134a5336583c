"""Fixtures for the relay tests: the relay as a real process (``emrshare relay serve``)
on loopback, against the chain tests' deployment on anvil (and ganache), and patients
with unfunded keys whose every write goes through it.

The relay pays from the outsider's development key (``--dev-account 9``). It is started
per test, after the ``chain`` fixture's snapshot: a relay kept across a snapshot revert
would hold a nonce the chain forgot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from emrshare.chain import ChainClient, Contracts, Relayed
from emrshare.chain.relayed import ForwardingClient, Submitter
from emrshare.devnet.relayd import RelayDaemon
from emrshare.network import NetworkConfig, StoreConfig
from emrshare.relay import HttpRelay
from tests.integration.chain import conftest as _chain
from tests.integration.chain.conftest import OUTSIDER, Net

# The chain tests' deployment and per-test snapshot, as fixtures here too.
base_deployment = _chain.base_deployment
net = _chain.net

RELAYER = OUTSIDER


@dataclass
class Patient:
    """An unfunded patient key and its contracts through ``client`` (a ForwardingClient)."""

    key: bytes
    address: str
    client: ForwardingClient
    contracts: Contracts

    def relayed(self) -> list[Relayed]:
        return list(self.contracts.forwarder.events(Relayed, patient=self.address))


@dataclass
class Relay:
    """A relay process, the network file it reads and the test's chain."""

    daemon: RelayDaemon
    net: Net

    @property
    def url(self) -> str:
        return self.daemon.url

    def post(self, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
        if content is not None:
            return httpx.post(f"{self.url}/v1/relay", content=content, timeout=30)
        return httpx.post(f"{self.url}/v1/relay", json=body, timeout=30)

    def patient(
        self, submitter: Submitter | None = None, *, key: bytes | None = None, **kw: Any
    ) -> Patient:
        """A fresh (or the given) unfunded key, relayed through ``submitter`` (this
        relay by default). ``kw`` goes to :class:`ForwardingClient` (short waits)."""
        key = key or os.urandom(32)
        addr = Account.from_key(key).address
        kw.setdefault("recheck_wait", 1.0)
        client = ForwardingClient(
            ChainClient(self.net.w3),
            key,
            addr,
            self.net.deployment.address_of("PatientForwarder"),
            submitter or HttpRelay(self.url),
            **kw,
        )
        return Patient(key, addr, client, Contracts.from_deployment(client, self.net.deployment))


def network_file(net: Net, directory: Path) -> Path:
    path = directory / "network.json"
    NetworkConfig(
        rpc_url=net.node.rpc_url,
        deployment=net.deployment,
        store=StoreConfig(kind="local", path=str(directory / "store")),
    ).write(path)
    return path


@pytest.fixture
def start_relay(net: Net, tmp_path: Path) -> Iterator[Any]:
    """``start_relay(fault=None, **settings)``: a relay process; all stopped after."""
    started: list[RelayDaemon] = []
    path = network_file(net, tmp_path)

    def start(**settings: Any) -> Relay:
        settings.setdefault("dev_account", RELAYER)
        log = tmp_path / f"relay-{len(started)}.log"
        daemon = RelayDaemon.start(path, log_path=log, **settings)
        started.append(daemon)
        return Relay(daemon, net)

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


@pytest.fixture
def relay(start_relay: Any) -> Relay:
    """An honest relay process."""
    relay: Relay = start_relay()
    return relay
