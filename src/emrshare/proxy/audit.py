"""Old path of :mod:`emrshare.proxy.node.audit` (network.py's LocalNetwork imports it)."""

from emrshare.proxy.node.audit import AuditFlusher  # re-export: removed after r11

__all__ = ["AuditFlusher"]
