"""FHIR in and back out on a real devnet (issue 14): anvil, a LocalStore and two proxy
processes at 2-of-2. A hospital imports a bundle; a second hospital reads it back as
FHIR under grants, after every check ``read`` makes."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from emrshare.chain.relayed import DirectSubmitter
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import DEVNET_PASSWORD, devnet_down, devnet_up
from emrshare.errors import AccessDenied, InvalidFhir
from emrshare.fhir import FhirVersion, importer, parse_model, plan_import
from emrshare.network import Network
from emrshare.roles import Patient, Profiles, Provider

pytestmark = pytest.mark.integration

LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                   "code": "laboratory"}]}  # fmt: skip
HIV = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}


@dataclass
class World:
    data: Path
    net: Network
    a_keys: MemberKeys
    b_keys: MemberKeys
    tmp: Path

    def patient(self, name: str) -> Patient:
        pays = DirectSubmitter(self.net.contracts_for(self.a_keys.ethereum_key).client,
                               self.net.contracts.forwarder.address)  # fmt: skip
        p = Patient(self.net, PatientKeys.generate(), state_dir=self.tmp / name, relay=pays)
        p.register()
        return p

    def provider(self, keys: MemberKeys, name: str) -> Provider:
        return Provider(self.net, keys, state_dir=self.tmp / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fhir")
    data = tmp / "data"
    devnet_up(data, password=DEVNET_PASSWORD, proxies=2, threshold=2)
    try:
        profiles = Profiles(data)
        net = Network.from_config(profiles.network_path)
        a, b = (profiles.unlock(n, DEVNET_PASSWORD) for n in ("hospital-a", "hospital-b"))
        assert isinstance(a, MemberKeys) and isinstance(b, MemberKeys)
        yield World(data, net, a, b, tmp)
        net.close()
    finally:
        devnet_down(data)


def obs(oid: str, value: float, *, labels: list[dict[str, str]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"versionId": "1"}
    if labels:
        meta["security"] = labels
    return {
        "resourceType": "Observation", "id": oid, "meta": meta, "status": "final",
        "category": [LAB], "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "valueQuantity": {"value": value, "unit": "g/dL"},
    }  # fmt: skip


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}  # fmt: skip


def base_bundle() -> dict[str, Any]:
    note = base64.b64encode(b"Discharge summary: stable, follow up in 2 weeks.\n").decode()
    return bundle(
        {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"},
         "name": [{"family": "Synthetic", "given": ["Test"]}], "gender": "female"},
        {"resourceType": "Encounter", "id": "e1", "meta": {"versionId": "1"},
         "status": "finished", "subject": {"reference": "Patient/p1"},
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                   "code": "AMB"}},
        obs("o1", 13.1), obs("o2", 12.8), obs("o3", 14.0),
        obs("o-hiv", 20.0, labels=[HIV]),
        {"resourceType": "DocumentReference", "id": "d1", "meta": {"versionId": "1"},
         "status": "current", "subject": {"reference": "Patient/p1"},
         "content": [{"attachment": {"contentType": "text/plain", "data": note}}]},
        {"resourceType": "Organization", "id": "org1", "name": "Synthetic General"},
    )  # fmt: skip


def entry_count(net: Network, patient: Patient) -> int:
    return len(list(net.contracts.index.entries(patient.address)))


def test_import_is_placed_idempotent_and_reads_back_under_grants(
    world: World, tmp_path: Path
) -> None:
    src = tmp_path / "export.json"
    src.write_text(json.dumps(base_bundle(), indent=2))
    patient = world.patient("p-round")
    a = world.provider(world.a_keys, "a-round")
    b = world.provider(world.b_keys, "b-round")
    plan = plan_import([src])
    assert plan.categories == ["clinical-notes", "demographics", "encounters", "hiv", "lab-results"]
    assert [p.reference for p in plan.skipped] == ["Organization/org1"]

    # The patient authorized lab-results only: refused before anything is written.
    patient.authorize_writer(a.address, "lab-results")
    with pytest.raises(AccessDenied, match="clinical-notes, demographics, encounters, hiv"):
        a.import_fhir(patient.address, [src])
    assert entry_count(world.net, patient) == 0

    for category in ("clinical-notes", "demographics", "encounters", "hiv"):
        patient.authorize_writer(a.address, category)
    seen: list[tuple[int, int]] = []
    report = a.import_fhir(patient.address, [src], progress=lambda d, t: seen.append((d, t)))
    # 7 resources (Organization skipped) and the note's attachment.
    assert len(report.written) == 8 and report.existing == [] and report.resources == 7
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert entry_count(world.net, patient) == 8

    # The same export again, laid out differently: nothing written.
    src.write_text(json.dumps(base_bundle(), sort_keys=True))
    again = a.import_fhir(patient.address, [src])
    assert again.written == [] and len(again.existing) == 8
    assert entry_count(world.net, patient) == 8

    # A grant of lab-results opens the three everyday labs, never the HIV-labelled one.
    patient.grant(b.address, "lab-results", expires=timedelta(days=1))
    labs = b.read_fhir(patient.address, resource_types=["Observation"])
    assert sorted(o.id for o in labs) == ["o1", "o2", "o3"]
    assert type(labs[0]).__module__.startswith("fhir.resources.R4B")
    expected = {r["id"]: r for r in (e["resource"] for e in base_bundle()["entry"])}
    for o in labs:
        assert o.model_dump(mode="json", exclude_none=True) == parse_model(
            expected[o.id]
        ).model_dump(mode="json", exclude_none=True)
    hiv = next(r for r in report.imported if r.resources == ("Observation/o-hiv",))
    assert hiv.category == "hiv"
    with pytest.raises(AccessDenied):
        b.read(patient.address, hiv.record_id)

    # The note comes back with its attachment inline, as the EHR exported it.
    patient.grant(b.address, "clinical-notes", expires=timedelta(days=1))
    stored = b.read_fhir(patient.address, category="clinical-notes")
    docs = [d for d in stored if d.id == "d1"]
    assert docs[0].content[0].attachment.data is None  # as stored: a marker names the record
    inline = b.read_fhir(patient.address, category="clinical-notes", attachments="inline")
    got = inline[0].model_dump(mode="json", exclude_none=True)
    assert got == parse_model(expected["d1"]).model_dump(mode="json", exclude_none=True)
    for actor in (a, b, patient):
        actor.close()


def test_invalid_or_foreign_input_writes_nothing(world: World, tmp_path: Path) -> None:
    patient = world.patient("p-bad")
    a = world.provider(world.a_keys, "a-bad")
    patient.authorize_writer(a.address, "lab-results")
    bad = obs("o9", 1.0)
    bad["valueQuantity"]["value"] = "lots"
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(bundle(obs("o8", 2.0), bad)))
    with pytest.raises(InvalidFhir) as caught:
        a.import_fhir(patient.address, [src])
    (problem,) = caught.value.problems
    assert problem.resource == "Observation/o9" and problem.location == "entry[1].resource"
    assert problem.path.startswith("valueQuantity.value")
    assert entry_count(world.net, patient) == 0
    # Skipping writes the valid one only.
    report = a.import_fhir(patient.address, [src], on_invalid="skip")
    assert [r.resources for r in report.written] == [("Observation/o8",)]
    assert len(report.plan.problems) == 1

    # Two patients' resources in one input are refused; --fhir-patient picks one.
    other = copy.deepcopy(obs("o7", 3.0))
    other["subject"] = {"reference": "Patient/someone-else"}
    two = tmp_path / "two.json"
    two.write_text(json.dumps(bundle(obs("o6", 4.0), other)))
    with pytest.raises(InvalidFhir.__mro__[1], match="2 patients"):
        a.import_fhir(patient.address, [two])
    picked = a.import_fhir(patient.address, [two], subject="Patient/p1")
    assert [r.resources for r in picked.written] == [("Observation/o6",)]

    # An attachment URL may not reach outside the export's folder.
    secret = tmp_path.parent / "secret.txt"
    secret.write_text("not a record")
    doc = {"resourceType": "DocumentReference", "id": "d9", "status": "current",
           "subject": {"reference": "Patient/p1"},
           "content": [{"attachment": {"contentType": "text/plain",
                                       "url": "../secret.txt"}}]}  # fmt: skip
    (tmp_path / "sub").mkdir()
    leak = tmp_path / "sub" / "doc.json"
    leak.write_text(json.dumps(doc))
    with pytest.raises(InvalidFhir, match="outside the folder"):
        plan_import([leak])
    a.close()
    patient.close()


#: Resources of the import that is killed: more than one journaled run (importer.CHUNK).
N_KILLED = 2500

_KILLED_IMPORT = """
import sys
from pathlib import Path
from emrshare.devnet import DEVNET_PASSWORD
from emrshare.network import Network
from emrshare.roles import Profiles, Provider
data, state, patient, src = sys.argv[1:]
profiles = Profiles(Path(data))
net = Network.from_config(profiles.network_path)
hospital = Provider(net, profiles.unlock("hospital-a", DEVNET_PASSWORD), state_dir=Path(state))
hospital.import_fhir(patient, [Path(src)], progress=lambda d, t: print(d, t, flush=True))
print("finished", flush=True)
"""


def test_an_import_killed_part_way_resumes_writing_each_resource_once(
    world: World, tmp_path: Path
) -> None:
    assert N_KILLED > importer.CHUNK  # killed after one run, with more to write
    patient = world.patient("p-kill")
    state = world.tmp / "a-kill"
    a = world.provider(world.a_keys, "a-kill")
    patient.authorize_writer(a.address, "lab-results")
    a.close()
    many = [obs(f"k{i:04d}", 10 + i / 100) for i in range(N_KILLED)]
    src = tmp_path / "many.json"
    src.write_text(json.dumps(bundle(*many)))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_IMPORT, str(world.data), str(state), patient.address,
         str(src)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the first chunk is on chain: kill it
        line = proc.stdout.readline()
        if not line or int(line.split()[0]) > 0:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    part = entry_count(world.net, patient)
    assert 0 < part < N_KILLED

    resumed = world.provider(world.a_keys, "a-kill")
    report = resumed.import_fhir(patient.address, [src])
    assert len(report.imported) == N_KILLED
    assert len(report.existing) >= part  # what was on chain is not written again
    entries = list(world.net.contracts.index.entries(patient.address))
    assert len(entries) == N_KILLED
    assert len({bytes(e.record_id) for e in entries}) == N_KILLED
    assert resumed.import_fhir(patient.address, [src]).written == []
    resumed.close()
    patient.close()


def test_version_is_named_by_the_media_type(world: World, tmp_path: Path) -> None:
    assert plan_import([bundle(obs("v1", 1.0))]).records[0].media_type == (
        "application/fhir+json; fhirVersion=4.0"
    )
    assert FhirVersion.of_media_type(FhirVersion.R5.media_type) is FhirVersion.R5


def _synth() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "scripts" / "synth_fhir.py"
    spec = importlib.util.spec_from_file_location("synth_fhir_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_synthetic_patient_round_trips_for_every_resource_type(
    world: World, tmp_path: Path, version: str
) -> None:
    gen = _synth()
    files = gen.write_population(
        tmp_path / "pop", patients=1, seed=3, version=version, observations=6, large_attachment=1
    )
    (src,) = [f for f in files if f.suffix == ".json"]
    patient = world.patient(f"p-synth-{version}")
    a = world.provider(world.a_keys, f"a-synth-{version}")
    b = world.provider(world.b_keys, f"b-synth-{version}")
    plan = plan_import([src], version=version)
    for category in plan.categories:
        patient.authorize_writer(a.address, category)
    report = a.import_fhir(patient.address, plan)
    assert any(r.kind == "attachment" for r in report.imported)
    big = [r for r in plan.records if isinstance(r.content, Path)]
    assert big and big[0].size == 1 << 20  # streamed from its file, never read whole
    for category in plan.categories:
        patient.grant(b.address, category, expires=timedelta(days=1))
    got = b.read_fhir(patient.address, attachments="inline")

    def dumped(model: Any) -> str:
        return json.dumps(model.model_dump(mode="json", exclude_none=True), sort_keys=True)

    placed = {p.reference for p in plan.placements if p.category is not None}
    given = [e["resource"] for e in json.loads(src.read_text())["entry"]]
    expected = sorted(
        dumped(parse_model(r, FhirVersion.parse(version)))
        for r in given
        if f"{r['resourceType']}/{r['id']}" in placed
    )
    assert sorted(dumped(m) for m in got) == expected
    types = {type(m).__name__ for m in got}
    assert {"Patient", "Encounter", "Observation", "DiagnosticReport", "ImagingStudy",
            "MedicationRequest", "Condition", "Consent", "DocumentReference"} <= types  # fmt: skip
    assert ("Media" in types) is (version == "R4")
    for actor in (a, b, patient):
        actor.close()


def test_per_encounter_records_keep_a_labelled_result_apart(world: World, tmp_path: Path) -> None:
    src = tmp_path / "export.json"
    src.write_text(json.dumps(base_bundle()))
    patient = world.patient("p-enc")
    a = world.provider(world.a_keys, "a-enc")
    b = world.provider(world.b_keys, "b-enc")
    plan = plan_import([src], per_encounter=True)
    by_kind = {(r.kind, r.category): r.resources for r in plan.records}
    # The encounter's everyday labs share one record; the HIV result has its own, in hiv.
    assert by_kind[("encounter", "lab-results")] == ("Observation/o1", "Observation/o2",
                                                      "Observation/o3")  # fmt: skip
    assert by_kind[("encounter", "hiv")] == ("Observation/o-hiv",)
    for category in plan.categories:
        patient.authorize_writer(a.address, category)
    report = a.import_fhir(patient.address, plan)
    assert a.import_fhir(patient.address, [src], per_encounter=True).written == []
    patient.grant(b.address, "lab-results", expires=timedelta(days=1))
    got = b.read_fhir(patient.address, encounter="Encounter/e1")
    assert sorted(o.id for o in got) == ["o1", "o2", "o3"]
    assert b.read_fhir(patient.address, encounter="Encounter/other") == []
    assert len(report.written) == len(plan.records)
    for actor in (a, b, patient):
        actor.close()


def test_read_fhir_returns_the_last_version_unless_asked_for_all(
    world: World, tmp_path: Path
) -> None:
    patient = world.patient("p-versions")
    a = world.provider(world.a_keys, "a-versions")
    b = world.provider(world.b_keys, "b-versions")
    patient.authorize_writer(a.address, "lab-results")
    first, second = obs("o1", 13.1), obs("o1", 13.4)
    second["meta"]["versionId"] = "2"
    for n, version in enumerate((first, second)):
        src = tmp_path / f"v{n}.json"
        src.write_text(json.dumps(bundle(version, obs("o2", 9.0))))
        a.import_fhir(patient.address, [src])
    assert entry_count(world.net, patient) == 3  # o1 twice, o2 once
    patient.grant(b.address, "lab-results", expires=timedelta(days=1))
    latest = {o.id: float(o.valueQuantity.value) for o in b.read_fhir(patient.address)}
    assert latest == {"o1": 13.4, "o2": 9.0}
    every = [(o.id, o.meta.versionId) for o in b.read_fhir(patient.address, versions="all")]
    assert sorted(every) == [("o1", "1"), ("o1", "2"), ("o2", "1")]
    for actor in (a, b, patient):
        actor.close()
