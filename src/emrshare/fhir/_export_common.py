"""What the FHIR exports (:mod:`emrshare.fhir.export`) share: the code systems, how an
account, a record and a category are written, and the resource types a category covers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from emrshare.categories import CATEGORIES, FHIR_CATEGORY_CODES, PURPOSES, SENSITIVITY_CATEGORIES
from emrshare.errors import InvalidInput
from emrshare.fhir._parse import _model_class
from emrshare.fhir._resource import FhirResource, FhirVersion
from emrshare.fhir.mapping import FHIR_TYPE_DEFAULTS, CategoryMapping

__all__ = [
    "CATEGORY_SYSTEM",
    "AccountKind",
    "account_reference",
    "category_resource_types",
    "record_reference",
    "security_labels",
]

#: The code system of emrshare's category names (``lab-results``, ``hiv`` …).
CATEGORY_SYSTEM = "https://emrshare.example/CodeSystem/category"
EXT = "https://emrshare.example/StructureDefinition/"
URI = "urn:ietf:rfc:3986"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
IRCP = {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
DCM = "http://dicom.nema.org/resources/ontology/DCM"

#: The resource type of an account's reference.
AccountKind = Literal["Patient", "Organization", "Practitioner", "RelatedPerson", "Device"]


#: The last second a FHIR instant (and Python's datetime) can say: 9999-12-31T23:59:59Z.
_LAST_INSTANT = 253_402_300_799


def instant(ts: int) -> str:
    """Unix seconds as a FHIR ``instant`` (UTC); a later time (a grant's expiry may be any
    uint64) is the last instant FHIR can write."""
    at = min(max(int(ts), 0), _LAST_INSTANT)
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hex64(value: str, what: str) -> str:
    text = value.lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput(f"{what} {value!r} is not 0x followed by 64 hex digits")
    return text


def account_reference(address: str, kind: AccountKind) -> dict[str, Any]:
    """A logical ``Reference`` to the account ``address`` of resource type ``kind``."""
    return {
        "type": kind,
        "identifier": {"system": URI, "value": f"urn:ethereum:{address}"},
        "display": address,
    }


def record_reference(record_id: str, display: str | None = None) -> dict[str, Any]:
    """A logical ``Reference`` to a record: identifier ``urn:emrshare:record:0x…``."""
    ref: dict[str, Any] = {
        "identifier": {
            "system": URI,
            "value": f"urn:emrshare:record:0x{hex64(record_id, 'record id')}",
        }
    }
    if display:
        ref["display"] = display
    return ref


def _category_label(category: str) -> str | None:
    """The DS4P sensitivity code of a sensitive category (``hiv`` → ``HIV``): the first
    label :data:`SENSITIVITY_CATEGORIES` maps to it."""
    return next((lab for lab, cat in SENSITIVITY_CATEGORIES.items() if cat == category), None)


def security_labels(category: str | None) -> list[dict[str, str]]:
    """The DS4P labels (Codings) of ``category``: a sensitive category's sensitivity code
    (``v3-ActCode``, ``HIV``) and confidentiality ``R``; ``restricted``: ``R``; an everyday
    category of the vocabulary: ``N``; a custom category or none: no label."""
    known = CATEGORIES.get(category) if category else None
    if known is None:
        return []
    if not known.sensitive:
        return [{"system": CONFIDENTIALITY, "code": "N", "display": "normal"}]
    out = []
    code = _category_label(known.slug)
    if code is not None and code not in ("R", "V"):
        out.append({"system": ACT_CODE, "code": code})
    out.append({"system": CONFIDENTIALITY, "code": "R", "display": "restricted"})
    return out


def category_coding(category: str) -> dict[str, str]:
    known = CATEGORIES.get(category)
    coding = {"system": CATEGORY_SYSTEM, "code": category}
    if known is not None:
        coding["display"] = known.title
    return coding


def purpose_coding(purpose: str) -> dict[str, str]:
    coding = {"system": ACT_REASON, "code": purpose}
    if purpose in PURPOSES:
        coding["display"] = PURPOSES[purpose]
    return coding


def meta(category: str | None) -> dict[str, Any]:
    labels = security_labels(category)
    return {"meta": {"security": labels}} if labels else {}


#: Types that carry a US Core category code (Observation category, DiagnosticReport v2-0074).
_CODED_TYPES = ("Observation", "DiagnosticReport")


def category_resource_types(
    category: str, version: FhirVersion, mapping: CategoryMapping | None = None
) -> list[str]:
    """The FHIR resource types of ``version`` that ``mapping`` (default: the built-in
    one) places in ``category`` by their type, or by a US Core category code
    (``lab-results``: ``DiagnosticReport``, ``Observation``, ``Specimen``), sorted. A
    sensitive category is placed by a security label whatever the type: none."""
    mapping = mapping or CategoryMapping.default()
    probes: list[tuple[str, str | None]] = [(t, None) for t in FHIR_TYPE_DEFAULTS]
    probes += [(t, code) for t in _CODED_TYPES for code in FHIR_CATEGORY_CODES]
    probes += [(rule_type, None) for rule in mapping.rules for rule_type in rule.resource_types]
    out: set[str] = set()
    for rtype, code in probes:
        if _model_class(rtype, version) is None:
            continue  # Media is R4 only, DeviceUsage R5 only
        obj: dict[str, Any] = {"resourceType": rtype}
        if code is not None:
            obj["category"] = [{"coding": [{"code": code}]}]
        if mapping.place(FhirResource(rtype, None, None, version, obj)).category == category:
            out.add(rtype)
    return sorted(out)
