"""The member facades' old home (``Provider``, ``Requester``, ``ConsortiumAdmin``)."""

# re-export: removed after r11
from emrshare.roles.admin import ConsortiumAdmin
from emrshare.roles.provider import Provider
from emrshare.roles.requester import Requester

__all__ = ["ConsortiumAdmin", "Provider", "Requester"]
