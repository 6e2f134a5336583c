"""A patient who holds no ETH: every write is signed by the patient and relayed through
the PatientForwarder (issue 13). The relayer is the network's relay service (a real HTTP
server on loopback, ``LocalNetwork.start(relay=True)``), or a hospital's funded key
(``DirectSubmitter``): both send real ``execute`` transactions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import AccessDenied, ConsortiumAdmin, GrantRevoked, Patient, Provider, Requester
from emrshare.chain import ChainClient, Relayed, Role
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.relay import HttpRelay
from emrshare.roles._relayed import patient_contracts


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork.start(tmp_path_factory.mktemp("relaynet"))
    try:
        yield network
    finally:
        network.close()


def _relayer(net: LocalNetwork) -> DirectSubmitter:
    """A hospital's funded key paying the patients' gas."""
    return DirectSubmitter(ChainClient(net.w3, net.dev_keys[6]), net.contracts.forwarder.address)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[LocalNetwork]:
    """A network of the test's own (a long shared py-evm chain slows every read)."""
    network = LocalNetwork.start(tmp_path / "net", relay=True)
    try:
        yield network
    finally:
        network.close()


@pytest.mark.parametrize("through", ["relay service", "hospital key"])
def test_an_unfunded_patient_does_the_whole_demo_scenario_through_the_relay(
    fresh: LocalNetwork, tmp_path: Path, through: str
) -> None:
    net = fresh
    admin = ConsortiumAdmin(net, net.admin_key)
    a = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp_path / "a")
    b = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp_path / "b")
    insurer = Requester(
        net, MemberKeys.generate(ethereum_key=net.dev_keys[2]), state_dir=tmp_path / "i"
    )
    for member, role in ((a, Role.PROVIDER), (b, Role.PROVIDER), (insurer, Role.INSURER)):
        member.apply()
        admin.admit(member.address, role)
    keys = PatientKeys(os.urandom(32))  # its Ethereum key is derived: no one funded it
    assert net.relay_url is not None
    relay = net.relay_url if through == "relay service" else _relayer(net)
    patient = Patient(net, keys, state_dir=tmp_path / "p", relay=relay)
    assert net.w3.eth.get_balance(patient.address) == 0
    sent_before = net.w3.eth.get_transaction_count(patient.address)

    assert patient.register() and not patient.register()
    patient.authorize_writer(a.address, "lab")
    patient.authorize_writer(b.address, "lab")
    patient.deauthorize_writer(b.address, "lab")
    assert patient.writers("lab") == [a.address]

    lab = b"Hb 14.1 g/dL\n" * 50
    lab_id = a.add_record(patient.address, "lab", lab, media_type="text/plain")
    assert {r.record_id for r in patient.records()} == {lab_id}

    # Request -> approve: B reads through the proxies.
    req = b.request_access(patient.address, "lab", purpose="TREAT", reason="referral")
    grant = patient.approve(req, expires=timedelta(days=30))
    assert grant.active and grant.grantee == b.address
    assert b.read(patient.address, lab_id) == lab
    # A second request is denied.
    req2 = insurer.request_access(patient.address, "lab", purpose="HPAYMT", reason="claim")
    patient.deny(req2)
    assert {r.request_id: r.status for r in patient.requests()} == {
        req: "approved",
        req2: "denied",
    }
    # A direct grant to the insurer.
    insurer_grant = patient.grant(insurer.address, "lab", expires=timedelta(days=7))
    assert insurer.read(patient.address, lab_id) == lab

    # The audit trail shows the reads.
    trail = patient.audit()
    assert any(e.requester == b.address and e.record_ids == (lab_id,) for e in trail)
    assert any(e.requester == insurer.address for e in trail)

    # Revoke B: a new epoch; the insurer and writer A are re-issued for it.
    patient.revoke(grant.policy_id)
    assert patient.epoch("lab") == 1
    with pytest.raises(GrantRevoked):
        b.read(patient.address, lab_id)
    new_id = a.add_record(patient.address, "lab", b"K 4.1 mmol/L")
    assert insurer.read(patient.address, new_id) == b"K 4.1 mmol/L"
    with pytest.raises(AccessDenied):
        b.read(patient.address, new_id)
    statuses = {g.policy_id: g.status for g in patient.grants()}
    assert statuses[grant.policy_id] == "revoked"
    assert statuses[insurer_grant.policy_id] == "active"

    # The patient's own record, relayed as well.
    own = patient.add_record("vitals", b"BP 120/80", new_category=True)
    assert patient.read(own) == b"BP 120/80"

    # Every one of these writes ran through the forwarder, signed by the patient, and
    # the patient's address never sent a transaction or held a wei.
    relayed = list(net.contracts.forwarder.events(Relayed, patient=patient.address))
    assert relayed and {e.signer for e in relayed} == {patient.address}
    assert [e.nonce for e in relayed] == list(range(len(relayed)))
    assert net.contracts.forwarder.nonce(patient.address) == len(relayed)
    # register, 2 authorize, 1 deauthorize, grants of approve + answer, deny, grant,
    # revoke + rekey, own append: at least 10 relayed operations.
    assert len(relayed) >= 10
    assert net.w3.eth.get_balance(patient.address) == 0
    assert net.w3.eth.get_transaction_count(patient.address) == sent_before == 0
    for m in (a, b, patient):
        m.close()


def test_without_a_relay_the_patient_sends_itself(net: LocalNetwork, tmp_path: Path) -> None:
    # The library default is unchanged: a patient without ETH is refused by the node.
    keys = PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[5])
    patient = Patient(net, keys, state_dir=tmp_path / "p")
    patient.register()
    assert not list(net.contracts.forwarder.events(Relayed, patient=patient.address))
    assert net.w3.eth.get_transaction_count(patient.address) == 1
    patient.close()


def test_one_relayed_client_per_patient_key_and_relay(net: LocalNetwork) -> None:
    keys = PatientKeys(os.urandom(32))
    relayer = _relayer(net)
    first = patient_contracts(net, keys, relayer)
    assert patient_contracts(net, keys, relayer) is first
    client = first.grants.client
    assert isinstance(client, ForwardingClient)
    assert client.address == keys.address and client.submitter is relayer
    by_url = patient_contracts(net, keys, "http://127.0.0.1:1/")
    assert by_url is patient_contracts(net, keys, "http://127.0.0.1:1")
    relay = by_url.grants.client
    assert isinstance(relay, ForwardingClient) and isinstance(relay.submitter, HttpRelay)
    assert relay.submitter.url == "http://127.0.0.1:1"
    assert patient_contracts(net, keys, None) is net.contracts_for(keys.ethereum_key)
