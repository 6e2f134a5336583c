"""Categories, expiries and purposes on a real devnet through the CLI (issue 12, items 5, 6
and 9): `record add --category LAB` lands in `lab-results` and is read under a grant of
`lab-results`; unknown names are refused with a did-you-mean before anything is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.cli_support import run_cli as _cli


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _one_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_lab_alias_lands_in_lab_results_and_reads_under_its_grant(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cbc = tmp_path / "cbc.txt"
    cbc.write_text("Hb 14.1 g/dL")

    def run(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(data_dir, "--profile", profile, *args)

    def js(profile: str, *args: str) -> Any:
        return json.loads(_ok(run(profile, "--json", *args)))

    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2"))
        # The patient authorizes one spelling; the hospital writes with an alias.
        _ok(run("patient", "writer", "add", "hospital-a", "--category", "Lab Results"))
        to_patient = ("--patient", "patient")
        added = js("hospital-a", "record", "add", str(cbc), *to_patient, "--category", "LAB")
        rid = added["record_id"]
        assert added["category"] == "lab-results"  # what it went under, not as typed
        mine = js("patient", "record", "list")
        assert [(r["record_id"], r["category"]) for r in mine] == [(rid, "lab-results")]

        # An unknown name is refused with the closest category, nothing written.
        refused = run("hospital-a", "record", "add", str(cbc), *to_patient,
                      "--category", "Lab Results/é!")  # fmt: skip
        _one_line(refused, 1, "unknown category", "did you mean 'lab-results'", "--new-category")

        # A zero or past expiry is a usage error before any transaction.
        grant = ("grant", "add", "--to", "hospital-b", "--category", "lab-results")
        for bad in ("0", "0d", "2020-01-01"):
            _one_line(run("patient", *grant, "--expires", bad), 2, "--expires")
        assert js("patient", "grant", "list") == []

        # A grant of `lab-results` (until a date) opens the record written as `LAB`.
        granted = js("patient", *grant, "--expires", "2099-12-31")
        assert granted["category"] == "lab-results"
        theirs = js("hospital-b", "record", "list", *to_patient, "--category", "labs")
        assert [(r["record_id"], r["category"]) for r in theirs] == [(rid, "lab-results")]
        got = tmp_path / "got.txt"
        _ok(run("hospital-b", "record", "get", rid, *to_patient, "-o", str(got)))
        assert got.read_text() == "Hb 14.1 g/dL"

        # A custom category needs --new-category once; then it is known to the patient.
        own = ("record", "add", str(cbc), "--category")
        _one_line(run("patient", *own, "home-measurements"), 1, "unknown", "--new-category")
        _ok(run("patient", *own, "Home Measurements", "--new-category"))
        _ok(run("patient", "writer", "add", "hospital-a", "--category", "home-measurements"))
        cats = {r["category"] for r in js("patient", "record", "list")}
        assert cats == {"lab-results", "home-measurements"}

        # The purpose is upper-cased to its FHIR code; a typo is refused with the code.
        ask = ("request", "add", *to_patient, "--category", "imaging", "--purpose")
        _ok(run("insurer", *ask, "hpaymt"))
        reqs = js("patient", "request", "list")
        assert [(r["category"], r["purpose"]) for r in reqs] == [("imaging", "HPAYMT")]
        _one_line(run("insurer", *ask, "hpaymnt"), 2, "did you mean HPAYMT")

        # A request in FHIR terms resolves through the importer's mapping to categories,
        # one sealed request each; a type that is not a record is refused, nothing sent.
        fhir = ("request", "add", *to_patient, "--purpose", "TREAT", "--fhir-types")
        sent = js(
            "hospital-b", *fhir, "Observation,DiagnosticReport", "--fhir-category", "laboratory"
        )
        assert list(sent["requests"]) == ["lab-results"]
        sent = js("hospital-b", *fhir, "Immunization, AllergyIntolerance")
        assert sorted(sent["requests"]) == ["allergies", "immunizations"]
        reqs = js("patient", "request", "list")
        assert sorted(r["category"] for r in reqs) == [
            "allergies", "imaging", "immunizations", "lab-results",
        ]  # fmt: skip
        _one_line(run("hospital-b", *fhir, "Organization"), 1, "not records")
        _one_line(run("hospital-b", *ask[:-1], "--fhir-types", "Observation"), 2, "one of them")
        assert len(js("patient", "request", "list")) == 4
    finally:
        _cli(data_dir, "devnet", "down")
