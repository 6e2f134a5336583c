"""The proxy node: the server side of :mod:`emrshare.proxy`.

``emrshare proxy serve --config FILE`` calls :func:`serve`, which builds a
:class:`ProxyNode` from a :class:`ProxyConfig`. Every proxy, in a process or in process,
is built by :meth:`ProxyParts.assemble` over a :class:`~emrshare.proxy.chainview.ProxyChain`
(a process uses :class:`~emrshare.proxy.node.chain.NodeChain`, over the typed bindings).

The pieces: :mod:`.service` (the checks), :mod:`.watcher` (follows the chain),
:mod:`.audit` (the flusher logging served accesses on chain), :mod:`.audit_journal`
(group commit of served requests), :mod:`.store` (SQLite state), :mod:`.app` (HTTP).
"""

from emrshare.proxy.node.assemble import ProxyParts
from emrshare.proxy.node.chain import NodeChain
from emrshare.proxy.node.config import ProxyConfig
from emrshare.proxy.node.process import ProxyNode, serve

__all__ = ["NodeChain", "ProxyConfig", "ProxyNode", "ProxyParts", "serve"]
