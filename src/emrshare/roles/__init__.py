"""The facades a hospital integration, a patient app or an insurer imports.

- :class:`Patient` — owns the keys; authorizes writers, grants, revokes, answers requests,
  reads own records and the audit trail.
- :class:`Provider` — a hospital EHR: writes records (journaled, exactly once), reads
  what it was granted.
- :class:`Requester` — insurers, pharmacies, researchers: request access and read.
- :class:`ConsortiumAdmin` — admits members.
"""

from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    RecordInfo,
    parse_duration,
    parse_role,
)
from emrshare.roles._oplog import Operation, OperationResult
from emrshare.roles.member import ConsortiumAdmin, Provider, Requester
from emrshare.roles.patient import Patient
from emrshare.roles.profiles import Profile, Profiles, default_data_dir

__all__ = [
    "AccessEvent",
    "AccessRequestInfo",
    "ConsortiumAdmin",
    "GrantInfo",
    "Operation",
    "OperationResult",
    "Patient",
    "Profile",
    "Profiles",
    "Provider",
    "RecordInfo",
    "Requester",
    "default_data_dir",
    "parse_duration",
    "parse_role",
]
