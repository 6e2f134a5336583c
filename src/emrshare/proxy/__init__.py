"""The re-encryption proxy node and the threshold client (see docs/proxy-operations.md).

Client side (what a grantee's integration uses)::

    from emrshare.proxy import ThresholdClient, ThresholdPolicy, ProxyEndpoint

    policy = ThresholdPolicy.from_grantee_map(gmap, endpoints, my_receiving_key_bytes)
    async with ThresholdClient(eth_key, chain_id=..., grants_contract=...) as client:
        result = await client.reencrypt(policy, [capsule], deadline=chain_now + 300)
    # result.cfrags[i]: M verified cfrags for capsule i; result.failures: who failed, why

In-process proxies are reached through :class:`RoutingTransport` (``transport=``).

This package is the client side and what both sides share: the signed request
(:mod:`.request`), the signed answers (:mod:`.response`), misbehaviour evidence
(:mod:`.evidence`) and the chain as a proxy sees it (:mod:`.chainview`: the
:class:`ProxyChain` protocol and the chain events a proxy follows).

Node side: :mod:`emrshare.proxy.node` (``emrshare proxy serve --config FILE`` runs
:func:`emrshare.proxy.node.serve`; every proxy is built by
:meth:`emrshare.proxy.node.ProxyParts.assemble`).
"""

from emrshare.proxy._routing import RoutingTransport
from emrshare.proxy.chainview import IndexedCapsule, ProxyChain, ProxyEvent
from emrshare.proxy.client import (
    PolicyKeys,
    ProxyEndpoint,
    ProxyFailure,
    ThresholdClient,
    ThresholdPolicy,
    ThresholdResult,
)
from emrshare.proxy.emergency import EmergencyClient, EmergencyRequest, SignedEmergencyRequest
from emrshare.proxy.evidence import Evidence
from emrshare.proxy.request import ReencryptRequest, Refusal, RefusalReason, SignedRequest

__all__ = [
    "EmergencyClient",
    "EmergencyRequest",
    "Evidence",
    "IndexedCapsule",
    "PolicyKeys",
    "ProxyChain",
    "ProxyEndpoint",
    "ProxyEvent",
    "ProxyFailure",
    "ReencryptRequest",
    "Refusal",
    "RefusalReason",
    "RoutingTransport",
    "SignedEmergencyRequest",
    "SignedRequest",
    "ThresholdClient",
    "ThresholdPolicy",
    "ThresholdResult",
]
