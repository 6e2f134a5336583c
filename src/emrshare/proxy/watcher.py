"""Old path of :mod:`emrshare.proxy.node.watcher` (network.py's LocalNetwork imports it)."""

from emrshare.proxy.node.watcher import ChainWatcher  # re-export: removed after r11

__all__ = ["ChainWatcher"]
