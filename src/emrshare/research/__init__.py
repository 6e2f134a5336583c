"""Research cohorts' de-identification service (issue 16): the process a consortium member
runs for studies that name it (``emrshare research serve``). It sits above the roles
layer: it reads what participants granted it as a :class:`~emrshare.roles.Requester`."""

from __future__ import annotations

from emrshare.research.app import create_app, serve
from emrshare.research.service import DeidService

__all__ = ["DeidService", "create_app", "serve"]
