"""The de-identification rules as data: for each resource type an allow-list of element
paths, each mapped to an action (docs/research.md prints this table; a unit test checks
that every row is there).

A path is dotted from the resource (``referenceRange.low``); a path's parents are kept as
objects when one of their children is. An action is either a leaf action (:data:`ACTIONS`)
or the name of a data type in :data:`DATATYPES`, whose own paths then apply below it.
Anything not listed is dropped: ``text``, ``note``, ``identifier``, ``name``, ``telecom``,
``extension``, ``modifierExtension`` (refused), attachment ``data`` and ``url`` …
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ACTIONS", "COMMON", "DATATYPES", "RESOURCES", "markdown"]

Rules = Mapping[str, str]

#: Leaf actions and what each does (the docs' legend).
ACTIONS: Mapping[str, str] = MappingProxyType({
    "keep": "a primitive value (code, boolean, number) kept as is",
    "id": "the resource id replaced by its study pseudonym (HMAC-SHA256)",
    "reference": "Reference, CodeableReference: `Type/id` → `Type/<pseudonym>`; display dropped",
    "date": "date or dateTime: reduced to the year, or shifted by the patient's offset",
    "instant": "instant: shifted by the patient's offset; dropped in the year-only profile",
    "birth_date": "as `date`; at age 90 or more dropped, and the Patient gets the 90+ extension",
    "concept": "Coding, CodeableConcept, a code: system and code of a standard terminology "
    "kept; display, version, text and local systems' codes dropped",
    "address": "state, country kept; ZIP → 3 digits (`000` where restricted); line, city dropped",
    "uid": "a DICOM UID replaced by a `2.25.<n>` pseudonym",
    "quantity": "value, comparator, unit, system, code kept; 90 years or more (UCUM or "
    "words) → `>= 90 a`",
    "meta": "only security labels and the synthetic tag kept, a de-identification tag added",
    "contained": "each contained resource de-identified by its own type's rules",
    "resource": "a Bundle entry's resource de-identified by its own type's rules",
    "full_url": "`urn:uuid:` → a pseudonymous `urn:uuid:`; any other fullUrl dropped",
    "identifier_pseudonym": "each identifier → a pseudonymous identifier (FHIR's org-1 wants one)",
})  # fmt: skip

#: Data types: a few elements each, by the same actions.
DATATYPES: Mapping[str, Rules] = MappingProxyType({
    "range": {"low": "quantity", "high": "quantity"},
    "ratio": {"numerator": "quantity", "denominator": "quantity"},
    "period": {"start": "date", "end": "date"},
    "attachment": {"contentType": "keep", "language": "keep", "creation": "date"},
    "reference_range": {"low": "quantity", "high": "quantity", "type": "concept",
                        "appliesTo": "concept", "age": "range"},
    "timing": {"event": "date", "code": "concept", "repeat.boundsPeriod": "period",
               "repeat.boundsDuration": "quantity", "repeat.count": "keep",
               "repeat.countMax": "keep", "repeat.duration": "keep", "repeat.durationMax": "keep",
               "repeat.durationUnit": "keep", "repeat.frequency": "keep",
               "repeat.frequencyMax": "keep", "repeat.period": "keep", "repeat.periodMax": "keep",
               "repeat.periodUnit": "keep", "repeat.dayOfWeek": "keep", "repeat.timeOfDay": "keep",
               "repeat.when": "keep", "repeat.offset": "keep"},
    "dosage": {"sequence": "keep", "additionalInstruction": "concept", "timing": "timing",
               "asNeeded": "keep", "asNeededBoolean": "keep", "asNeededCodeableConcept": "concept",
               "asNeededFor": "concept", "site": "concept", "route": "concept", "method": "concept",
               "doseAndRate.type": "concept", "doseAndRate.doseQuantity": "quantity",
               "doseAndRate.doseRange": "range", "doseAndRate.rateQuantity": "quantity",
               "doseAndRate.rateRatio": "ratio", "doseAndRate.rateRange": "range",
               "maxDosePerPeriod": "ratio", "maxDosePerAdministration": "quantity",
               "maxDosePerLifetime": "quantity"},
})  # fmt: skip

#: Elements every resource type keeps.
COMMON: Rules = MappingProxyType({
    "resourceType": "keep", "id": "id", "meta": "meta", "language": "keep",
    "contained": "contained",
})  # fmt: skip

_VALUES = {"valueQuantity": "quantity", "valueCodeableConcept": "concept", "valueBoolean": "keep",
           "valueInteger": "keep", "valueRange": "range", "valueRatio": "ratio",
           "valueDateTime": "date", "valuePeriod": "period"}  # fmt: skip

_OBSERVATION = {
    "status": "keep", "category": "concept", "code": "concept", "subject": "reference",
    "encounter": "reference", "focus": "reference", "basedOn": "reference",
    "partOf": "reference", "effectiveDateTime": "date", "effectivePeriod": "period",
    "effectiveInstant": "instant", "issued": "instant", "performer": "reference",
    **_VALUES, "dataAbsentReason": "concept", "interpretation": "concept",
    "bodySite": "concept", "method": "concept", "specimen": "reference", "device": "reference",
    "referenceRange": "reference_range", "hasMember": "reference", "derivedFrom": "reference",
    **{f"component.{k}": v for k, v in _VALUES.items()}, "component.code": "concept",
    "component.dataAbsentReason": "concept", "component.interpretation": "concept",
    "component.referenceRange": "reference_range",
}  # fmt: skip

#: Resource type → element path → action. Element names of R4/R4B and R5 side by side.
RESOURCES: Mapping[str, Rules] = MappingProxyType({
    "Patient": {
        "active": "keep", "gender": "keep", "birthDate": "birth_date",
        "deceasedBoolean": "keep", "deceasedDateTime": "date", "address": "address",
        "maritalStatus": "concept", "multipleBirthBoolean": "keep",
        "communication.language": "concept", "communication.preferred": "keep",
        "generalPractitioner": "reference", "managingOrganization": "reference",
    },
    "Observation": _OBSERVATION,
    "Condition": {
        "clinicalStatus": "concept", "verificationStatus": "concept", "category": "concept",
        "severity": "concept", "code": "concept", "bodySite": "concept",
        "subject": "reference", "encounter": "reference", "onsetDateTime": "date",
        "onsetPeriod": "period", "abatementDateTime": "date", "abatementPeriod": "period",
        "recordedDate": "date", "recorder": "reference", "asserter": "reference",
        "participant.function": "concept", "participant.actor": "reference",
        "stage.summary": "concept", "stage.type": "concept", "evidence.code": "concept",
        "evidence.detail": "reference", "evidence.concept": "concept",
        "evidence.reference": "reference",
    },
    "Encounter": {
        "status": "keep", "class": "concept", "type": "concept", "serviceType": "concept",
        "priority": "concept", "subject": "reference", "episodeOfCare": "reference",
        "basedOn": "reference", "partOf": "reference", "serviceProvider": "reference",
        "period": "period", "actualPeriod": "period", "length": "quantity",
        "participant.type": "concept", "participant.individual": "reference",
        "participant.actor": "reference", "participant.period": "period",
        "reasonCode": "concept", "reasonReference": "reference", "reason.use": "concept",
        "reason.value": "reference", "diagnosis.condition": "reference",
        "diagnosis.use": "concept", "diagnosis.rank": "keep",
        "hospitalization.admitSource": "concept",
        "hospitalization.dischargeDisposition": "concept",
        "admission.admitSource": "concept", "admission.dischargeDisposition": "concept",
        "location.location": "reference", "location.status": "keep",
        "location.period": "period",
    },
    "MedicationRequest": {
        "status": "keep", "statusReason": "concept", "intent": "keep", "category": "concept",
        "priority": "keep", "doNotPerform": "keep", "medicationCodeableConcept": "concept",
        "medicationReference": "reference", "medication": "reference",
        "subject": "reference", "encounter": "reference", "authoredOn": "date",
        "requester": "reference", "performer": "reference", "reasonCode": "concept",
        "reasonReference": "reference", "reason": "reference", "basedOn": "reference",
        "courseOfTherapyType": "concept", "dosageInstruction": "dosage",
        "dispenseRequest.validityPeriod": "period",
        "dispenseRequest.numberOfRepeatsAllowed": "keep",
        "dispenseRequest.quantity": "quantity",
        "dispenseRequest.expectedSupplyDuration": "quantity",
        "substitution.allowedBoolean": "keep", "substitution.allowedCodeableConcept": "concept",
        "substitution.reason": "concept", "priorPrescription": "reference",
    },
    "DiagnosticReport": {
        "status": "keep", "category": "concept", "code": "concept", "subject": "reference",
        "encounter": "reference", "basedOn": "reference", "effectiveDateTime": "date",
        "effectivePeriod": "period", "issued": "instant", "performer": "reference",
        "resultsInterpreter": "reference", "specimen": "reference", "result": "reference",
        "imagingStudy": "reference", "media.link": "reference", "conclusionCode": "concept",
    },
    "Procedure": {
        "status": "keep", "statusReason": "concept", "category": "concept", "code": "concept",
        "subject": "reference", "encounter": "reference", "basedOn": "reference",
        "partOf": "reference", "performedDateTime": "date", "performedPeriod": "period",
        "occurrenceDateTime": "date", "occurrencePeriod": "period", "recorded": "date",
        "recorder": "reference", "asserter": "reference", "performer.function": "concept",
        "performer.actor": "reference", "performer.onBehalfOf": "reference",
        "location": "reference", "reasonCode": "concept", "reasonReference": "reference",
        "reason": "reference", "bodySite": "concept", "outcome": "concept",
        "complication": "concept", "complicationDetail": "reference", "followUp": "concept",
        "usedCode": "concept",
    },
    "AllergyIntolerance": {
        "clinicalStatus": "concept", "verificationStatus": "concept", "type": "concept",
        "category": "keep", "criticality": "keep", "code": "concept", "patient": "reference",
        "encounter": "reference", "onsetDateTime": "date", "onsetPeriod": "period",
        "recordedDate": "date", "recorder": "reference", "asserter": "reference",
        "lastOccurrence": "date", "reaction.substance": "concept",
        "reaction.manifestation": "concept", "reaction.onset": "date",
        "reaction.severity": "keep", "reaction.exposureRoute": "concept",
    },
    "Immunization": {
        "status": "keep", "statusReason": "concept", "vaccineCode": "concept",
        "patient": "reference", "encounter": "reference", "occurrenceDateTime": "date",
        "recorded": "date", "primarySource": "keep", "location": "reference",
        "manufacturer": "reference", "expirationDate": "date", "site": "concept",
        "route": "concept", "doseQuantity": "quantity", "performer.function": "concept",
        "performer.actor": "reference", "reasonCode": "concept",
        "reasonReference": "reference", "reason": "reference", "isSubpotent": "keep",
        "protocolApplied.targetDisease": "concept",
        "protocolApplied.doseNumberPositiveInt": "keep",
        "protocolApplied.doseNumberString": "keep", "protocolApplied.doseNumber": "keep",
    },
    "DocumentReference": {
        "status": "keep", "docStatus": "keep", "type": "concept", "category": "concept",
        "modality": "concept", "subject": "reference", "date": "instant",
        "author": "reference", "authenticator": "reference", "custodian": "reference",
        "relatesTo.code": "concept", "relatesTo.target": "reference",
        "securityLabel": "concept", "content.attachment": "attachment",
        "content.format": "concept", "content.profile.valueCoding": "concept",
        "context.encounter": "reference", "context.event": "concept",
        "context.period": "period", "context.facilityType": "concept",
        "context.practiceSetting": "concept", "context.related": "reference",
        "context.reference": "reference", "event": "reference", "period": "period",
        "facilityType": "concept", "practiceSetting": "concept", "bodySite": "concept",
        "attester.mode": "concept", "attester.time": "date", "attester.party": "reference",
    },
    "Media": {
        "basedOn": "reference", "partOf": "reference", "status": "keep", "type": "concept",
        "modality": "concept", "view": "concept", "subject": "reference",
        "encounter": "reference", "createdDateTime": "date", "createdPeriod": "period",
        "issued": "instant", "operator": "reference", "reasonCode": "concept",
        "bodySite": "concept", "device": "reference", "height": "keep", "width": "keep",
        "frames": "keep", "duration": "keep", "content": "attachment",
    },
    "ImagingStudy": {
        "status": "keep", "modality": "concept", "subject": "reference",
        "encounter": "reference", "started": "date", "basedOn": "reference",
        "referrer": "reference", "interpreter": "reference", "numberOfSeries": "keep",
        "numberOfInstances": "keep", "procedureCode": "concept",
        "procedureReference": "reference", "procedure": "reference", "location": "reference",
        "reasonCode": "concept", "reasonReference": "reference", "reason": "reference",
        "series.uid": "uid", "series.number": "keep", "series.modality": "concept",
        "series.numberOfInstances": "keep", "series.bodySite": "concept",
        "series.laterality": "concept", "series.started": "date",
        "series.performer.function": "concept", "series.performer.actor": "reference",
        "series.instance.uid": "uid", "series.instance.sopClass": "concept",
        "series.instance.number": "keep",
    },
    "Consent": {
        "status": "keep", "scope": "concept", "category": "concept", "patient": "reference",
        "subject": "reference", "dateTime": "date", "date": "date", "period": "period",
        "performer": "reference", "organization": "reference", "grantor": "reference",
        "grantee": "reference", "manager": "reference", "controller": "reference",
        "sourceReference": "reference", "policyRule": "concept", "regulatoryBasis": "concept",
        "decision": "keep", "verification.verified": "keep",
        "verification.verificationDate": "date", "provision.type": "keep",
        "provision.period": "period", "provision.actor.role": "concept",
        "provision.actor.reference": "reference", "provision.action": "concept",
        "provision.securityLabel": "concept", "provision.purpose": "concept",
        "provision.class": "concept", "provision.documentType": "concept",
        "provision.resourceType": "concept", "provision.code": "concept",
        "provision.dataPeriod": "period", "provision.data.meaning": "keep",
        "provision.data.reference": "reference",
    },
    "Organization": {
        "identifier": "identifier_pseudonym", "active": "keep", "type": "concept",
        "partOf": "reference",
    },
    "Practitioner": {"active": "keep", "qualification.code": "concept"},
    "Bundle": {
        "type": "keep", "timestamp": "instant", "total": "keep", "entry.fullUrl": "full_url",
        "entry.resource": "resource",
    },
})  # fmt: skip


def markdown() -> str:
    """The rules as the Markdown tables of docs/research.md (``python -c "from
    emrshare.fhir._deid_rules import markdown; print(markdown())"`` prints them)."""
    lines = ["| resource type | element | action |", "|---|---|---|"]
    lines += [f"| (every type) | `{path}` | {action} |" for path, action in COMMON.items()]
    for rtype, rules in RESOURCES.items():
        lines += [f"| {rtype} | `{path}` | {action} |" for path, action in rules.items()]
    lines += ["", "| data type | element | action |", "|---|---|---|"]
    for name, rules in DATATYPES.items():
        lines += [f"| {name} | `{path}` | {action} |" for path, action in rules.items()]
    lines += ["", "| action | what it does |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in ACTIONS.items()]
    return "\n".join(lines)
