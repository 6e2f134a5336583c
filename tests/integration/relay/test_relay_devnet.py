"""The devnet's relay: `devnet up` starts one (development account 8) and writes its URL
into network.json, `devnet status` checks it, `devnet down` stops it; and
``LocalNetwork(relay=True)`` serves one in-process. Through either, an unfunded patient
registers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psutil
import pytest
from eth_account import Account

from emrshare.chain import Contracts, ProfileRegistered
from emrshare.chain.relayed import ForwardingClient
from emrshare.devnet import LocalNetwork
from emrshare.network import Network
from emrshare.relay import HttpRelay
from tests.cli_support import run_cli as _cli


def _register_unfunded(net: Network) -> str:
    assert net.relay_url is not None
    key = os.urandom(32)
    addr = Account.from_key(key).address
    fwd = net.deployment.address_of("PatientForwarder")
    client = ForwardingClient(net.chain, key, addr, fwd, HttpRelay(net.relay_url))
    mine = Contracts.from_deployment(client, net.deployment)
    r = mine.profiles.register(os.urandom(33), os.urandom(32))
    assert r.event(ProfileRegistered).patient == addr
    assert net.w3.eth.get_balance(addr) == 0
    return str(net.w3.eth.get_transaction(r.tx_hash)["from"])


def test_devnet_up_runs_a_relay_and_down_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "1", "--threshold", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "pays patients' gas" in up.stdout
        pids = json.loads((data_dir / "devnet" / "pids.json").read_text())
        url = str(pids["relay"]["url"])
        network = json.loads((data_dir / "network.json").read_text())
        assert network["relay"] == url
        status = json.loads(_cli(data_dir, "--json", "devnet", "status").stdout)
        relay = next(p for p in status["processes"] if p["name"] == "relay")
        assert relay["alive"] and relay["healthy"]
        health = httpx.get(f"{url}/v1/health", timeout=10).json()
        assert health["relayer"] == Account.from_key(_dev_key(8)).address
        with Network.from_config(data_dir / "network.json") as net:
            assert net.relay_url == url
            assert _register_unfunded(net) == health["relayer"]
        down = _cli(data_dir, "devnet", "down")
        assert down.returncode == 0 and "relay" in down.stdout
        pid = int(pids["relay"]["pid"])
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v1/health", timeout=2)
    finally:
        _cli(data_dir, "devnet", "down")


def _dev_key(i: int) -> bytes:
    from emrshare.devnet import dev_private_keys

    return dev_private_keys(i + 1)[i]


def test_a_local_network_serves_a_relay_in_process(tmp_path: Path) -> None:
    with LocalNetwork.start(tmp_path / "net", proxies=1, threshold=1, relay=True) as net:
        url = net.relay_url
        assert url is not None and url.startswith("http://127.0.0.1:")
        relayer = _register_unfunded(net)
        assert relayer not in {Account.from_key(k).address for k in net.dev_keys}
        assert httpx.get(f"{url}/v1/health", timeout=10).json()["relayed"] == 1
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/health", timeout=2)
    with LocalNetwork.start(tmp_path / "net2", proxies=1, threshold=1) as plain:
        assert plain.relay_url is None
