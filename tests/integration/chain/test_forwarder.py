"""PatientForwarder on anvil and ganache: a patient with no ETH acts through a relayer's
transaction, and a relayer cannot change, replay, reorder or stretch a signed request."""

from __future__ import annotations

import os

from eth_account import Account

from emrshare.chain import ChainClient, Contracts, ForwardRequest, ProfileRegistered, Relayed
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from tests.integration.chain.conftest import OUTSIDER, Net, reverts


def _patient(net: Net) -> tuple[bytes, str, Contracts]:
    """A fresh unfunded patient key, and its contracts through the forwarder (relayer:
    the outsider's funded key)."""
    key = os.urandom(32)
    addr = Account.from_key(key).address
    relayer = DirectSubmitter(ChainClient(net.w3, net.keys[OUTSIDER]), _fwd(net))
    client = ForwardingClient(ChainClient(net.w3), key, addr, _fwd(net), relayer)
    return key, addr, Contracts.from_deployment(client, net.deployment)


def _fwd(net: Net) -> str:
    return net.deployment.address_of("PatientForwarder")


def test_an_unfunded_patient_registers_through_a_relayer(net: Net) -> None:
    _, addr, mine = _patient(net)
    assert net.w3.eth.get_balance(addr) == 0
    r = mine.profiles.register(os.urandom(33), os.urandom(32))
    ev = r.event(ProfileRegistered)
    assert ev.patient == addr
    relayed = [e for e in mine.forwarder.events(Relayed, patient=addr)]
    assert [(e.signer, e.nonce) for e in relayed] == [(addr, 0)]
    assert mine.profiles.is_registered(addr)
    assert net.w3.eth.get_balance(addr) == 0


def test_the_digest_is_the_contracts(net: Net) -> None:
    req = ForwardRequest(
        patient=net.addr(OUTSIDER),
        to=_fwd(net),
        nonce=7,
        deadline=123,
        chain_id=net.w3.eth.chain_id,
        data=b"\1\2\3\4",
    )
    assert net.as_(OUTSIDER).forwarder.hash_request(req) == req.digest(_fwd(net))


def _signed(
    net: Net, key: bytes, addr: str, mine: Contracts, **over: object
) -> tuple[ForwardRequest, bytes]:
    data = mine.profiles._encode("register", (os.urandom(33), os.urandom(32)))
    fields: dict[str, object] = {
        "patient": addr,
        "to": mine.profiles.address,
        "nonce": mine.forwarder.nonce(addr),
        "deadline": net.chain_time() + 600,
        "chain_id": net.w3.eth.chain_id,
        "data": data,
    }
    fields.update(over)
    req = ForwardRequest(**fields)  # type: ignore[arg-type]
    return req, req.sign(key, _fwd(net))


def test_replayed_reordered_expired_wrong_chain_and_changed_requests_revert(net: Net) -> None:
    key, addr, mine = _patient(net)
    relayer = net.as_(OUTSIDER).forwarder
    req, sig = _signed(net, key, addr, mine)
    relayer.execute(req, sig)
    reverts(
        lambda: relayer.execute(req, sig),
        "PatientForwarder_NonceUsed",
        patient=addr,
        nonce=0,
        next=1,
    )
    ahead, sig2 = _signed(net, key, addr, mine, nonce=5)
    reverts(
        lambda: relayer.execute(ahead, sig2),
        "PatientForwarder_NonceAhead",
        patient=addr,
        nonce=5,
        next=1,
    )
    late, sig3 = _signed(net, key, addr, mine, deadline=net.chain_time() - 1)
    reverts(
        lambda: relayer.execute(late, sig3),
        "PatientForwarder_Expired",
        deadline=late.deadline,
        chainTime=lambda t: t >= late.deadline,
    )
    other, sig4 = _signed(net, key, addr, mine, chain_id=net.w3.eth.chain_id + 1)
    reverts(
        lambda: relayer.execute(other, sig4),
        "PatientForwarder_WrongChain",
        signedFor=other.chain_id,
        chainId=net.w3.eth.chain_id,
    )
    good, sig5 = _signed(net, key, addr, mine)
    changed = ForwardRequest(
        good.patient, good.to, good.nonce, good.deadline, good.chain_id, good.data[:-1] + b"\xff"
    )
    reverts(
        lambda: relayer.execute(changed, sig5),
        "PatientForwarder_InvalidSigner",
        patient=addr,
        signer=lambda s: s != addr,
    )
    relayer.execute(good, sig5)
    assert mine.forwarder.nonce(addr) == 2
