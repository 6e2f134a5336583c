"""Old path of :mod:`emrshare.proxy.node.store`."""

from emrshare.proxy.node.store import ProxyStore  # re-export: removed after r11

__all__ = ["ProxyStore"]
