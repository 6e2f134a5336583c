"""Attacks on planning an import (issue 14 review): inputs that must be refused as
problems with their paths, never crash with a traceback, never reach outside the export's
folder, and never let another patient's resources in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emrshare.errors import InvalidFhir, InvalidInput
from emrshare.fhir import CategoryMapping, plan_import, read_resources

pytestmark = pytest.mark.unit


def obs(oid: str, subject: str = "Patient/p1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": subject},
    }


def doc(attachment: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": attachment}],
    }


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def manifest(*urls: str) -> dict[str, Any]:
    return {
        "transactionTime": "2026-01-01T00:00:00Z",
        "request": "https://ehr.example/fhir/$export",
        "output": [{"type": "Observation", "url": u} for u in urls],
    }


# -- Bulk Data manifests ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["../other/Observation.ndjson", "/ABS/other/Observation.ndjson"])
def test_a_manifest_pointing_outside_its_folder_is_refused(tmp_path: Path, url: str) -> None:
    other = tmp_path / "other" / "Observation.ndjson"
    other.parent.mkdir()
    other.write_text(json.dumps(obs("o9", "Patient/p9")) + "\n")
    url = url.replace("/ABS", str(tmp_path))
    src = write(tmp_path / "export" / "manifest.json", manifest(url))
    with pytest.raises(InvalidInput, match="outside the folder"):
        read_resources([src])


def test_a_manifest_naming_itself_is_refused_not_a_recursion(tmp_path: Path) -> None:
    src = write(tmp_path / "manifest.json", manifest("manifest.json"))
    with pytest.raises(InvalidInput, match="manifest"):
        read_resources([src])


# -- JSON too deep for the parser ---------------------------------------------------------------


def test_a_deeply_nested_json_file_is_a_problem_not_a_recursion(tmp_path: Path) -> None:
    src = tmp_path / "deep.json"
    src.write_text(
        '{"resourceType":"Patient","id":"p1","name":' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(InvalidFhir, match="nested too deeply") as caught:
        read_resources([src])
    assert caught.value.problems[0].source == str(src)


def test_a_deeply_nested_ndjson_line_is_a_problem_not_a_recursion(tmp_path: Path) -> None:
    src = tmp_path / "Observation.ndjson"
    src.write_text(json.dumps(obs("o1")) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    result = read_resources([src], on_invalid="skip")
    assert [r.reference for r in result.resources] == ["Observation/o1"]
    assert result.problems[0].location == "line 2"


# -- attachments ---------------------------------------------------------------------------------


def test_an_attachment_url_with_a_nul_byte_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    src = write(tmp_path / "b.json", doc({"contentType": "application/pdf", "url": "a.pdf\x00"}))
    with pytest.raises(InvalidFhir) as caught:
        plan_import([src])
    assert caught.value.problems[0].path == "content[0].attachment.url"


@pytest.mark.parametrize(
    "content_type",
    ["application/pdf\x1b[31m", "text/plain\nX-Injected: 1", "application/" + "x" * 300],
    ids=["escape", "newline", "too-long"],
)
def test_an_attachment_content_type_no_index_entry_takes_is_refused_before_writing(
    tmp_path: Path, content_type: str
) -> None:
    """The index entry's media type is 1 to 127 printable ASCII characters: a plan must
    refuse the resource, or the import would fail part-way (half-written)."""
    src = write(tmp_path / "b.json", doc({"contentType": content_type, "data": "JVBERg=="}))
    with pytest.raises(InvalidFhir) as caught:
        plan_import([src])
    assert caught.value.problems[0].path == "content[0].attachment.contentType"
    plan = plan_import([src], on_invalid="skip")
    assert plan.records == []


def test_a_binary_content_type_no_index_entry_takes_is_refused() -> None:
    binary = {"resourceType": "Binary", "id": "b1", "contentType": "a/" + "b" * 200, "data": "AA=="}
    with pytest.raises(InvalidFhir) as caught:
        plan_import([binary])
    assert caught.value.problems[0].path == "contentType"


# -- one patient ---------------------------------------------------------------------------------


def _transaction(*entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": url, "resource": res, "request": {"method": "PUT", "url": "x"}}
            for url, res in entries
        ],
    }


def test_a_urn_uuid_subject_of_another_patient_is_not_taken_as_the_chosen_one() -> None:
    """``--fhir-patient Patient/p1`` on a two-patient transaction: an Observation about
    ``urn:uuid:…`` that is Patient/p2's fullUrl is p2's, and must be left out."""
    p2 = "urn:uuid:6f1c2b0e-2d7a-4d0e-9a53-2c9f5d3f0a11"
    bundle = _transaction(
        ("urn:uuid:0b7e0d58-1f6e-4f61-8d61-6f2d3f6c8e01", {"resourceType": "Patient", "id": "p1"}),
        (p2, {"resourceType": "Patient", "id": "p2"}),
        ("urn:uuid:9a1a4f3e-7c1b-4b6e-8a55-0c4e1d2b3a01", obs("o1", "Patient/p1")),
        ("urn:uuid:9a1a4f3e-7c1b-4b6e-8a55-0c4e1d2b3a02", obs("o2", p2)),
    )
    plan = plan_import([bundle], subject="Patient/p1")
    assert sorted(p.reference for p in plan.placements) == ["Observation/o1", "Patient/p1"]


def test_a_urn_uuid_subject_counts_as_its_patient_when_none_is_chosen() -> None:
    p2 = "urn:uuid:6f1c2b0e-2d7a-4d0e-9a53-2c9f5d3f0a11"
    bundle = _transaction(
        (p2, {"resourceType": "Patient", "id": "p2"}),
        ("urn:uuid:9a1a4f3e-7c1b-4b6e-8a55-0c4e1d2b3a01", obs("o1", "Patient/p1")),
        ("urn:uuid:9a1a4f3e-7c1b-4b6e-8a55-0c4e1d2b3a02", obs("o2", p2)),
    )
    with pytest.raises(InvalidInput, match="2 patients"):
        plan_import([bundle])


# -- sensitivity labels ----------------------------------------------------------------------------

HIV = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}
LAB = {"coding": [{"code": "laboratory"}]}


def test_a_labelled_resource_contained_in_an_everyday_one_keeps_it_sensitive() -> None:
    """A DiagnosticReport (lab) that contains an HIV-labelled Observation carries that
    Observation inside its own record: the record must land in the label's category."""
    report = {
        "resourceType": "DiagnosticReport", "id": "r1", "status": "final",
        "category": [LAB], "code": {"text": "panel"}, "subject": {"reference": "Patient/p1"},
        "contained": [{**obs("hiv-vl"), "meta": {"security": [HIV]}}],
        "result": [{"reference": "#hiv-vl"}],
    }  # fmt: skip
    plan = plan_import([report])
    assert [(r.category, r.resources) for r in plan.records] == [("hiv", ("DiagnosticReport/r1",))]
    assert "HIV" in plan.placements[0].rule


def test_an_hiv_labelled_resource_in_an_encounter_bundle_stays_out_of_the_lab_record() -> None:
    def lab(oid: str, labels: list[dict[str, str]] | None = None) -> dict[str, Any]:
        res = {**obs(oid), "category": [LAB], "encounter": {"reference": "Encounter/e1"}}
        return {**res, "meta": {"security": labels}} if labels else res

    plan = plan_import(
        [{"resourceType": "Bundle", "type": "collection",
          "entry": [{"resource": lab("o1")}, {"resource": lab("o2", [HIV])}]}],
        per_encounter=True,
    )  # fmt: skip
    assert sorted((r.category, r.resources) for r in plan.records) == [
        ("hiv", ("Observation/o2",)),
        ("lab-results", ("Observation/o1",)),
    ]


def test_a_resource_about_no_named_patient_is_not_taken_for_the_chosen_one() -> None:
    """A group's Bulk export: a Binary (which has no subject) or a Task (``for``) may be
    anyone's. Picking ``Patient/p1`` must not file them as p1's records silently."""
    binary = {"resourceType": "Binary", "id": "b2", "contentType": "text/plain", "data": "AA=="}
    task = {
        "resourceType": "Task", "id": "t2", "status": "requested", "intent": "order",
        "for": {"reference": "Patient/p2"},
    }  # fmt: skip
    inputs = [obs("o1"), obs("o2", "Patient/p2"), binary, task]
    group = {"resourceType": "Bundle", "type": "collection",
             "entry": [{"resource": r} for r in inputs]}  # fmt: skip
    mapping = CategoryMapping(fallback="clinical-notes")  # a Task is placed, not refused
    with pytest.raises(InvalidFhir) as caught:
        plan_import([group], subject="Patient/p1", mapping=mapping)
    assert [p.resource for p in caught.value.problems] == ["Binary/b2"]
    assert "which patient" in caught.value.problems[0].reason
    plan = plan_import([group], subject="Patient/p1", mapping=mapping, on_invalid="skip")
    assert [r.resources for r in plan.records] == [("Observation/o1",)]


@pytest.mark.parametrize(
    "url", [".ssh/id_ed25519", "sub/.emrshare/keys.json", "file:.env", "a/../.ssh/id_ed25519"]
)
def test_an_attachment_url_naming_a_hidden_file_is_refused(tmp_path: Path, url: str) -> None:
    """An export saved in a home directory: ``.ssh/id_ed25519`` is inside its folder, and
    must not be published as the patient's record all the same."""
    for name in (".ssh/id_ed25519", "sub/.emrshare/keys.json", ".env"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("secret")
    src = write(tmp_path / "export.json", doc({"contentType": "text/plain", "url": url}))
    with pytest.raises(InvalidFhir, match="hidden") as caught:
        plan_import([src])
    assert caught.value.problems[0].path == "content[0].attachment.url"


def _nested_extensions(depth: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://x.example", "valueString": "y"}
    for _ in range(depth):
        ext = {"url": "http://x.example", "extension": [ext]}
    return {"resourceType": "Patient", "id": "p1", "extension": [ext]}


def test_deeply_nested_extensions_are_a_problem_not_a_recursion(tmp_path: Path) -> None:
    """Valid JSON, and a valid shape (extensions nest), but deeper than fhir.resources'
    validators recurse: refused with its path, never a RecursionError."""
    src = write(tmp_path / "deep.json", _nested_extensions(200))
    result = read_resources([src, {"resourceType": "Patient", "id": "p2"}], on_invalid="skip")
    assert [r.reference for r in result.resources] == ["Patient/p2"]
    assert result.problems[0].resource == "Patient/p1"
    assert "nested too deeply" in result.problems[0].reason


def test_a_loaded_resource_nested_deeper_than_any_file_is_refused_not_a_crash() -> None:
    """A mapping passed in (no JSON parser limits it): 1,000 nested extensions overflowed
    the C stack inside the validators (a segmentation fault, the process gone)."""
    result = read_resources([_nested_extensions(1000)], on_invalid="skip")
    assert result.resources == [] and "nested too deeply" in result.problems[0].reason


@pytest.mark.parametrize(
    ("labels", "category"),
    [
        (["R", "HIV"], "hiv"),
        (["HIV", "R"], "hiv"),
        (["V", "PSY"], "mental-health"),
        (["PSY", "HIV"], "hiv"),
        (["HIV", "PSY"], "hiv"),
    ],
)
def test_the_placing_label_does_not_depend_on_the_order_of_the_labels(
    labels: list[str], category: str
) -> None:
    """An EHR that lists confidentiality ``R`` before ``HIV`` filed the HIV result in
    ``restricted``: a patient's grant of that category shared it. The sensitivity code
    wins over the confidentiality one, and among several, the vocabulary's order."""
    res = {**obs("o1"), "category": [LAB], "meta": {"security": [{"code": c} for c in labels]}}
    (placed,) = plan_import([res]).placements
    assert placed.category == category


def test_two_different_resources_of_one_id_without_versions_in_one_input_are_refused() -> None:
    """Without ``meta.versionId`` a resource's identity is its content digest, so two
    different ``Observation/o1`` of one input had two identities, and both were written:
    a reader could not tell which the EHR meant."""
    one, other = obs("o1"), {**obs("o1"), "status": "amended"}
    with pytest.raises(InvalidFhir) as caught:
        read_resources([{"resourceType": "Bundle", "type": "collection",
                         "entry": [{"resource": one}, {"resource": other}]}])  # fmt: skip
    assert [p.resource for p in caught.value.problems] == ["Observation/o1", "Observation/o1"]
    assert "meta.versionId" in caught.value.problems[0].reason
