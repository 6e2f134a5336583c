"""Old path of the proxy's chain view, now :class:`emrshare.proxy.node.chain.NodeChain`
over the typed bindings (network.py's LocalNetwork builds one as
``Web3ProxyChain(w3, deployment, key)``)."""

from emrshare.proxy.node.chain import NodeChain

Web3ProxyChain = NodeChain.connect  # re-export: removed after r11

__all__ = ["Web3ProxyChain"]
