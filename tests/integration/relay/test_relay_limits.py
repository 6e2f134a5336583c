"""The relay's global in-flight cap, on a real relay process whose send is held (anvil's
automine off), and ``relay serve``'s one-line errors for a missing or bad key."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli_support import run_cli
from tests.integration.relay.conftest import RELAYER, Net, Patient, Relay, network_file

pytestmark = pytest.mark.parametrize("devnode", ["anvil"], indirect=True)


def _register_body(me: Patient) -> dict[str, Any]:
    data = me.contracts.profiles._encode("register", (os.urandom(33), os.urandom(32)))
    req, sig = me.client.sign_request(me.contracts.profiles.address, data)
    return {"request": req.to_json(), "signature": "0x" + sig.hex()}


def test_requests_over_the_in_flight_cap_are_429(start_relay: Any, net: Net) -> None:
    relay: Relay = start_relay(max_in_flight=1)
    first, second = relay.patient(), relay.patient()
    body_1, body_2 = _register_body(first), _register_body(second)
    relayer = net.addr(RELAYER)
    sent = net.w3.eth.get_transaction_count(relayer, "pending")
    answers: list[httpx.Response] = []
    net.node.rpc("evm_setAutomine", [False])
    try:
        holder = threading.Thread(target=lambda: answers.append(relay.post(body_1)))
        holder.start()
        for _ in range(300):  # until the relay's transaction waits in the pool
            if net.w3.eth.get_transaction_count(relayer, "pending") > sent:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the relay never sent the first request")
        busy = relay.post(body_2)
        assert busy.status_code == 429
        assert busy.json()["error"] == "rate_limited"
        assert "handling 1 requests" in busy.json()["detail"]
        assert busy.headers["Retry-After"] == "1"
        net.node.rpc("evm_mine")
        holder.join(30)
    finally:
        net.node.rpc("evm_setAutomine", [True])
    assert [a.status_code for a in answers] == [200]
    assert relay.post(body_2).status_code == 200  # the slot is free again
    assert first.contracts.profiles.is_registered(first.address)
    assert second.contracts.profiles.is_registered(second.address)


def test_relay_serve_names_a_missing_or_bad_key_in_one_line(net: Net, tmp_path: Path) -> None:
    network = str(network_file(net, tmp_path))
    serve = ("relay", "serve", "--network", network, "--port", "1")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    bad.chmod(0o600)
    for args, says in (
        ((), "--key-file"),
        (("--dev-account", "9", "--key-file", str(bad)), "--key-file"),
        (("--key-file", str(bad)), "does not hold a private key"),
        (("--key-file", str(tmp_path / "missing.key")), "no relayer key file"),
    ):
        r = run_cli(tmp_path / "data", *serve, *args)
        assert r.returncode != 0, args
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and says in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
