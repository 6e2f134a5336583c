"""E-prescriptions as FHIR R4 ``MedicationRequest`` documents (issue 15).

A prescription record is one canonical-JSON ``MedicationRequest`` in the patient's
``prescriptions`` category. Its on-chain commitment (the ``Prescriptions`` contract's id)
is ``keccak256(salt || sha256(document))``
(:func:`emrshare.chain.ids.prescription_commitment`); the 32-byte random ``salt`` travels
inside the document, as the identifier of system :data:`SALT_SYSTEM`, so whoever reads the
record recomputes the commitment, and nobody without it can confirm a guessed drug.

The document names the patient (``subject``) and the prescriber (``requester``) by their
accounts, the fills (``dispenseRequest.numberOfRepeatsAllowed`` = fills - 1) and the
validity (``dispenseRequest.validityPeriod``), which the pharmacy checks against the
chain's copy. A pure module: no chain, no store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emrshare.errors import InvalidInput
from emrshare.fhir._export_common import account_reference
from emrshare.fhir._parse import parse_model, read_own_record
from emrshare.fhir._resource import FhirVersion, canonical_json

__all__ = [
    "RXNORM",
    "SALT_SYSTEM",
    "PrescriptionDoc",
    "medication_request",
    "read_prescription",
]

#: The identifier system of a prescription's salt (its value: ``0x`` + 64 hex digits).
SALT_SYSTEM = "urn:emrshare:rx-salt"
#: RxNorm, the default code system of a medication code.
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_ACCOUNT = re.compile(r"urn:ethereum:(0x[0-9a-fA-F]{40})")
_MAX_TEXT = 1000
_MAX_DOCUMENT = 64 * 1024


@dataclass(frozen=True, slots=True)
class PrescriptionDoc:
    """What one prescription says: ``medication`` (text, with an optional ``code`` of
    ``code_system``), ``dosage`` (text), ``fills`` allowed (1 = no repeats), issued at
    ``authored_on`` and valid until ``valid_until`` (unix seconds), by ``prescriber`` for
    ``patient`` (accounts); ``salt`` makes its commitment unguessable."""

    patient: str
    prescriber: str
    medication: str
    dosage: str
    fills: int
    authored_on: int
    valid_until: int
    salt: bytes
    code: str | None = None
    code_system: str = RXNORM
    note: str | None = None

    def __repr__(self) -> str:  # the salt is what keeps the commitment unguessable
        return (
            f"PrescriptionDoc(patient={self.patient}, prescriber={self.prescriber}, "
            f"fills={self.fills}, valid_until={self.valid_until})"
        )


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > _MAX_TEXT:
        raise InvalidInput(f"the prescription's {what} must be 1 to {_MAX_TEXT} characters")
    return value


def medication_request(doc: PrescriptionDoc) -> bytes:
    """``doc`` as a validated FHIR R4 ``MedicationRequest`` in canonical JSON: the bytes
    of the record, whose SHA-256 the commitment takes. :class:`InvalidInput` for a
    prescription a pharmacy could not fill (no medication, fills outside 1..63, a salt
    that is not 32 bytes, validity not after issue)."""
    if len(doc.salt) != 32:
        raise InvalidInput("a prescription's salt is 32 random bytes")
    if not 1 <= doc.fills <= 63:
        raise InvalidInput(f"fills must be 1 to 63, not {doc.fills}")
    if doc.valid_until <= doc.authored_on:
        raise InvalidInput("a prescription must be valid after the time it is issued")
    medication: dict[str, Any] = {"text": _text(doc.medication, "medication")}
    if doc.code:
        medication["coding"] = [{"system": doc.code_system, "code": doc.code.strip()}]
    obj: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        # Not the salt's digits: the salt keys the commitment and the reader key.
        "id": hashlib.sha256(b"emrshare/rx-id" + doc.salt).hexdigest()[:32],
        "identifier": [{"system": SALT_SYSTEM, "value": "0x" + doc.salt.hex()}],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": account_reference(doc.patient, "Patient"),
        "authoredOn": _iso(doc.authored_on),
        "requester": account_reference(doc.prescriber, "Practitioner"),
        "dosageInstruction": [{"text": _text(doc.dosage, "dosage")}],
        "dispenseRequest": {
            "validityPeriod": {"start": _iso(doc.authored_on), "end": _iso(doc.valid_until)},
            "numberOfRepeatsAllowed": doc.fills - 1,
        },
    }
    if doc.note:
        obj["note"] = [{"text": _text(doc.note, "note")}]
    parse_model(obj, FhirVersion.R4)
    return canonical_json(obj)


def _account(ref: Any, what: str) -> str:
    value = ((ref or {}).get("identifier") or {}).get("value", "")
    m = _ACCOUNT.fullmatch(str(value))
    if m is None:
        raise InvalidInput(f"the prescription names no {what} account (urn:ethereum:0x…)")
    return m.group(1)


def _time(value: Any, what: str) -> int:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise InvalidInput(f"the prescription's {what} is not a date-time") from exc


def read_prescription(data: bytes) -> PrescriptionDoc:
    """The prescription of a record's bytes: a valid R4 ``MedicationRequest`` in the
    canonical JSON :func:`medication_request` writes, with a salt. :class:`InvalidInput`
    (:class:`~emrshare.errors.InvalidFhir` for an invalid resource) for anything else: a
    record that is not a prescription is never taken for one."""
    obj = read_own_record(data, "MedicationRequest", kind="a prescription", max_bytes=_MAX_DOCUMENT)
    if (obj.get("status"), obj.get("intent")) != ("active", "order"):
        raise InvalidInput("the prescription is not an active order")
    if len(obj.get("dosageInstruction") or []) != 1 or "medicationCodeableConcept" not in obj:
        raise InvalidInput("a prescription names one medication and one dosage")
    repeats = (obj.get("dispenseRequest") or {}).get("numberOfRepeatsAllowed", 0)
    if type(repeats) is not int:
        raise InvalidInput("the prescription's repeats are not a whole number")
    if canonical_json(obj) != data:
        raise InvalidInput("the prescription is not in canonical JSON; it was not issued here")
    salts = [
        i.get("value", "") for i in obj.get("identifier", []) if i.get("system") == SALT_SYSTEM
    ]
    if len(salts) != 1 or not re.fullmatch(r"0x[0-9a-f]{64}", str(salts[0])):
        raise InvalidInput("the prescription carries no salt identifier; it was not issued here")
    dispense = obj.get("dispenseRequest") or {}
    period = dispense.get("validityPeriod") or {}
    coding = (obj.get("medicationCodeableConcept") or {}).get("coding") or [{}]
    notes = obj.get("note") or [{}]
    return PrescriptionDoc(
        patient=_account(obj.get("subject"), "patient"),
        prescriber=_account(obj.get("requester"), "prescriber"),
        medication=str((obj.get("medicationCodeableConcept") or {}).get("text", "")),
        dosage=str(((obj.get("dosageInstruction") or [{}])[0]).get("text", "")),
        fills=int(dispense.get("numberOfRepeatsAllowed", 0)) + 1,
        authored_on=_time(obj.get("authoredOn"), "authoredOn"),
        valid_until=_time(period.get("end"), "validity end"),
        salt=bytes.fromhex(str(salts[0])[2:]),
        code=coding[0].get("code"),
        code_system=str(coding[0].get("system") or RXNORM),
        note=notes[0].get("text"),
    )
