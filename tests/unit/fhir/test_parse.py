"""read_resources: every input shape, per-resource refusals with their paths, versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emrshare.errors import InvalidFhir, InvalidInput, MixedFhirVersions
from emrshare.fhir import FhirResource, FhirVersion, parse_model, read_resources, validate_json

pytestmark = pytest.mark.unit


def obs(oid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "valueQuantity": {"value": 13.1, "unit": "g/dL"},
        **extra,
    }


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
# Valid only as R4/R4B (Media is gone in R5) and only as R5 (Observation.triggeredBy).
R4_ONLY = {
    "resourceType": "Media",
    "id": "m1",
    "status": "completed",
    "content": {"contentType": "text/plain", "data": "aGk="},
}
R5_ONLY = obs(
    "o5", triggeredBy=[{"observation": {"reference": "Observation/o1"}, "type": "reflex"}]
)


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


@pytest.mark.parametrize("kind", ["collection", "transaction", "batch", "searchset", "document"])
def test_bundles_of_every_type_are_flattened(kind: str) -> None:
    got = read_resources([bundle(PATIENT, obs("o1"), kind=kind)])
    assert [r.reference for r in got.resources] == ["Patient/p1", "Observation/o1"]
    assert got.resources[1].location == "entry[1].resource"
    assert got.version is FhirVersion.R4


def test_nested_bundles_and_search_outcomes() -> None:
    inner = bundle(obs("o2"))
    outer = bundle(PATIENT, inner, kind="searchset")
    outer["entry"].append(
        {
            "search": {"mode": "outcome"},
            "resource": {"resourceType": "OperationOutcome", "issue": []},
        }
    )
    got = read_resources([outer])
    assert [r.reference for r in got.resources] == ["Patient/p1", "Observation/o2"]
    assert got.resources[1].location == "entry[1].resource.entry[0].resource"


def test_ndjson_single_files_and_a_bulk_manifest(tmp_path: Path) -> None:
    (tmp_path / "Observation.ndjson").write_text(
        json.dumps(obs("o1")) + "\n\n" + json.dumps(obs("o2")) + "\n"
    )
    (tmp_path / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n")
    (tmp_path / "one.json").write_text(json.dumps(obs("o3"), indent=2))
    manifest = {
        "transactionTime": "2026-01-01T00:00:00Z",
        "request": "https://ehr.example/fhir/$export",
        "requiresAccessToken": False,
        "output": [
            {"type": "Patient", "url": "Patient.ndjson"},
            {"type": "Observation", "url": "Observation.ndjson"},
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    got = read_resources([tmp_path / "manifest.json", tmp_path / "one.json"])
    assert [r.reference for r in got.resources] == [
        "Patient/p1", "Observation/o1", "Observation/o2", "Observation/o3",
    ]  # fmt: skip
    assert got.resources[2].location == "line 3"
    assert got.resources[3].location == ""


def test_a_remote_manifest_url_is_refused(tmp_path: Path) -> None:
    manifest = {
        "transactionTime": "2026-01-01T00:00:00Z",
        "output": [{"type": "Patient", "url": "https://ehr.example/x.ndjson"}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput, match="not a local file"):
        read_resources([tmp_path / "manifest.json"])


def test_invalid_resources_are_refused_with_file_place_id_and_path(tmp_path: Path) -> None:
    bad = obs("o2", valueQuantity={"value": "lots"})
    (tmp_path / "b.json").write_text(json.dumps(bundle(obs("o1"), bad, {"resourceType": "Nope"})))
    with pytest.raises(InvalidFhir) as err:
        read_resources([tmp_path / "b.json"])
    first, second = err.value.problems
    assert (first.source, first.location, first.resource, first.path) == (
        str(tmp_path / "b.json"), "entry[1].resource", "Observation/o2", "valueQuantity.value",
    )  # fmt: skip
    assert second.location == "entry[2].resource" and second.path == "resourceType"
    assert "Observation/o2" in str(err.value) and "on_invalid='skip'" in str(err.value)


def test_skip_keeps_the_valid_ones(tmp_path: Path) -> None:
    lines = [json.dumps(obs("o1")), "{not json", json.dumps({"resourceType": "Observation"})]
    (tmp_path / "x.ndjson").write_text("\n".join(lines))
    got = read_resources([tmp_path / "x.ndjson"], on_invalid="skip")
    assert [r.reference for r in got.resources] == ["Observation/o1"]
    assert [p.location for p in got.problems] == ["line 2", "line 3"]
    assert got.problems[1].path in ("code", "status")  # a required element missing


def test_unknown_elements_are_refused() -> None:
    with pytest.raises(InvalidFhir) as err:
        read_resources([obs("o1", valueWhatever=1)])
    assert err.value.problems[0].path == "valueWhatever"


def test_a_delete_entry_is_refused() -> None:
    b = bundle(obs("o1"), kind="transaction")
    b["entry"].append({"request": {"method": "DELETE", "url": "Observation/o9"}})
    with pytest.raises(InvalidFhir, match="DELETE"):
        read_resources([b])


def test_mixed_versions_are_refused_naming_the_minority() -> None:
    with pytest.raises(MixedFhirVersions) as err:
        read_resources([bundle(R5_ONLY, R4_ONLY, R4_ONLY | {"id": "m2"}, obs("o1"))])
    assert [p.resource for p in err.value.problems] == ["Observation/o5"]
    assert err.value.problems[0].location == "entry[0].resource"
    assert "valid only as R5" in err.value.problems[0].reason


def test_versions_detected_or_named() -> None:
    assert read_resources([bundle(R4_ONLY, obs("o1"))]).version is FhirVersion.R4
    assert read_resources([bundle(R5_ONLY, obs("o1"))]).version is FhirVersion.R5
    named = read_resources([obs("o1")], version="R4B")
    assert named.version is FhirVersion.R4B and named.resources[0].version is FhirVersion.R4B
    with pytest.raises(InvalidFhir) as err:
        read_resources([R4_ONLY], version="R5")
    assert "not a FHIR R5 resource type" in err.value.problems[0].reason
    with pytest.raises(InvalidInput, match="R4, R4B or R5"):
        read_resources([obs("o1")], version="DSTU2")


def test_the_same_identity_twice() -> None:
    same = read_resources([bundle(obs("o1"), obs("o1"))])
    assert len(same.resources) == 1
    with pytest.raises(InvalidFhir) as err:
        read_resources([bundle(obs("o1"), obs("o1", valueQuantity={"value": 99}))])
    assert [p.location for p in err.value.problems] == ["entry[0].resource", "entry[1].resource"]
    newer = obs("o1", valueQuantity={"value": 99}) | {"meta": {"versionId": "2"}}
    assert len(read_resources([bundle(obs("o1"), newer)]).resources) == 2


def test_resource_facts_and_identity() -> None:
    labelled = obs("o1") | {
        "meta": {
            "versionId": "3",
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}
            ],
        }
    }
    (r,) = read_resources([labelled]).resources
    assert r.identity == "Observation/o1/_history/3"
    assert (r.subject, r.encounter) == ("Patient/p1", "Encounter/e1")
    assert r.security_labels == ("HIV",) and r.category_codes == ("laboratory",)
    (p,) = read_resources([PATIENT]).resources
    assert p.subject == "Patient/p1" and p.identity == f"Patient/p1/_history/#{p.digest()}"
    changed = read_resources([PATIENT | {"gender": "male"}]).resources[0]
    assert changed.identity != p.identity  # no versionId: a changed resource is new
    anon = read_resources([{"resourceType": "Patient", "gender": "male"}]).resources[0]
    assert anon.identity.startswith("Patient/#") and len(anon.identity) == len("Patient/#") + 64


def test_parse_model_and_validate_json() -> None:
    model = parse_model(obs("o1"))
    assert type(model).__module__.startswith("fhir.resources.R4B")
    r5 = parse_model(R5_ONLY, FhirVersion.R5)
    assert type(r5).__module__.startswith("fhir.resources.observation")
    res = FhirResource("Media", "m1", None, FhirVersion.R4, R4_ONLY)
    assert parse_model(res).id == "m1"
    with pytest.raises(InvalidFhir):
        validate_json(R4_ONLY, FhirVersion.R5)


def test_media_types_name_the_version() -> None:
    assert FhirVersion.R4.media_type == "application/fhir+json; fhirVersion=4.0"
    assert FhirVersion.of_media_type("application/fhir+json; fhirVersion=5.0") is FhirVersion.R5
    assert FhirVersion.of_media_type("application/fhir+json") is FhirVersion.R4
    assert FhirVersion.of_media_type("application/pdf") is None
    assert FhirVersion.parse("4.0.1") is FhirVersion.R4
