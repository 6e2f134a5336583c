"""Adverse drug reactions as FHIR R4 ``AdverseEvent`` records (issue 17).

A clinician's report is one canonical-JSON ``AdverseEvent`` record in the patient's index
(category ``allergies``, where :mod:`emrshare.fhir.mapping` files the type). It names the
patient and the recording clinician by account, what happened (text), when, the
seriousness and severity, and the suspected batch (``suspectEntity.instance``: an
identifier of system :data:`BATCH_SYSTEM`, the ``DrugTrace`` batch id, with the GTIN and
lot as its display). The on-chain notice (``DrugTrace.reportAdverseEvent``) carries the
batch and the SHA-256 of these bytes, never the patient: the 32-byte salt inside the
document (identifier of system :data:`SALT_SYSTEM`) keeps the digest unguessable.

Seriousness 1..4 (the contract's scale) maps to FHIR as: 1 non-serious, mild; 2
non-serious, moderate; 3 serious, severe; 4 serious, severe, outcome fatal. A pure module.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emrshare.errors import InvalidInput
from emrshare.fhir._export_common import account_reference
from emrshare.fhir._parse import parse_model, read_own_record
from emrshare.fhir._resource import FhirVersion, canonical_json

__all__ = [
    "BATCH_SYSTEM",
    "SALT_SYSTEM",
    "AdverseEventDoc",
    "adverse_event_resource",
    "read_adverse_event",
]

#: The identifier system of a suspected batch (``DrugTrace`` batch id, ``0x`` + 64 hex).
BATCH_SYSTEM = "urn:emrshare:drug-batch"
#: The identifier system of the report's salt.
SALT_SYSTEM = "urn:emrshare:adverse-event-salt"
_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
_GRADES = {
    1: ("non-serious", "mild", None),
    2: ("non-serious", "moderate", None),
    3: ("serious", "severe", None),
    4: ("serious", "severe", "fatal"),
}
_MAX_TEXT = 2000
_MAX_DOCUMENT = 64 * 1024


@dataclass(frozen=True, slots=True)
class AdverseEventDoc:
    """A reaction of ``patient`` suspected of batch ``batch_id`` (``gtin``/``lot`` shown),
    recorded by ``recorder`` at ``recorded`` (unix seconds), graded ``seriousness`` 1..4."""

    patient: str
    recorder: str
    batch_id: bytes
    gtin: str
    lot: str
    description: str
    seriousness: int
    recorded: int
    salt: bytes = field(default_factory=lambda: os.urandom(32))

    def __repr__(self) -> str:  # the description is clinical data
        return f"AdverseEventDoc(batch=0x{self.batch_id.hex()[:12]}…, grade={self.seriousness})"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def adverse_event_resource(doc: AdverseEventDoc) -> bytes:
    """``doc`` as a validated FHIR R4 ``AdverseEvent`` in canonical JSON (the record's
    bytes; the on-chain digest is their SHA-256)."""
    if doc.seriousness not in _GRADES:
        raise InvalidInput("seriousness is 1 (mild) to 4 (fatal)")
    text = doc.description.strip()
    if not text or len(text) > _MAX_TEXT:
        raise InvalidInput(f"describe the reaction in 1 to {_MAX_TEXT} characters")
    if len(doc.batch_id) != 32 or len(doc.salt) != 32:
        raise InvalidInput("a batch id and a salt are 32 bytes")
    serious, severity, outcome = _GRADES[doc.seriousness]
    obj: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": hashlib.sha256(b"emrshare/adverse-event-id" + doc.salt).hexdigest()[:32],
        "identifier": {"system": SALT_SYSTEM, "value": "0x" + doc.salt.hex()},
        "actuality": "actual",
        "event": {"text": text},
        "subject": account_reference(doc.patient, "Patient"),
        "date": _iso(doc.recorded),
        "recordedDate": _iso(doc.recorded),
        "recorder": account_reference(doc.recorder, "Practitioner"),
        "seriousness": {"coding": [{"system": _SERIOUSNESS, "code": serious}]},
        "severity": {"coding": [{"system": _SEVERITY, "code": severity}]},
        "suspectEntity": [
            {
                "instance": {
                    "type": "Medication",
                    "identifier": {"system": BATCH_SYSTEM, "value": "0x" + doc.batch_id.hex()},
                    "display": f"GTIN {doc.gtin} lot {doc.lot}",
                }
            }
        ],
    }
    if outcome is not None:
        obj["outcome"] = {"coding": [{"system": _OUTCOME, "code": outcome}]}
    parse_model(obj, FhirVersion.R4)
    return canonical_json(obj)


def read_adverse_event(data: bytes) -> tuple[bytes, int]:
    """The suspected batch id and the seriousness (1..4) of an ``AdverseEvent`` record
    :func:`adverse_event_resource` wrote (``InvalidInput`` for anything else)."""
    obj = read_own_record(
        data, "AdverseEvent", kind="an adverse-event report", max_bytes=_MAX_DOCUMENT
    )
    try:
        ident = obj["suspectEntity"][0]["instance"]["identifier"]
        if ident["system"] != BATCH_SYSTEM:
            raise KeyError("system")
        batch = bytes.fromhex(str(ident["value"]).removeprefix("0x"))
        serious = obj["seriousness"]["coding"][0]["code"]
        severity = obj["severity"]["coding"][0]["code"]
        fatal = (obj.get("outcome") or {}).get("coding", [{}])[0].get("code") == "fatal"
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidInput("the AdverseEvent names no emrshare batch or grade") from exc
    grade = next(
        (
            g
            for g, (s, v, o) in _GRADES.items()
            if (s, v, o == "fatal") == (serious, severity, fatal)
        ),
        None,
    )
    if len(batch) != 32 or grade is None:
        raise InvalidInput("the AdverseEvent names no emrshare batch or grade")
    return batch, grade
