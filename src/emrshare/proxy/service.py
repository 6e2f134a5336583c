"""Old path of :mod:`emrshare.proxy.node.service` (network.py's LocalNetwork imports it)."""

from emrshare.proxy.node.service import ProxyService  # re-export: removed after r11

__all__ = ["ProxyService"]
