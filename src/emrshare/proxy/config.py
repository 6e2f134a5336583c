"""Old path of :mod:`emrshare.proxy.node.config`."""

from emrshare.proxy.node.config import ProxyConfig  # re-export: removed after r11

__all__ = ["ProxyConfig"]
