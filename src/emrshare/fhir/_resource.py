"""The two value types every part of :mod:`emrshare.fhir` shares: :class:`FhirVersion`
and :class:`FhirResource` (one parsed, validated resource and where it came from)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from emrshare.errors import InvalidInput

__all__ = ["FHIR_JSON", "FhirResource", "FhirVersion", "canonical_json"]

#: The FHIR JSON media type (``; fhirVersion=4.0`` names the version, FHIR R4 §3.1.0.1.8).
FHIR_JSON = "application/fhir+json"

_NAMES = {
    "r4": "4.0", "4.0": "4.0", "4.0.1": "4.0",
    "r4b": "4.3", "4.3": "4.3", "4.3.0": "4.3",
    "r5": "5.0", "5.0": "5.0", "5.0.0": "5.0",
}  # fmt: skip
_PARAM = re.compile(r";\s*fhirVersion\s*=\s*\"?([0-9.]+)\"?", re.IGNORECASE)


class FhirVersion(StrEnum):
    """A FHIR release, valued by its ``fhirVersion`` media-type parameter.

    R4 (4.0.1) resources are parsed with the R4B models of ``fhir.resources`` (8.x ships
    R4B and R5, not R4; R4B changed no resource an EHR exports for a patient), and the
    suite checks R4 exports against the official R4 JSON schema as well.
    """

    R4 = "4.0"
    R4B = "4.3"
    R5 = "5.0"

    @classmethod
    def parse(cls, name: str | FhirVersion) -> FhirVersion:
        """``R4``, ``4.0.1``, ``r4b``, ``5.0`` …: the version named; :class:`InvalidInput`
        for anything else."""
        if isinstance(name, FhirVersion):
            return name
        found = _NAMES.get(str(name).strip().lower())
        if found is None:
            raise InvalidInput(
                f"{name!r} is not a FHIR version this library reads: use R4, R4B or R5"
            )
        return cls(found)

    @property
    def label(self) -> str:
        """``R4``, ``R4B`` or ``R5``."""
        return self.name

    @property
    def media_type(self) -> str:
        """``application/fhir+json; fhirVersion=4.0`` and so on: a record's media type."""
        return f"{FHIR_JSON}; fhirVersion={self.value}"

    @classmethod
    def of_media_type(cls, media_type: str | None) -> FhirVersion | None:
        """The version a record's media type names; ``None`` if it is not FHIR JSON (a
        FHIR JSON type without the parameter is R4, the version EHRs export most)."""
        if not media_type or not media_type.lower().startswith(FHIR_JSON):
            return None
        found = _PARAM.search(media_type)
        if found is None:
            return cls.R4
        value = _NAMES.get(found.group(1))
        return cls(value) if value is not None else None


def canonical_json(obj: Any) -> bytes:
    """``obj`` as compact JSON with sorted keys (UTF-8): the bytes a resource record holds,
    the same for the same resource however its file was laid out."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class FhirResource:
    """One FHIR resource, parsed and validated as ``version``, and where it came from.

    ``json`` is the resource as given (a JSON object); ``source`` the file and
    ``location`` the place in it (``entry[3].resource``, ``line 17``, ``""`` for a file
    holding one resource), ``full_url`` its Bundle entry's ``fullUrl`` (``urn:uuid:…`` in
    a transaction, which other entries' references use; ``""`` outside a Bundle).
    """

    resource_type: str
    id: str | None
    version_id: str | None
    version: FhirVersion
    json: dict[str, Any] = field(repr=False)
    source: str = ""
    location: str = ""
    full_url: str = ""

    @property
    def reference(self) -> str:
        """``Type/id`` (``Type/#sha256`` prefix for a resource without an id)."""
        if self.id:
            return f"{self.resource_type}/{self.id}"
        return f"{self.resource_type}/#{self.digest()[:16]}"

    @property
    def identity(self) -> str:
        """What names this resource across imports: ``Type/id/_history/versionId``; without
        ``meta.versionId``, ``Type/id/_history/#<sha256>`` of its canonical JSON (so an
        export that changed a resource but kept no version writes the change, and an
        unchanged one writes nothing); without an id, ``Type/#<sha256>``. Two imports of
        the same identity write once."""
        if not self.id:
            return f"{self.resource_type}/#{self.digest()}"
        return f"{self.resource_type}/{self.id}/_history/{self.version_id or '#' + self.digest()}"

    def digest(self) -> str:
        """SHA-256 (hex) of the resource's canonical JSON (:func:`canonical_json`)."""
        return hashlib.sha256(canonical_json(self.json)).hexdigest()

    def _reference_of(self, *names: str) -> str | None:
        for name in names:
            value: Any = self.json
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                return str(value["reference"])
        return None

    @property
    def subject(self) -> str | None:
        """The patient reference (``Patient/p1``) the resource is about: itself for a
        Patient, else ``subject``, ``patient``, ``beneficiary``, ``individual`` or ``for``
        (a Task's)."""
        if self.resource_type == "Patient" and self.id:
            return f"Patient/{self.id}"
        return self._reference_of("subject", "patient", "beneficiary", "individual", "for")

    @property
    def encounter(self) -> str | None:
        """The encounter reference the resource belongs to: itself for an Encounter, else
        ``encounter``, ``context.encounter`` (DocumentReference R4) or an Encounter among
        ``context`` (DocumentReference R5, a list of references)."""
        if self.resource_type == "Encounter" and self.id:
            return f"Encounter/{self.id}"
        found = self._reference_of("encounter", "context.encounter")
        if found is None and isinstance(self.json.get("context"), list):
            found = next(
                (
                    str(c["reference"])
                    for c in self.json["context"]
                    if isinstance(c, dict) and "Encounter/" in str(c.get("reference", ""))
                ),
                None,
            )
        return found

    @property
    def security_labels(self) -> tuple[str, ...]:
        """The codes of ``meta.security`` (DS4P labels: ``R``, ``V``, ``HIV``, ``PSY`` …),
        then those of its ``contained`` resources: they are stored inside this resource's
        record, so an HIV-labelled Observation contained in a lab report labels the report."""
        contained = self.json.get("contained")
        inner = [c for c in contained if isinstance(c, dict)] if isinstance(contained, list) else []
        return tuple(code for obj in (self.json, *inner) for code in _labels(obj))

    @property
    def category_codes(self) -> tuple[str, ...]:
        """The codes of ``category[].coding[]`` (``laboratory``, ``LAB``, ``problem-list-item``)
        and of a single ``category.coding[]`` (as some resources have it)."""
        cats = self.json.get("category")
        if isinstance(cats, dict):
            cats = [cats]
        if not isinstance(cats, list):
            return ()
        out: list[str] = []
        for cat in cats:
            codings = cat.get("coding") if isinstance(cat, dict) else None
            for c in codings if isinstance(codings, list) else ():
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    out.append(str(c["code"]))
        return tuple(out)


def _labels(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("meta")
    labels = meta.get("security") if isinstance(meta, dict) else None
    if not isinstance(labels, list):
        return []
    return [
        str(c["code"]) for c in labels if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]
