"""An unfunded patient registers and grants through a real relay process, on anvil and
ganache; the relay's log holds neither the signature nor the calldata."""

from __future__ import annotations

import os

import httpx

from emrshare.chain import GrantCreated, ProfileRegistered
from tests.integration.relay.conftest import RELAYER, Net, Relay


def test_an_unfunded_patient_registers_and_grants_through_the_relay(relay: Relay, net: Net) -> None:
    me = relay.patient()
    assert net.w3.eth.get_balance(me.address) == 0
    paid_before = net.w3.eth.get_balance(net.addr(RELAYER))
    r = me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    assert r.event(ProfileRegistered).patient == me.address
    g = me.contracts.grants.grant(net.grant_params())
    assert g.event(GrantCreated).patient == me.address
    assert [(e.signer, e.nonce) for e in me.relayed()] == [(me.address, 0), (me.address, 1)]
    assert net.w3.eth.get_balance(me.address) == 0
    assert net.w3.eth.get_balance(net.addr(RELAYER)) < paid_before  # the relay paid
    # The hash the client returns is of the transaction that carried it, sent by the relay.
    tx = net.w3.eth.get_transaction(g.tx_hash)
    assert tx["from"] == net.addr(RELAYER)
    health = httpx.get(f"{relay.url}/v1/health", timeout=10).json()
    assert health["chain_id"] == net.w3.eth.chain_id
    assert health["forwarder"] == net.deployment.address_of("PatientForwarder")
    assert health["relayer"] == net.addr(RELAYER)
    assert int(health["balance"]) == net.w3.eth.get_balance(net.addr(RELAYER))
    assert health["relayed"] == 2


def test_the_relay_log_holds_no_signature_or_calldata(relay: Relay, net: Net) -> None:
    me = relay.patient()
    box = os.urandom(32)
    data = me.contracts.profiles._encode("register", (os.urandom(33), box))
    req, sig = me.client.sign_request(me.contracts.profiles.address, data)
    r = relay.post({"request": req.to_json(), "signature": "0x" + sig.hex()})
    assert r.status_code == 200, r.text
    # A refused one too: its signature is someone else's.
    bad = relay.post({"request": req.to_json(), "signature": "0x" + os.urandom(65).hex()})
    assert bad.status_code == 409
    relay.daemon.stop()  # flushes the log
    text = relay.daemon.log_path.read_text()
    assert "relayed patient" in text  # it does log the operation
    for secret in (sig.hex(), box.hex(), data.hex()[8:72]):
        assert secret not in text and secret.upper() not in text
