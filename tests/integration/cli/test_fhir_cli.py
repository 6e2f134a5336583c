"""``fhir import`` and ``fhir read`` through the real command line on a devnet (issue 14):
a synthetic patient's export is explained, refused until every category it needs is
authorized, imported once however often it is run, and read back as a Bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import run_cli as _cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_fhir_import_explain_refuse_import_again_and_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pop = tmp_path / "pop"
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "synth_fhir.py"), str(pop), "--patients", "1",
         "--observations", "5", "--seed", "7"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (src,) = sorted(pop.glob("patient-*.json"))

    def run(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(data_dir, "--profile", profile, *args)

    def js(profile: str, *args: str) -> Any:
        return json.loads(_ok(run(profile, "--json", *args)))

    imp = ("fhir", "import", str(src), "--patient", "patient")
    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2"))
        explained = _ok(run("hospital-a", *imp, "--explain", "--dry-run"))
        assert "security label HIV" in explained and "(skipped)" in explained
        plan = js("hospital-a", *imp, "--dry-run")
        hiv = [p for p in plan["placements"] if p["category"] == "hiv"]
        assert hiv and all("HIV" in p["rule"] for p in hiv)

        refused = run("hospital-a", *imp)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "has not authorized" in refused.stderr and "--mapping" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert js("patient", "record", "list") == []

        for category in plan["categories"]:
            _ok(run("patient", "writer", "add", "hospital-a", "--category", category))
        first = js("hospital-a", *imp)
        assert first["written"] == first["planned_records"] and first["existing"] == 0
        again = js("hospital-a", *imp)
        assert again["written"] == 0 and again["existing"] == first["planned_records"]
        assert len(js("patient", "record", "list")) == first["planned_records"]

        _ok(run("patient", "grant", "add", "--to", "hospital-b", "--category", "lab-results"))
        out = tmp_path / "labs.json"
        _ok(run("hospital-b", "fhir", "read", "--patient", "patient", "--type", "Observation",
                "--out", str(out)))  # fmt: skip
        labs = json.loads(out.read_text())
        assert labs["resourceType"] == "Bundle" and labs["type"] == "searchset"
        codes = {e["resource"]["code"]["coding"][0]["code"] for e in labs["entry"]}
        assert "20447-9" not in codes  # the HIV viral load is not a lab-results grantee's
        assert labs["total"] == 4  # 5 labs, of which the HIV-labelled one is not granted
    finally:
        _cli(data_dir, "devnet", "down")
