"""A patient's writes through a relayer: the patient signs each operation (EIP-712, checked
by the ``PatientForwarder``) and a relay service, or any funded key, pays its gas. The
patient's address then needs no ETH at all.

``relay`` is a relay service's URL (:class:`~emrshare.relay.HttpRelay`) or any
:class:`~emrshare.chain.relayed.Submitter` (a hospital's funded key through
:class:`~emrshare.chain.relayed.DirectSubmitter`); ``None`` sends directly with the
patient's own key (which then pays).
"""

from __future__ import annotations

import threading
import weakref

from emrshare.chain import Contracts
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient, Submitter
from emrshare.crypto import PatientKeys
from emrshare.network import Network
from emrshare.relay import HttpRelay

__all__ = ["Relay", "patient_contracts", "submitter_of"]

#: A relay service's URL, or a submitter of one's own.
Relay = str | Submitter

# Per network, per (patient key, relay): one ForwardingClient, as Network.contracts_for
# keeps one client per key, so every facade of a patient in this process shares its lock
# (two sends of one patient never sign the same forwarder nonce at once).
_cache: weakref.WeakKeyDictionary[Network, dict[tuple[bytes, object], Contracts]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def submitter_of(relay: Relay) -> Submitter:
    """The submitter a ``relay`` argument names (a URL: an :class:`HttpRelay`)."""
    return HttpRelay(relay) if isinstance(relay, str) else relay


def patient_contracts(network: Network, keys: PatientKeys, relay: Relay | None) -> Contracts:
    """The contracts a patient writes through: with ``relay``, every send is signed by
    the patient and relayed through the deployment's ``PatientForwarder`` (contracts see
    the patient as the sender); without, they are sent with the patient's own key. A
    patient that rotated its master acts only through the forwarder: without a relay, its
    new key submits (and pays for) its own requests."""
    where: object
    if relay is None:
        direct = network.contracts_for(keys.ethereum_key)
        if direct.client.address == keys.address:
            return direct
        relay = DirectSubmitter(direct.client, network.contracts.forwarder.address)
        where = "own key"
    else:
        where = relay.rstrip("/") if isinstance(relay, str) else relay
    with _cache_lock:
        mine = _cache.setdefault(network, {})
        found = mine.get((keys.ethereum_key, where))
        if found is None:
            client = ForwardingClient(
                network.chain,
                keys.ethereum_key,
                keys.address,
                network.contracts.forwarder.address,
                submitter_of(relay),
            )
            found = network.contracts.with_client(client)
            mine[(keys.ethereum_key, where)] = found
        return found
