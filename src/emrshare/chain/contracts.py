"""Old path of the bindings (now :mod:`emrshare.chain.bindings`, :mod:`emrshare.chain.events`
and :mod:`emrshare.chain.values`), for the modules that still import it.

re-export: removed after r11
"""

from emrshare.chain.bindings import Grants, RecordIndex
from emrshare.chain.events import EntryAppended, GrantCreated, TagRevoked
from emrshare.chain.events import GrantRevokedEvent as GrantRevoked
from emrshare.chain.values import Role

__all__ = [
    "EntryAppended",
    "GrantCreated",
    "GrantRevoked",
    "Grants",
    "RecordIndex",
    "Role",
    "TagRevoked",
]
