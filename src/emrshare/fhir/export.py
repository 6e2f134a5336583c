"""Grants, the audit trail and record authorship as FHIR resources, built from plain facts
(:class:`ConsentFacts`, :class:`AuditFacts`, :class:`ProvenanceFacts`): this module reads no
chain and no store (``emrshare.roles`` gathers the facts, see ``Patient.fhir``).

Every builder returns a JSON object (a ``dict``) that validates as the FHIR version asked
for (``FhirVersion.R4``: the R4B models of ``fhir.resources`` and the official R4 JSON
schema; ``FhirVersion.R5``: the R5 models). The shape choices, shared by all three:

- **Accounts are logical references.** A patient, a member (grantee, reader, author), a
  guardian and a proxy are Ethereum addresses, not resources on a FHIR server, so each is a
  ``Reference`` by identifier: ``{"type": "Patient", "identifier": {"system":
  "urn:ietf:rfc:3986", "value": "urn:ethereum:0xAbC…"}, "display": "0xAbC…"}``
  (:func:`account_reference`); members are ``Organization``, a guardian ``RelatedPerson``,
  a proxy ``Device``. Never ``Patient/<address>``: no server holds such a resource.
- **Records and grants are identifiers**, not DocumentReferences: a record is
  ``urn:emrshare:record:0x<64 hex>`` (in ``AuditEvent.entity.what`` and
  ``Provenance.target``), a grant ``urn:emrshare:grant:0x<64 hex>`` (``Consent.identifier``).
- **Resource ids** are the 64 hex digits of the policy id (Consent) and record id
  (Provenance); an AuditEvent's is the SHA-256 of its facts, so an export run twice gives
  the same resources.
- **Times are block times** (unix seconds, UTC), written as FHIR instants
  (``2026-12-03T05:40:12Z``).
- **A category is a code** of :data:`CATEGORY_SYSTEM`, and its DS4P labels (the inverse of
  :data:`emrshare.categories.SENSITIVITY_CATEGORIES`: ``hiv`` → ``HIV`` of ``v3-ActCode``
  with confidentiality ``R``; ``restricted`` → ``R``; an everyday category → ``N``; a custom
  one → none) go in ``meta.security`` of every resource about it: a Consent, AuditEvent or
  Provenance about an HIV record discloses that there is one.

Consent follows IHE PCF (Privacy Consent on FHIR), AuditEvent the IHE BALP (Basic Audit Log
Patterns) read pattern; each builder's docstring lists its elements.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from emrshare.errors import InvalidInput
from emrshare.fhir._export_common import (
    ACT_CODE,
    CATEGORY_SYSTEM,
    DCM,
    EXT,
    IRCP,
    RESOURCE_TYPES,
    URI,
    AccountKind,
    account_reference,
    category_coding,
    category_resource_types,
    hex64,
    instant,
    meta,
    purpose_coding,
    record_reference,
    security_labels,
)
from emrshare.fhir._resource import FhirVersion, canonical_json
from emrshare.fhir.mapping import CategoryMapping

__all__ = [
    "CATEGORY_SYSTEM",
    "AuditFacts",
    "ConsentFacts",
    "ProvenanceFacts",
    "account_reference",
    "audit_event",
    "bundle",
    "category_resource_types",
    "consent",
    "provenance",
    "record_reference",
    "security_labels",
]


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """One grant, as a Consent shows it.

    ``grant_id`` is the policy id (``0x`` + 64 hex), ``patient``, ``grantee`` and ``by``
    (the guardian that made it in the patient's name, if one did) are addresses;
    ``expiry`` and ``created`` (the grant's block time) are unix seconds; ``status`` is
    the grant's status on chain time (``active``; ``revoked``, ``expired``,
    ``tag_revoked``: inactive); ``purpose`` a FHIR PurposeOfUse code (``TREAT``), known
    when the grant answered an access request that named one.
    """

    grant_id: str
    patient: str
    grantee: str
    category: str | None
    expiry: int
    status: str
    created: int | None = None
    purpose: str | None = None
    grantee_kind: Literal["Organization", "Practitioner"] = "Organization"
    threshold: int | None = None
    proxies: tuple[str, ...] = ()
    by: str | None = None
    #: The records a scoped grant names (``0x`` + 64 hex each); empty: the whole category.
    records: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """One read a grantee was served (or one logged access that failed the patient's
    checks), as an AuditEvent shows it.

    ``evaluated`` is the block time the proxies evaluated the grant at (unix seconds);
    ``proxies`` the proxies that logged the read, in log order; ``anomaly`` empty for a
    served read, else what failed (the event's outcome is then a failure).
    """

    policy_id: str
    requester: str
    patient: str
    record_ids: tuple[str, ...]
    proxies: tuple[str, ...]
    evaluated: int
    category: str | None = None
    purpose: str | None = None
    anomaly: str = ""
    requester_kind: Literal["Organization", "Practitioner"] = "Organization"


@dataclass(frozen=True, slots=True)
class ProvenanceFacts:
    """Who wrote one record: ``author`` (an address: the patient, or a Provider) and its
    ``author_signature`` (65 bytes: r, s, v, secp256k1 over the index entry's author
    digest, :func:`emrshare.crypto.entry.author_digest`); ``recorded`` the block time the
    entry was appended at, ``created`` the time the author put in the entry."""

    record_id: str
    patient: str
    author: str
    author_signature: bytes
    recorded: int
    category: str | None = None
    media_type: str | None = None
    created: int | None = None


# -- Consent ------------------------------------------------------------------------------

_CONSENT_CATEGORY = {
    "coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]
}
_ACCESS = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]
}


def _extensions(facts: ConsentFacts) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if facts.threshold is not None:
        out.append({"url": EXT + "proxy-threshold", "valueInteger": int(facts.threshold)})
    for proxy in facts.proxies:
        ref = account_reference(proxy, "Device")
        out.append({"url": EXT + "proxy", "valueReference": ref})
    return out


def consent(
    facts: ConsentFacts,
    version: FhirVersion | str = FhirVersion.R4,
    *,
    mapping: CategoryMapping | None = None,
) -> dict[str, Any]:
    """A grant as a Consent (after IHE PCF): a permit of read access to one category.

    Both versions: ``id`` the policy id's 64 hex digits, ``identifier``
    ``urn:emrshare:grant:0x…``, ``status`` ``active`` or ``inactive`` (revoked, expired),
    ``category`` LOINC 59284-0 "Patient Consent", and one provision: ``actor`` the grantee
    in role ``IRCP`` (information recipient, ``v3-ParticipationType``), ``action`` access,
    ``period.end`` the expiry, ``purpose`` the request's PurposeOfUse code (``v3-ActReason``)
    if known, ``securityLabel`` the category's DS4P labels, ``code`` the category
    (:data:`CATEGORY_SYSTEM`) and the resource types it covers
    (:func:`category_resource_types`, system ``http://hl7.org/fhir/resource-types``).
    The proxies and threshold are extensions (``…/StructureDefinition/proxy``,
    ``…/proxy-threshold``). A grant scoped to records lists them in ``provision.data``
    (meaning ``instance``, each a logical reference ``urn:emrshare:record:0x…``).

    R4: ``scope`` patient-privacy, ``patient``, ``dateTime`` (the grant's block time),
    ``performer`` the patient (or the guardian that made it), ``policyRule`` OPTIN,
    ``provision.type`` permit and the types in ``provision.class``.
    R5: ``subject``, ``date``, ``period``, ``grantor`` the patient (or guardian),
    ``grantee``, ``decision`` permit and the types in ``provision.resourceType``.
    """
    version = FhirVersion.parse(version)
    pid = hex64(facts.grant_id, "grant id")
    patient = account_reference(facts.patient, "Patient")
    grantee = account_reference(facts.grantee, facts.grantee_kind)
    granted_by = account_reference(facts.by, "RelatedPerson") if facts.by else patient
    active = str(facts.status).lower() == "active"
    provision: dict[str, Any] = {
        "actor": [{"role": {"coding": [IRCP]}, "reference": grantee}],
        "action": [_ACCESS],
        "period": {"end": instant(facts.expiry)},
    }
    if facts.records:
        provision["data"] = [
            {"meaning": "instance", "reference": record_reference(r)} for r in facts.records
        ]
    if facts.purpose:
        provision["purpose"] = [purpose_coding(facts.purpose)]
    labels = security_labels(facts.category)
    if labels:
        provision["securityLabel"] = labels
    types: list[dict[str, str]] = []
    if facts.category:
        provision["code"] = [{"coding": [category_coding(facts.category)]}]
        types = [
            {"system": RESOURCE_TYPES, "code": t}
            for t in category_resource_types(facts.category, version, mapping)
        ]
    out: dict[str, Any] = {
        "resourceType": "Consent",
        "id": pid,
        **meta(facts.category),
        "identifier": [{"system": URI, "value": f"urn:emrshare:grant:0x{pid}"}],
        "status": "active" if active else "inactive",
        "category": [_CONSENT_CATEGORY],
    }
    extensions = _extensions(facts)
    if extensions:
        out["extension"] = extensions
    if version is FhirVersion.R5:
        out["subject"] = patient
        if facts.created is not None:
            out["date"] = instant(facts.created)[:10]
        period = {"end": instant(facts.expiry)}
        if facts.created is not None:
            period = {"start": instant(facts.created), **period}
        out["period"] = period
        out["grantor"] = [granted_by]
        out["grantee"] = [grantee]
        out["decision"] = "permit"
        if types:
            provision["resourceType"] = types
        out["provision"] = [provision]
        return out
    out["scope"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": "patient-privacy",
                "display": "Privacy Consent",
            }
        ]
    }
    out["patient"] = patient
    if facts.created is not None:
        out["dateTime"] = instant(facts.created)
    out["performer"] = [granted_by]
    out["policyRule"] = {"coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}]}
    provision = {"type": "permit", **provision}
    if types:
        provision["class"] = types
    out["provision"] = provision
    return out


# -- AuditEvent ---------------------------------------------------------------------------

_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
_READ = {"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"}
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
    "code": "4",
    "display": "Application Server",
}
_OUTCOME = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"


def _audit_id(facts: AuditFacts) -> str:
    return hashlib.sha256(canonical_json(asdict(facts))).hexdigest()


def audit_event(facts: AuditFacts, version: FhirVersion | str = FhirVersion.R4) -> dict[str, Any]:
    """One read as an AuditEvent (after the IHE BALP "PatientRead" pattern).

    ``recorded`` is the block time the proxies evaluated the grant at; ``action`` R; the
    type is ``rest`` (``audit-event-type``) with ``read`` (``restful-interaction``); the
    outcome ``0`` (success), or ``8`` (serious failure) with the anomaly as its text for a
    logged access that failed the patient's checks. Agents: the requester (role IRCP,
    ``requestor`` true, its purpose of use), then each proxy that logged the read as a
    ``Device`` of type DCM 110152 "Destination Role ID" (the server of the request). The
    source (observer) is the first of those proxies (``security-source-type`` 4). Entities:
    the patient (``audit-entity-type`` 1 Person, ``object-role`` 1 Patient), then one per
    record read (``urn:emrshare:record:0x…``, 2 System Object, 4 Domain Resource) with the
    category as a detail and its DS4P labels as ``securityLabel``.

    R4: ``type``/``subtype``, ``outcome`` a code with ``outcomeDesc``, the purpose in
    ``agent.purposeOfUse``, entity ``type``/``role`` Codings. R5: ``category``/``code``,
    ``outcome.code`` (``audit-event-outcome``) with ``outcome.detail``, ``patient``, the
    purpose in ``agent.authorization``, entity ``role`` a CodeableConcept (R5 has no
    entity type).
    """
    version = FhirVersion.parse(version)
    r5 = version is FhirVersion.R5
    patient = account_reference(facts.patient, "Patient")
    purposes = [{"coding": [purpose_coding(facts.purpose)]}] if facts.purpose else []
    requester: dict[str, Any] = {
        "type": {"coding": [IRCP]},
        "who": account_reference(facts.requester, facts.requester_kind),
        "requestor": True,
    }
    if purposes:
        requester["authorization" if r5 else "purposeOfUse"] = purposes
    agents = [requester]
    for proxy in facts.proxies:
        agents.append(
            {
                "type": {
                    "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
                },
                "who": account_reference(proxy, "Device"),
                "requestor": False,
            }
        )
    if facts.proxies:
        observer = account_reference(facts.proxies[0], "Device")
    else:
        observer = {"display": "emrshare audit log"}
    labels = security_labels(facts.category)

    def coding(value: dict[str, str]) -> dict[str, Any]:
        return {"coding": [value]} if r5 else value

    def entity(
        what: dict[str, Any], etype: tuple[str, str], role: tuple[str, str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"what": what}
        if not r5:
            out["type"] = {"system": _ENTITY_TYPE, "code": etype[0], "display": etype[1]}
        out["role"] = coding({"system": _OBJECT_ROLE, "code": role[0], "display": role[1]})
        return out

    entities = [entity(patient, ("1", "Person"), ("1", "Patient"))]
    for rid in facts.record_ids:
        e = entity(record_reference(rid), ("2", "System Object"), ("4", "Domain Resource"))
        if labels:
            e["securityLabel"] = [coding(c) for c in labels]
        if facts.category:
            e["detail"] = [
                {"type": {"text": "category"} if r5 else "category", "valueString": facts.category}
            ]
        entities.append(e)
    failed = bool(facts.anomaly)
    out: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": _audit_id(facts),
        **meta(facts.category),
    }
    if r5:
        out["category"] = [{"coding": [_REST]}]
        out["code"] = {"coding": [_READ]}
    else:
        out["type"] = _REST
        out["subtype"] = [_READ]
    out["action"] = "R"
    out["recorded"] = instant(facts.evaluated)
    if r5:
        display = "Serious failure" if failed else "Success"
        outcome: dict[str, Any] = {
            "code": {"system": _OUTCOME, "code": "8" if failed else "0", "display": display}
        }
        if failed:
            outcome["detail"] = [{"text": facts.anomaly}]
        out["outcome"] = outcome
        out["patient"] = patient
    else:
        out["outcome"] = "8" if failed else "0"
        if failed:
            out["outcomeDesc"] = facts.anomaly
    out["agent"] = agents
    out["source"] = {"observer": observer, "type": [coding(_SOURCE_TYPE)]}
    out["entity"] = entities
    return out


# -- Provenance ---------------------------------------------------------------------------

_AUTHOR = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "author",
            "display": "Author",
        }
    ]
}
_AUTHOR_SIGNATURE = {
    "system": "urn:iso-astm:E1762-95:2013",
    "code": "1.2.840.10065.1.12.1.1",
    "display": "Author's Signature",
}
_CREATE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "CREATE",
            "display": "create",
        }
    ]
}


def provenance(
    facts: ProvenanceFacts, version: FhirVersion | str = FhirVersion.R4
) -> dict[str, Any]:
    """Who wrote one record, as a Provenance.

    ``id`` the record id's 64 hex digits; ``target`` the record
    (``urn:emrshare:record:0x…``, its category and media type in the display);
    ``recorded`` the block time of its index entry, ``occurredDateTime`` the time the
    author put in the entry; ``activity`` CREATE (``v3-DataOperation``); one agent of type
    ``author`` (``provenance-participant-type``): the patient itself (``Patient``) or a
    Provider (``Organization``); one ``signature`` of type 1.2.840.10065.1.12.1.1
    "Author's Signature" (``urn:iso-astm:E1762-95:2013``), ``when`` = recorded, ``who`` the
    author, ``sigFormat`` ``application/octet-stream`` and ``data`` the base64 of the
    65-byte secp256k1 signature (r, s, v) the author made over the entry's author digest
    (patient, record id, category, epoch, CID and plaintext SHA-256: the record's reader
    checks it). R5 adds ``patient``.
    """
    version = FhirVersion.parse(version)
    if len(facts.author_signature) != 65:
        raise InvalidInput("an author signature is 65 bytes (r, s, v)")
    rid = hex64(facts.record_id, "record id")
    kind: AccountKind = (
        "Patient" if facts.author.lower() == facts.patient.lower() else "Organization"
    )
    author = account_reference(facts.author, kind)
    shown = ", ".join(x for x in (facts.category, facts.media_type) if x)
    display = f"emrshare record 0x{rid}" + (f" ({shown})" if shown else "")
    out: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": rid,
        **meta(facts.category),
        "target": [record_reference(rid, display)],
    }
    if facts.created is not None:
        out["occurredDateTime"] = instant(facts.created)
    out["recorded"] = instant(facts.recorded)
    if version is FhirVersion.R5:
        out["patient"] = account_reference(facts.patient, "Patient")
    out["activity"] = _CREATE
    out["agent"] = [{"type": _AUTHOR, "who": author}]
    out["signature"] = [
        {
            "type": [_AUTHOR_SIGNATURE],
            "when": instant(facts.recorded),
            "who": author,
            "sigFormat": "application/octet-stream",
            "data": base64.b64encode(bytes(facts.author_signature)).decode(),
        }
    ]
    return out


# -- Bundle -------------------------------------------------------------------------------


def bundle(
    resources: Iterable[Mapping[str, Any]],
    type: Literal["collection", "searchset"] = "collection",
) -> dict[str, Any]:
    """The ``resources`` in a Bundle (valid in R4 and R5 alike): ``collection``, or
    ``searchset`` with ``total`` and every entry of search mode ``match``. Entries have no
    ``fullUrl``: the resources live on no FHIR server."""
    if type not in ("collection", "searchset"):
        raise InvalidInput(f"a Bundle of exports is a collection or a searchset, not {type!r}")
    entries: list[dict[str, Any]] = []
    for r in resources:
        if not isinstance(r.get("resourceType"), str):
            raise InvalidInput("a Bundle entry must be a FHIR resource (it names no resourceType)")
        entry: dict[str, Any] = {"resource": dict(r)}
        if type == "searchset":
            entry["search"] = {"mode": "match"}
        entries.append(entry)
    out: dict[str, Any] = {"resourceType": "Bundle", "type": type}
    if type == "searchset":
        out["total"] = len(entries)
    if entries:
        out["entry"] = entries
    return out
