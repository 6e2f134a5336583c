"""Attacks found in review of issue 13 (PatientForwarder), on real anvil/ganache."""

from __future__ import annotations

import pytest
from eth_account import Account

from emrshare.chain.forwarding import accept_identity
from emrshare.errors import ContractRevert
from tests.integration.chain.conftest import OUTSIDER, Net


def test_nobody_can_rotate_onto_another_accounts_key(net: Net) -> None:
    """rotateSigner(victim) by a stranger must not mark the victim mustRelay nor make
    identityOf(victim) the stranger: that bricks the victim's direct calls for good and
    makes `emrshare restore` of the victim's own mnemonic fail ("rotation did not finish").
    The new signer has to consent (e.g. sign the rotation), or the call has to revert."""
    victim = Account.create()  # e.g. a patient or hospital that never rotated
    fwd, chain = net.deployment.address_of("PatientForwarder"), net.w3.eth.chain_id
    forged = accept_identity(Account.create().key, net.addr(OUTSIDER), chain, fwd)
    for consent in (b"", forged, b"\x00" * 65):
        with pytest.raises(ContractRevert) as refused:
            net.as_(OUTSIDER).forwarder.rotate_signer(victim.address, consent)
        assert refused.value.name == "PatientForwarder_NotAccepted"
    victim = victim.address
    assert net.as_(OUTSIDER).forwarder.identity_of(victim) == victim
    assert not net.as_(OUTSIDER).forwarder.must_relay(victim)
