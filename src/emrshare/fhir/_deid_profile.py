"""De-identification profiles (:class:`DeidProfile`, :data:`DEID_PROFILES`) and the
constants the engine writes: the 90+ extension, the profile tag, the pseudonym system."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from emrshare.fhir._deid_rules import COMMON, DATATYPES, RESOURCES

__all__ = [
    "AGE_90_EXTENSION", "DEID_PROFILES", "DEID_TAG_SYSTEM", "PSEUDONYM_SYSTEM", "RESTRICTED_ZIP3",
    "SHIFT_DAYS", "SYNTHETIC_SYSTEM", "DeidProfile", "profile_id",
]  # fmt: skip

#: The extension a Patient aged 90 or more gets in place of its birthDate.
AGE_90_EXTENSION = "https://emrshare.example/fhir/StructureDefinition/deid-age-90-or-older"
#: The ``meta.tag`` system naming the profile a resource was de-identified with.
DEID_TAG_SYSTEM = "https://emrshare.example/fhir/deid-profile"
#: The identifier system of pseudonymous identifiers (an Organization keeps one for org-1).
PSEUDONYM_SYSTEM = "https://emrshare.example/fhir/deid-pseudonym"
#: The 3-digit ZIP codes of 20,000 people or fewer (HHS, 2000 census): they become ``000``.
RESTRICTED_ZIP3 = frozenset((
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
))  # fmt: skip
#: Shifts are drawn from -SHIFT_DAYS..-1: dates only move back, never into the future.
SHIFT_DAYS = 365
SYNTHETIC_SYSTEM = "https://emrshare.example/synthetic"


def profile_id(name: str) -> bytes:
    """SHA-256 of the profile's name (32 bytes): how a study names its profile on chain."""
    return hashlib.sha256(name.encode()).digest()


@dataclass(frozen=True, slots=True)
class DeidProfile:
    """A de-identification profile: a versioned name, how dates are treated (``"year"``:
    reduced to the year, instants dropped; ``"shift"``: moved by a per-patient offset) and
    the rules table (resource type → element path → action; see docs/research.md).

    The versioned name stands for the rules: profiles compare and hash by name, dates, kept
    tags and description, not by their tables (a changed table is a new name, ``…/2``)."""

    name: str
    dates: Literal["year", "shift"]
    rules: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: RESOURCES, repr=False, compare=False
    )
    datatypes: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: DATATYPES, repr=False, compare=False
    )
    common: Mapping[str, str] = field(default_factory=lambda: COMMON, repr=False, compare=False)
    #: ``meta.tag`` systems kept (every other tag is dropped).
    kept_tag_systems: frozenset[str] = frozenset({SYNTHETIC_SYSTEM})
    description: str = ""

    @property
    def id(self) -> bytes:
        """:func:`profile_id` of :attr:`name`."""
        return profile_id(self.name)


DEID_PROFILES: Mapping[str, DeidProfile] = MappingProxyType({
    "hipaa-safe-harbor/1": DeidProfile(
        "hipaa-safe-harbor/1", "year",
        description="HIPAA Safe Harbor: the 18 identifiers removed, dates reduced to the year",
    ),
    "hipaa-safe-harbor-shifted/1": DeidProfile(
        "hipaa-safe-harbor-shifted/1", "shift",
        description="Safe Harbor's removals with dates shifted by a per-patient offset of "
        "1 to 365 days back (not literal Safe Harbor: needs an expert determination)",
    ),
})  # fmt: skip
