"""Old path of :mod:`emrshare.proxy.node.app` (network.py's LocalNetwork imports it)."""

from emrshare.proxy.node.app import create_app  # re-export: removed after r11

__all__ = ["create_app"]
