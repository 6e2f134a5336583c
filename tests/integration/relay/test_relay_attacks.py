"""A relay (or whoever sees a request on its way) attacking the patient, against the
real relay process: it changes the request, keeps it and lands it later, lands another
request of the patient in its place, front-runs it, or claims it reverts. The client
accepts none of it, and every operation happens exactly once.

The attacker is a :class:`Submitter` between the client and the relay process, doing
what a malicious relay could: it holds only signed requests, never the patient's key.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from emrshare.chain import (
    ChainClient,
    ForwardRequest,
    GrantCreated,
    ProfileRegistered,
    StateLogged,
)
from emrshare.chain.relayed import DirectSubmitter
from emrshare.errors import ContractRevert, RelayError
from emrshare.relay import HttpRelay
from tests.integration.relay.conftest import Net, Patient, Relay

pytestmark = pytest.mark.parametrize("devnode", ["anvil"], indirect=True)

FRONT_RUNNER = 8  # a funded key that is not the relay's


class Recorder:
    """Hands requests to ``inner`` and keeps a copy of each (what any relay can do)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kept: list[tuple[ForwardRequest, bytes]] = []

    def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
        self.kept.append((request, signature))
        result: bytes | None = self.inner.submit(request, signature)
        return result


def _profiles(me: Patient) -> int:
    events = me.contracts.profiles.events(ProfileRegistered)
    return sum(1 for e in events if e.patient == me.address)


def test_a_changed_request_never_runs(relay: Relay) -> None:
    class Tamperer:
        """Swaps the patient's keys in the calldata (it cannot sign the result)."""

        def __init__(self) -> None:
            self.seen = 0

        def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
            self.seen += 1
            data = request.data[:-32] + os.urandom(32)
            changed = ForwardRequest(
                request.patient, request.to, request.nonce, request.deadline,
                request.chain_id, data,
            )  # fmt: skip
            return HttpRelay(relay.url).submit(changed, signature)

    tamperer = Tamperer()
    me = relay.patient(tamperer, attempts=2)
    with pytest.raises(RelayError) as info:
        me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    # The relay refused it (InvalidSigner); the client did not take that as its own
    # request reverting: its own eth_call passes, so the hand-over is what failed.
    assert info.value.reason == "refused"
    assert "PatientForwarder_InvalidSigner" in str(info.value)
    assert tamperer.seen == 2
    assert me.contracts.forwarder.nonce(me.address) == 0
    assert not me.contracts.profiles.is_registered(me.address)


def test_a_kept_request_landed_later_in_place_of_the_retry_counts_once(
    start_relay: Any, net: Net
) -> None:
    relay: Relay = start_relay()
    keeper = Recorder(HttpRelay(relay.url))
    me = relay.patient(keeper, attempts=1, land_timeout=0.5)
    me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    relay.daemon.restart(fault="lie")
    entry = os.urandom(256)  # an operation that could run twice: a state-log entry
    with pytest.raises(RelayError) as info:
        me.contracts.profiles.log_state(entry)
    assert info.value.reason == "not_landed"
    kept = keeper.kept[-1]
    relay.daemon.restart(fault="")
    net.advance_time(60)  # the retry is signed with a later deadline: another request
    honest = HttpRelay(relay.url)

    class LateLander:
        """Lands the kept request just before handing over the patient's retry."""

        def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
            assert request.deadline > kept[0].deadline
            honest.submit(*kept)
            return honest.submit(request, signature)  # 409 NonceUsed: the nonce is gone

    me.client.submitter = LateLander()
    receipt = me.contracts.profiles.log_state(entry)
    # The kept request was the same operation under the same nonce: it is the one.
    assert receipt.event(StateLogged).sealed_state == entry
    assert [e.nonce for e in me.relayed()] == [0, 1]
    assert me.relayed()[1].tx_hash == receipt.tx_hash
    logged = me.contracts.profiles.events(StateLogged, patient=me.address)
    assert [e.sealed_state for e in logged] == [entry]
    # Replayed once more, it is refused: its nonce is used.
    with pytest.raises(ContractRevert) as refused:
        honest.submit(*kept)
    assert refused.value.name == "PatientForwarder_NonceUsed"
    assert me.contracts.forwarder.nonce(me.address) == 2


def test_another_request_landed_in_place_of_this_one_is_not_taken_for_it(
    relay: Relay, net: Net
) -> None:
    me = relay.patient()
    me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    # A grant the patient signed (on another device, say) and a relay kept.
    other = net.grant_params()
    data = me.contracts.grants._encode("grant", (other.as_abi(),))
    kept = me.client.sign_request(me.contracts.grants.address, data)
    honest = HttpRelay(relay.url)

    class Substituter:
        """Lands the kept request instead of the one handed over, once, and says it
        sent the latter."""

        def __init__(self) -> None:
            self.done = False

        def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
            if not self.done:
                self.done = True
                return honest.submit(*kept)
            return honest.submit(request, signature)

    me.client.submitter = Substituter()
    mine = net.grant_params()
    receipt = me.contracts.grants.grant(mine)
    created = receipt.event(GrantCreated)
    assert created.grantee == mine.grantee
    grants = [e for e in me.contracts.grants.events(GrantCreated) if e.patient == me.address]
    assert len(grants) == 2  # the kept one and this one, each once
    assert created.policy_id in {e.policy_id for e in grants}
    assert [e.nonce for e in me.relayed()] == [0, 1, 2]
    assert me.relayed()[2].tx_hash == receipt.tx_hash  # signed again, under nonce 2


def test_a_front_run_request_is_found_on_chain_once(relay: Relay, net: Net) -> None:
    front = DirectSubmitter(
        ChainClient(net.w3, net.keys[FRONT_RUNNER]), net.deployment.address_of("PatientForwarder")
    )
    honest = HttpRelay(relay.url)

    class FrontRunner:
        """Sees the request on its way to the relay and sends it first, itself."""

        def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
            front.submit(request, signature)
            return honest.submit(request, signature)  # the relay: 409 NonceUsed

    me = relay.patient(FrontRunner())
    receipt = me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    assert net.w3.eth.get_transaction(receipt.tx_hash)["from"] == net.addr(FRONT_RUNNER)
    assert [e.nonce for e in me.relayed()] == [0]
    assert _profiles(me) == 1


def test_a_relay_claiming_a_revert_is_not_believed(relay: Relay) -> None:
    honest = HttpRelay(relay.url)

    class Slanderer:
        """Says the first hand-over would revert; relays the next one."""

        def __init__(self) -> None:
            self.calls = 0

        def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
            self.calls += 1
            if self.calls == 1:
                raise ContractRevert("PatientProfiles_InvalidKey", {"length": 0})
            return honest.submit(request, signature)

    slanderer = Slanderer()
    me = relay.patient(slanderer)
    receipt = me.contracts.profiles.register(os.urandom(33), os.urandom(32))
    assert receipt.event(ProfileRegistered).patient == me.address
    assert slanderer.calls == 2
    assert [e.nonce for e in me.relayed()] == [0]
