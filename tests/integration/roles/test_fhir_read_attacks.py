"""Attacks on ``read_fhir`` (issue 14 review) on a real devnet: records an authorized
writer made by hand, not through the importer, that say they are FHIR."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare.errors import InvalidFhir, InvalidInput
from emrshare.fhir import FhirVersion, canonical_json, plan_import
from emrshare.fhir.importer import ATTACHMENT_SHA256
from tests.integration.roles.test_fhir_import import World, world

pytestmark = pytest.mark.integration

__all__ = ["world"]  # the module's devnet fixture

FHIR = FhirVersion.R4.media_type


def test_a_forged_attachment_marker_does_not_pull_in_a_record_of_another_category(
    world: World, tmp_path: Path
) -> None:
    """A DocumentReference in clinical-notes whose marker names the SHA-256 of an HIV
    record: ``attachments="inline"`` must not file the HIV record's bytes inside it, even
    for a grantee of both categories (the attachment an import stores is always of the
    resource's own category and author)."""
    patient = world.patient("p-forged")
    a = world.provider(world.a_keys, "a-forged")
    b = world.provider(world.b_keys, "b-forged")
    for category in ("clinical-notes", "hiv"):
        patient.authorize_writer(a.address, category)
        patient.grant(b.address, category, expires=timedelta(days=1))
    secret = b"HIV-1 viral load: 40 copies/mL (synthetic)\n"
    a.add_record(patient.address, "hiv", secret, media_type="text/plain")
    doc = {
        "resourceType": "DocumentReference", "id": "d1", "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "text/plain", "extension": [
            {"url": ATTACHMENT_SHA256, "valueString": hashlib.sha256(secret).hexdigest()}]}}],
    }  # fmt: skip
    a.add_record(patient.address, "clinical-notes", canonical_json(doc), media_type=FHIR)
    (got,) = b.read_fhir(patient.address, attachments="inline")
    assert got.content[0].attachment.data is None
    for actor in (a, b, patient):
        actor.close()


def test_the_attachment_of_an_imported_resource_still_comes_back_inline(
    world: World, tmp_path: Path
) -> None:
    patient = world.patient("p-inline")
    a = world.provider(world.a_keys, "a-inline")
    b = world.provider(world.b_keys, "b-inline")
    patient.authorize_writer(a.address, "clinical-notes")
    patient.grant(b.address, "clinical-notes", expires=timedelta(days=1))
    note = base64.b64encode(b"synthetic note\n").decode()
    doc = {
        "resourceType": "DocumentReference", "id": "d2", "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "text/plain", "data": note}}],
    }  # fmt: skip
    a.import_fhir(patient.address, [doc])
    (got,) = b.read_fhir(patient.address, attachments="inline")
    assert got.content[0].attachment.data == base64.b64decode(note)
    for actor in (a, b, patient):
        actor.close()


@pytest.mark.parametrize(
    "content",
    [b'{"resourceType": "Observation", "status": 5}', b"[1, 2]", b"[" * 100_000 + b"]" * 100_000],
    ids=["invalid-fhir", "not-an-object", "too-deep"],
)
def test_a_record_that_says_fhir_but_is_not_is_refused_naming_the_record(
    world: World, tmp_path: Path, content: bytes
) -> None:
    patient = world.patient(f"p-bad-{len(content)}")
    a = world.provider(world.a_keys, f"a-bad-{len(content)}")
    b = world.provider(world.b_keys, f"b-bad-{len(content)}")
    patient.authorize_writer(a.address, "lab-results")
    patient.grant(b.address, "lab-results", expires=timedelta(days=1))
    rid = a.add_record(patient.address, "lab-results", content, media_type=FHIR)
    with pytest.raises(InvalidFhir) as caught:
        b.read_fhir(patient.address)
    message = str(caught.value)
    assert f"0x{bytes(rid).hex()}" in message and "\n" not in message
    assert "import" not in message and "read(" in message  # what to do, for a reader
    assert caught.value.problems[0].source == f"record 0x{bytes(rid).hex()}"
    for actor in (a, b, patient):
        actor.close()


def test_a_resource_relabelled_later_is_written_again_and_the_old_record_stays_readable(
    world: World, tmp_path: Path
) -> None:
    """Documents (docs/fhir.md, "Importing", the Warning): an EHR adds an HIV label to
    Observation/o1 without a new version (FHIR's ``$meta-add`` keeps the versionId). The
    re-import writes it to ``hiv``; records are never deleted, so the first copy stays in
    ``lab-results`` and its grantee still reads it until the patient revokes that grant."""
    patient = world.patient("p-relabel")
    a = world.provider(world.a_keys, "a-relabel")
    b = world.provider(world.b_keys, "b-relabel")
    for category in ("lab-results", "hiv"):
        patient.authorize_writer(a.address, category)
    patient.grant(b.address, "lab-results", expires=timedelta(days=1))
    o1 = {
        "resourceType": "Observation", "id": "o1", "meta": {"versionId": "1"},
        "status": "final", "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"text": "HIV-1 RNA"}, "subject": {"reference": "Patient/p1"},
    }  # fmt: skip
    first = a.import_fhir(patient.address, [o1])
    assert [r.category for r in first.written] == ["lab-results"]
    relabelled = {**o1, "meta": {"versionId": "1", "security": [{"code": "HIV"}]}}
    second = a.import_fhir(patient.address, [relabelled])
    assert [r.category for r in second.written] == ["hiv"]
    assert [o.id for o in b.read_fhir(patient.address)] == ["o1"]  # the first copy
    for actor in (a, b, patient):
        actor.close()


def test_an_attachment_file_gone_after_planning_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    """A plan made, then one of its attachment files removed (or swapped for a directory)
    before the import: the import must refuse before its first write, not after the
    records of the groups before that file's."""
    patient = world.patient("p-gone")
    a = world.provider(world.a_keys, "a-gone")
    patient.authorize_writer(a.address, "clinical-notes")
    (tmp_path / "a.txt").write_text("synthetic note\n")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4 synthetic\n")

    def doc(rid: str, url: str, kind: str) -> dict[str, object]:
        return {
            "resourceType": "DocumentReference", "id": rid, "status": "current",
            "subject": {"reference": "Patient/p1"},
            "content": [{"attachment": {"contentType": kind, "url": url}}],
        }  # fmt: skip

    docs = [doc("d1", "a.txt", "text/plain"), doc("d2", "b.pdf", "application/pdf")]
    src = tmp_path / "export.json"
    src.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": d} for d in docs],
            }
        )
    )
    plan = plan_import([src])
    (tmp_path / "b.pdf").unlink()
    with pytest.raises(InvalidInput, match=r"b\.pdf"):
        a.import_fhir(patient.address, plan)
    assert list(world.net.contracts.index.entries(patient.address)) == []
    for actor in (a, patient):
        actor.close()
