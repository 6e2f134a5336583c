"""The re-encryption proxy node and the threshold client (see docs/proxy-operations.md).

Client side (what a grantee's integration uses)::

    from emrshare.proxy import ThresholdClient, ThresholdPolicy, ProxyEndpoint

    policy = ThresholdPolicy.from_grantee_map(gmap, endpoints, my_receiving_key_bytes)
    async with ThresholdClient(eth_key, chain_id=..., grants_contract=...) as client:
        result = await client.reencrypt(policy, [capsule], deadline=chain_now + 300)
    # result.cfrags[i]: M verified cfrags for capsule i; result.failures: who failed, why

Node side: ``emrshare proxy serve --config FILE`` (:func:`emrshare.proxy.node.serve`),
built from :class:`ProxyConfig`. The pieces, for embedding (``Network.local()`` runs
them in process): :class:`~emrshare.proxy.service.ProxyService` (the checks),
:class:`~emrshare.proxy.watcher.ChainWatcher`, :class:`~emrshare.proxy.audit.AuditFlusher`,
:class:`~emrshare.proxy.store.ProxyStore`, :func:`~emrshare.proxy.app.create_app`,
:class:`~emrshare.proxy.web3chain.Web3ProxyChain` (the :class:`ProxyChain` protocol over
JSON-RPC).
"""

from emrshare.proxy.chainview import PolicyStatus, ProxyChain
from emrshare.proxy.client import (
    PolicyKeys,
    ProxyEndpoint,
    ProxyFailure,
    ThresholdClient,
    ThresholdPolicy,
    ThresholdResult,
)
from emrshare.proxy.config import ProxyConfig
from emrshare.proxy.request import ReencryptRequest, Refusal, RefusalReason, SignedRequest

__all__ = [
    "PolicyKeys",
    "PolicyStatus",
    "ProxyChain",
    "ProxyConfig",
    "ProxyEndpoint",
    "ProxyFailure",
    "ReencryptRequest",
    "Refusal",
    "RefusalReason",
    "SignedRequest",
    "ThresholdClient",
    "ThresholdPolicy",
    "ThresholdResult",
]
