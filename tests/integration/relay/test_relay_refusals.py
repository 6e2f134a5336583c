"""Each refusal of a real relay process: malformed bodies (400, never 500), a target that
is not a patient contract (403), a request that would revert (409, decoded), the rate
limit (429 + Retry-After) and a node that is down (503). The client turns each into the
typed error it documents."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from emrshare.chain import ForwardRequest, deploy_contracts
from emrshare.devnet import DevNode
from emrshare.devnet.relayd import RelayDaemon
from emrshare.errors import ContractRevert, RelayError
from emrshare.relay import HttpRelay
from tests.integration.relay.conftest import RELAYER, Net, Patient, Relay, network_file

pytestmark = pytest.mark.parametrize("devnode", ["anvil"], indirect=True)


def _register_call(me: Patient) -> tuple[ForwardRequest, bytes]:
    data = me.contracts.profiles._encode("register", (os.urandom(33), os.urandom(32)))
    return me.client.sign_request(me.contracts.profiles.address, data)


def _body(req: ForwardRequest, sig: bytes, **over: Any) -> dict[str, Any]:
    request = {**req.to_json(), **over}
    return {"request": request, "signature": "0x" + sig.hex()}


def test_malformed_bodies_are_400_with_a_reason_never_500(relay: Relay) -> None:
    me = relay.patient()
    req, sig = _register_call(me)
    good = _body(req, sig)
    cases: dict[str, bytes] = {
        "empty": b"",
        "not json": b"relay this please",
        "truncated": json.dumps(good).encode()[:-3],
        "an array": b"[]",
        "not utf-8": b'{"request": "\xff\xfe"}',
        "nested": b"[" * 5000 + b"]" * 5000,
        "NaN": b'{"request": NaN, "signature": "0x"}',
        "duplicate key": json.dumps(good).encode()[:-1] + b', "signature": "0x00"}',
        "huge body": b'{"request": "' + b"a" * 300_000 + b'"}',
    }
    shapes: dict[str, Any] = {
        "missing signature": {"request": good["request"]},
        "extra field": {**good, "tip": "0x01"},
        "request a string": {**good, "request": "0x00"},
        "nonce a number": _body(req, sig, nonce=req.nonce),
        "nonce hex": _body(req, sig, nonce=hex(req.nonce)),
        "nonce negative": _body(req, sig, nonce="-1"),
        "nonce over uint256": _body(req, sig, nonce=str(2**256)),
        "deadline with spaces": _body(req, sig, deadline=f" {req.deadline} "),
        "missing chain id": {
            "request": {k: v for k, v in good["request"].items() if k != "chain_id"},
            "signature": good["signature"],
        },
        "bad address": _body(req, sig, patient="0x1234"),
        "address without 0x": _body(req, sig, to=req.to[2:] + "00"),
        "bad hex data": _body(req, sig, data="0xzzzzzzzz"),
        "odd hex data": _body(req, sig, data="0x123456789"),
        "no selector": _body(req, sig, data="0x1234"),
        "huge data": _body(req, sig, data="0x" + "ab" * (128 * 1024 + 1)),
        "short signature": {**good, "signature": "0x" + sig.hex()[:-2]},
        "signature a list": {**good, "signature": [1, 2]},
        "null request": {**good, "request": None},
    }
    cases.update({name: json.dumps(body).encode() for name, body in shapes.items()})
    for name, content in cases.items():
        r = relay.post(content=content)
        assert r.status_code == 400, f"{name}: {r.status_code} {r.text[:200]}"
        answer = r.json()
        assert answer["error"] == "bad_request", name
        assert len(answer["detail"]) > 10, name
    # Still serving, and the well-formed body goes through.
    assert relay.post(good).status_code == 200
    assert me.contracts.profiles.is_registered(me.address)


def test_a_target_outside_the_patient_contracts_is_403(relay: Relay, net: Net) -> None:
    me = relay.patient()
    registry = net.deployment.address_of("ConsortiumRegistry")
    # A call the forwarder would run fine (a view), so only the relay says no.
    call = me.contracts.registry._encode("roleOf", (me.address,))
    req, sig = me.client.sign_request(registry, call)
    r = relay.post(_body(req, sig))
    assert r.status_code == 403
    assert r.json()["error"] == "not_relayed_here"
    with pytest.raises(RelayError) as info:
        HttpRelay(relay.url).submit(req, sig)
    assert info.value.reason == "not_relayed_here"
    with pytest.raises(RelayError) as info:  # the client gives up at once: no retry helps
        me.client.send(registry, call)
    assert info.value.reason == "not_relayed_here"
    assert me.contracts.forwarder.nonce(me.address) == 0


def test_a_request_that_would_revert_is_409_with_the_decoded_error(relay: Relay, net: Net) -> None:
    me = relay.patient()
    # The target's own error bubbles up: no profile yet, so no grant.
    data = me.contracts.grants._encode("grant", (net.grant_params().as_abi(),))
    req, sig = me.client.sign_request(me.contracts.grants.address, data)
    r = relay.post(_body(req, sig))
    assert r.status_code == 409
    answer = r.json()
    assert answer["error"] == "would_revert"
    assert answer["revert"] == {"name": "Grants_NoProfile", "args": {"caller": me.address}}
    with pytest.raises(ContractRevert) as info:
        HttpRelay(relay.url).submit(req, sig)
    assert info.value.name == "Grants_NoProfile"
    assert info.value.args_by_name == {"caller": me.address}
    # The forwarder's own checks: a nonce ahead of the patient's.
    ahead = ForwardRequest(req.patient, req.to, 5, req.deadline, req.chain_id, req.data)
    fwd = net.deployment.address_of("PatientForwarder")
    with pytest.raises(ContractRevert) as info:
        HttpRelay(relay.url).submit(ahead, ahead.sign(me.key, fwd))
    assert info.value.name == "PatientForwarder_NonceAhead"
    assert info.value.args_by_name == {"patient": me.address, "nonce": 5, "next": 0}
    # Through the client, the same revert is raised (by its own eth_call, first).
    with pytest.raises(ContractRevert) as info:
        me.contracts.grants.grant(net.grant_params())
    assert info.value.name == "Grants_NoProfile"
    assert me.contracts.forwarder.nonce(me.address) == 0


def test_the_per_patient_rate_limit_is_429_and_forged_requests_do_not_use_it(
    start_relay: Any, net: Net
) -> None:
    relay: Relay = start_relay(rate=1.0, burst=2)  # 1 a minute, 2 at once
    me = relay.patient()
    # Requests for this patient signed by someone else are refused before the bucket.
    req, _ = _register_call(me)
    for _ in range(4):
        forged = relay.post(_body(req, os.urandom(32) + os.urandom(32) + b"\x1b"))
        assert forged.status_code == 409, forged.text
    me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    me.contracts.grants.grant(net.grant_params())
    data = me.contracts.grants._encode("grant", (net.grant_params().as_abi(),))
    req, sig = me.client.sign_request(me.contracts.grants.address, data)
    r = relay.post(_body(req, sig))
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    with pytest.raises(RelayError) as info:
        me.contracts.grants.grant(net.grant_params())
    assert info.value.reason == "rate_limited"
    assert me.contracts.forwarder.nonce(me.address) == 2  # nothing more ran
    # Another patient has a bucket of its own.
    other = relay.patient()
    other.contracts.profiles.register(os.urandom(33), os.urandom(32))


def test_a_node_that_is_down_is_503_chain_unavailable(tmp_path: Path, net: Net) -> None:
    node = DevNode.start("anvil", log_dir=tmp_path)
    daemon = None
    try:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        mine = Net(w3, node, deploy_contracts(w3, net.keys[0]), net.keys)
        daemon = RelayDaemon.start(network_file(mine, tmp_path), dev_account=RELAYER)
        relay = Relay(daemon, mine)
        me = relay.patient()
        req, sig = _register_call(me)
        node.stop()
        r = relay.post(_body(req, sig))
        assert r.status_code == 503
        assert r.json()["error"] == "chain_unavailable"
        health = httpx.get(f"{relay.url}/v1/health", timeout=10)
        assert health.status_code == 503
        assert relay.post(content=b"{").status_code == 400  # parsing needs no node
    finally:
        if daemon is not None:
            daemon.stop()
        node.stop()


def test_a_relayer_without_funds_answers_503_and_nothing_runs(
    start_relay: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "relayer.key"
    key_file.write_text("0x" + os.urandom(32).hex() + "\n")
    key_file.chmod(0o600)
    relay: Relay = start_relay(dev_account=None, key_file=key_file)
    health = httpx.get(f"{relay.url}/v1/health", timeout=10).json()
    assert health["balance"] == "0"
    me = relay.patient()
    req, sig = _register_call(me)
    r = relay.post(_body(req, sig))
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "chain_unavailable"
    assert "could not send" in r.json()["detail"]
    assert me.contracts.forwarder.nonce(me.address) == 0


def test_fresh_keys_do_not_escape_the_limit_for_all_patients(start_relay: Any) -> None:
    relay: Relay = start_relay(rate=60.0, burst=1, global_rate=1.0)  # 1 a minute in all
    first, second = relay.patient(), relay.patient()
    first.contracts.profiles.register(os.urandom(33), os.urandom(32))
    req, sig = _register_call(second)  # a fresh key, a full bucket of its own
    r = relay.post(_body(req, sig))
    assert r.status_code == 429
    assert "all patients'" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1
    assert second.contracts.forwarder.nonce(second.address) == 0
