"""Attacks found in review of issue 13 (PatientForwarder), on real anvil/ganache."""

from __future__ import annotations

import contextlib

import pytest
from eth_account import Account

from emrshare.errors import ContractRevert
from tests.integration.chain.conftest import OUTSIDER, Net


@pytest.mark.xfail(strict=True, reason="review finding 1: rotateSigner needs the new key's consent")
def test_nobody_can_rotate_onto_another_accounts_key(net: Net) -> None:
    """rotateSigner(victim) by a stranger must not mark the victim mustRelay nor make
    identityOf(victim) the stranger: that bricks the victim's direct calls for good and
    makes `emrshare restore` of the victim's own mnemonic fail ("rotation did not finish").
    The new signer has to consent (e.g. sign the rotation), or the call has to revert."""
    victim = Account.create().address  # e.g. a patient or hospital that never rotated
    with contextlib.suppress(ContractRevert):
        net.as_(OUTSIDER).forwarder.rotate_signer(victim)
    assert net.as_(OUTSIDER).forwarder.identity_of(victim) == victim
    assert not net.as_(OUTSIDER).forwarder.must_relay(victim)
