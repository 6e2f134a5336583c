"""PatientForwarder on anvil and ganache: a patient with no ETH acts through a relayer's
transaction, and a relayer cannot change, replay, reorder or stretch a signed request."""

from __future__ import annotations

import os

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from emrshare.chain import (
    ChainClient,
    Contracts,
    ForwardRequest,
    ProfileRegistered,
    Relayed,
    deploy_contracts,
)
from emrshare.chain.bindings.forwarder import PatientForwarder
from emrshare.chain.forwarding import accept_identity
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from emrshare.types import CategoryTag, PolicyId
from tests.integration.chain.conftest import HOSPITAL, INSURER, OUTSIDER, Net, reverts


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


# -- every other error of the forwarder, and what the targets refuse -----------------------


def _funded(net: Net, *, register: bool = True) -> tuple[bytes, str, Contracts]:
    """A fresh patient key holding 1 ETH (it may also call the contracts directly)."""
    key = os.urandom(32)
    addr = Account.from_key(key).address
    net.as_(OUTSIDER).client.send(addr, value=10**18, with_logs=False)
    mine = Contracts.from_deployment(ChainClient(net.w3, key), net.deployment)
    if register:
        mine.profiles.register(os.urandom(33), os.urandom(32))
    return key, addr, mine


def _request(
    net: Net, signer_key: bytes, patient: str, to: str, data: bytes, **over: object
) -> tuple[ForwardRequest, bytes]:
    fields: dict[str, object] = {
        "patient": patient,
        "to": to,
        "nonce": net.as_(OUTSIDER).forwarder.nonce(patient),
        "deadline": net.chain_time() + 600,
        "chain_id": net.w3.eth.chain_id,
        "data": data,
    }
    fields.update(over)
    req = ForwardRequest(**fields)  # type: ignore[arg-type]
    return req, req.sign(signer_key, _fwd(net))


def _relay(net: Net, req: ForwardRequest, sig: bytes) -> object:
    return net.as_(OUTSIDER).forwarder.execute(req, sig)


def test_a_guardian_grants_until_its_guardianship_ends(net: Net) -> None:
    _, addr, mine = _funded(net)
    guardian = os.urandom(32)
    g_addr = Account.from_key(guardian).address
    until = net.chain_time() + 300
    mine.forwarder.set_guardian(g_addr, until, b"\x01" * 64)
    assert mine.forwarder.guardian_of(addr, g_addr)[0] == until
    grant = mine.grants._encode("grant", (net.grant_params().as_abi(),))
    req, sig = _request(net, guardian, addr, mine.grants.address, grant)
    _relay(net, req, sig)
    (ev,) = [e for e in mine.forwarder.events(Relayed, patient=addr)]
    assert (ev.signer, ev.nonce) == (g_addr, 0)
    # A guardian may grant, revoke and answer; not register, nor write the index.
    register = mine.profiles._encode("register", (os.urandom(33), os.urandom(32)))
    req, sig = _request(net, guardian, addr, mine.profiles.address, register)
    reverts(
        lambda: _relay(net, req, sig),
        "PatientForwarder_NotDelegated",
        patient=addr,
        guardian=g_addr,
        selector=register[:4],
    )
    net.advance_time(600)
    grant = mine.grants._encode("grant", (net.grant_params().as_abi(),))
    req, sig = _request(net, guardian, addr, mine.grants.address, grant)
    reverts(
        lambda: _relay(net, req, sig),
        "PatientForwarder_GuardianshipEnded",
        patient=addr,
        guardian=g_addr,
        until=until,
    )
    assert mine.forwarder.nonce(addr) == 1


def test_a_request_without_a_selector_reverts(net: Net) -> None:
    # ForwardRequest refuses such data in Python; a relayer could still send it raw.
    _, addr, mine = _funded(net)
    raw = (addr, mine.grants.address, 0, net.chain_time() + 600, net.w3.eth.chain_id, b"\1\2\3")
    data = mine.forwarder._encode("execute", (raw, b"\0" * 65))
    relayer = net.as_(OUTSIDER).client
    reverts(lambda: relayer.send(_fwd(net), data), "PatientForwarder_NoSelector")


def test_guardianship_arguments_are_checked(net: Net) -> None:
    _, addr, mine = _funded(net)
    g = Account.from_key(os.urandom(32)).address
    later = net.chain_time() + 3600
    for bad in ("0x" + "00" * 20, addr):
        reverts(
            lambda bad=bad: mine.forwarder.set_guardian(bad, later, b"k"),
            "PatientForwarder_InvalidGuardian",
            guardian=bad,
        )
    past = net.chain_time() - 1
    reverts(
        lambda: mine.forwarder.set_guardian(g, past, b"k"),
        "PatientForwarder_InvalidUntil",
        until=past,
        chainTime=lambda t: t > past,
    )
    for size in (0, 8193):
        reverts(
            lambda size=size: mine.forwarder.set_guardian(g, later, b"k" * size),
            "PatientForwarder_InvalidKeys",
            length=size,
        )
    reverts(
        lambda: mine.forwarder.withdraw_guardian(g),
        "PatientForwarder_NotGuardian",
        patient=addr,
        guardian=g,
    )
    mine.forwarder.set_guardian(g, later, b"k")
    mine.forwarder.withdraw_guardian(g)
    assert mine.forwarder.guardian_of(addr, g) == (0, 0)


def test_a_rotated_patient_acts_only_through_the_forwarder(net: Net) -> None:
    old_key, addr, mine = _funded(net)
    new_key = os.urandom(32)
    new = Account.from_key(new_key).address
    fwd, chain = _fwd(net), net.w3.eth.chain_id
    consent = accept_identity(new_key, addr, chain, fwd)
    assert net.as_(OUTSIDER).forwarder.hash_acceptance(addr, new) == bytes(
        _hash_eip191_message(
            encode_typed_data(
                full_message={
                    "domain": {
                        "name": "emrshare-forwarder",
                        "version": "1",
                        "chainId": chain,
                        "verifyingContract": fwd,
                    },
                    "types": {
                        "EIP712Domain": [
                            {"name": "name", "type": "string"},
                            {"name": "version", "type": "string"},
                            {"name": "chainId", "type": "uint256"},
                            {"name": "verifyingContract", "type": "address"},
                        ],
                        "AcceptIdentity": [
                            {"name": "patient", "type": "address"},
                            {"name": "signer", "type": "address"},
                        ],
                    },
                    "primaryType": "AcceptIdentity",
                    "message": {"patient": addr, "signer": new},
                }
            )
        )
    )
    for bad in ("0x" + "00" * 20, addr):
        reverts(
            lambda bad=bad: mine.forwarder.rotate_signer(bad, consent),
            "PatientForwarder_InvalidNewSigner",
            signer=bad,
        )
    # Without the new key's consent (none, its consent to another patient, another
    # key's, another chain's): refused, so nobody can rotate onto another's address.
    stranger = os.urandom(32)
    for bad_consent in (
        b"",
        accept_identity(new_key, net.addr(OUTSIDER), chain, fwd),
        accept_identity(stranger, addr, chain, fwd),
        accept_identity(new_key, addr, chain + 1, fwd),
    ):
        reverts(
            lambda c=bad_consent: mine.forwarder.rotate_signer(new, c),
            "PatientForwarder_NotAccepted",
            patient=addr,
            signer=new,
        )
    mine.forwarder.rotate_signer(new, consent)
    assert mine.forwarder.signer_of(addr) == new and mine.forwarder.identity_of(new) == addr
    # The signer is taken: neither this patient nor another may rotate to it again.
    reverts(
        lambda: mine.forwarder.rotate_signer(new, consent),
        "PatientForwarder_MustRelay",
        account=addr,
    )
    _, _, other = _funded(net)
    reverts(
        lambda: other.forwarder.rotate_signer(new, consent),
        "PatientForwarder_InvalidNewSigner",
        signer=new,
    )
    # The old address's direct calls to every target (and the forwarder) are refused.
    tag = CategoryTag(b"\x22" * 32)
    for direct in (
        lambda: mine.grants.grant(net.grant_params()),
        lambda: mine.grants.revoke_tag(tag),
        lambda: mine.index.authorize_writer(tag, net.addr(HOSPITAL), b"x"),
        lambda: mine.profiles.register(os.urandom(33), os.urandom(32)),
        lambda: mine.profiles.log_state(b"s"),
        lambda: mine.forwarder.set_guardian(net.addr(INSURER), net.chain_time() + 99, b"k"),
    ):
        reverts(direct, "PatientForwarder_MustRelay", account=addr)
    # The new key, funded, may not act directly either: it signs.
    net.as_(OUTSIDER).client.send(new, value=10**17, with_logs=False)
    as_new = Contracts.from_deployment(ChainClient(net.w3, new_key), net.deployment)
    reverts(lambda: as_new.grants.revoke_tag(tag), "PatientForwarder_MustRelay", account=new)
    # Signed by the old key: refused; by the new one: runs as the patient.
    data = mine.grants._encode("revokeTag", (tag,))
    req, sig = _request(net, old_key, addr, mine.grants.address, data)
    reverts(
        lambda: _relay(net, req, sig), "PatientForwarder_InvalidSigner", patient=addr, signer=addr
    )
    req, sig = _request(net, new_key, addr, mine.grants.address, data)
    _relay(net, req, sig)
    (ev,) = list(mine.forwarder.events(Relayed, patient=addr))
    assert (ev.signer, ev.patient) == (new, addr)
    # The new key is no identity of its own: a request for "patient" new is refused.
    req, sig = _request(net, new_key, new, mine.grants.address, data)
    reverts(
        lambda: _relay(net, req, sig), "PatientForwarder_InvalidSigner", patient=new, signer=new
    )


def test_a_target_revert_bubbles_up_unchanged_and_leaves_the_nonce_unused(net: Net) -> None:
    key, addr, mine = _funded(net)
    pid = PolicyId(os.urandom(32))
    data = mine.grants._encode("revoke", (pid,))
    req, sig = _request(net, key, addr, mine.grants.address, data)
    reverts(lambda: _relay(net, req, sig), "Grants_UnknownPolicy", policyId=pid)
    assert mine.forwarder.nonce(addr) == 0
    # The same nonce still works for another request.
    data = mine.grants._encode("revokeTag", (CategoryTag(b"\x33" * 32),))
    req, sig = _request(net, key, addr, mine.grants.address, data)
    _relay(net, req, sig)
    assert mine.forwarder.nonce(addr) == 1


def test_a_relayed_call_cannot_act_for_another_patient(net: Net) -> None:
    a_key, a, mine = _funded(net)
    _, b, _ = _funded(net)
    data = mine.grants._encode("revokeTag", (CategoryTag(b"\x44" * 32),))
    req, sig = _request(net, a_key, b, mine.grants.address, data)
    reverts(lambda: _relay(net, req, sig), "PatientForwarder_InvalidSigner", patient=b, signer=a)
    assert mine.forwarder.nonce(b) == 0


def test_a_request_signed_for_one_forwarder_fails_on_another_deployments(
    net: Net, dev_keys: list[bytes]
) -> None:
    other = deploy_contracts(net.w3, dev_keys[OUTSIDER], names=["PatientForwarder"])
    there = other.address_of("PatientForwarder")
    assert there != _fwd(net)
    key, addr, mine = _funded(net)
    data = mine.grants._encode("revokeTag", (CategoryTag(b"\x55" * 32),))
    req, sig = _request(net, key, addr, mine.grants.address, data)
    theirs = PatientForwarder(ChainClient(net.w3, dev_keys[OUTSIDER]), there)
    reverts(
        lambda: theirs.execute(req, sig),
        "PatientForwarder_InvalidSigner",
        patient=addr,
        signer=lambda s: s != addr,
    )
    _relay(net, req, sig)  # on its own forwarder it runs
    assert mine.forwarder.nonce(addr) == 1


def test_the_state_log_refuses_empty_and_oversized_entries(net: Net) -> None:
    _, _, mine = _funded(net)
    for size in (0, 4097):
        reverts(
            lambda size=size: mine.profiles.log_state(b"\x01" * size),
            "PatientProfiles_InvalidState",
            length=size,
        )
    mine.profiles.log_state(b"\x01" * 4096)
