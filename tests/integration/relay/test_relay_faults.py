"""The relayer stopping half way loses nothing: the patient retries and the operation
happens exactly once. Faults are injected into a real relay process through
``EMRSHARE_RELAY_FAULT`` (testing only): it dies after sending, dies before sending, or
lies about having sent."""

from __future__ import annotations

import os
from typing import Any

import pytest

from emrshare.chain import GrantCreated, ProfileRegistered
from emrshare.errors import RelayError
from tests.integration.relay.conftest import Net, Patient, Relay

pytestmark = pytest.mark.parametrize("devnode", ["anvil"], indirect=True)


def _grants(net: Net, me: Patient) -> list[GrantCreated]:
    return [e for e in me.contracts.grants.events(GrantCreated) if e.patient == me.address]


def _profiles(me: Patient) -> list[ProfileRegistered]:
    return [e for e in me.contracts.profiles.events(ProfileRegistered) if e.patient == me.address]


def test_a_relay_dying_after_sending_the_operation_is_found_on_chain_once(
    start_relay: Any, net: Net
) -> None:
    relay: Relay = start_relay()
    me = relay.patient()
    me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    relay.daemon.restart(fault="exit-after-send")
    params = net.grant_params()
    receipt = me.contracts.grants.grant(params)  # the relay died before it answered
    assert relay.daemon.wait_exit(30) == 17
    assert receipt.event(GrantCreated).patient == me.address
    assert [e.nonce for e in me.relayed()] == [0, 1]
    assert [e.policy_id for e in _grants(net, me)] == [receipt.event(GrantCreated).policy_id]
    assert me.contracts.forwarder.nonce(me.address) == 2


def test_a_relay_dying_before_sending_loses_nothing_and_the_retry_lands_once(
    start_relay: Any,
) -> None:
    relay: Relay = start_relay(fault="exit-before-send")
    me = relay.patient(attempts=2)
    keys = (os.urandom(33), os.urandom(32))
    with pytest.raises(RelayError) as info:
        me.contracts.profiles.register(*keys)
    assert info.value.reason == "unreachable"
    assert relay.daemon.wait_exit(30) == 17
    assert me.contracts.forwarder.nonce(me.address) == 0
    assert not me.contracts.profiles.is_registered(me.address)
    relay.daemon.restart(fault="")  # the operator restarts it; the patient retries
    r = me.contracts.profiles.register(*keys)
    assert r.event(ProfileRegistered).patient == me.address
    assert [e.nonce for e in me.relayed()] == [0]
    assert len(_profiles(me)) == 1


def test_a_relay_that_lies_is_found_out_and_an_honest_one_lands_the_operation_once(
    start_relay: Any,
) -> None:
    relay: Relay = start_relay(fault="lie")
    me = relay.patient(attempts=2, land_timeout=1.0)
    keys = (os.urandom(33), os.urandom(32))
    with pytest.raises(RelayError) as info:
        me.contracts.profiles.register(*keys)
    assert info.value.reason == "not_landed"
    assert "nonce 0" in str(info.value)
    assert relay.daemon.running  # it lied, it did not die
    assert me.contracts.forwarder.nonce(me.address) == 0
    relay.daemon.restart(fault="")
    r = me.contracts.profiles.register(*keys)
    assert r.event(ProfileRegistered).patient == me.address
    assert [e.nonce for e in me.relayed()] == [0]
    assert len(_profiles(me)) == 1
