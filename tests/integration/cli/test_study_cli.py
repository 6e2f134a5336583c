"""Research cohorts on a real devnet (issue 16): a researcher publishes a study naming the
devnet's de-identification service (a real process); the patient joins (grants to the
service, not the researcher); a release reaches the researcher sealed and free of the
patient's Safe Harbor identifiers; points are credited; forged requests to the service are
refused with a reason; after leaving, the next release leaves the patient out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from emrshare.crypto.entry import sign_eip191
from emrshare.devnet import dev_private_keys
from emrshare.roles._research import join_digest, release_digest
from tests.cli_support import run_cli as _cli

ROOT = Path(__file__).resolve().parents[3]


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _planted(bundle: dict[str, Any]) -> set[str]:
    """The patient's identifying strings in the source export, read from it directly."""
    found: set[str] = set()
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] != "Patient":
            continue
        for name in r.get("name", []):
            found.update([name.get("family", ""), *name.get("given", [])])
        for addr in r.get("address", []):
            found.update([*addr.get("line", []), addr.get("city", ""), addr.get("postalCode", "")])
        found.update(t["value"] for t in r.get("telecom", []))
        found.update(i["value"] for i in r.get("identifier", []))
        found.add(r["id"])
        found.add(r.get("birthDate", "@"))
    return {s for s in found if len(s) >= 4}


def test_study_join_release_points_attacks_and_leave(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pop = tmp_path / "pop"
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "synth_fhir.py"), str(pop), "--patients", "1",
         "--observations", "6", "--seed", "11"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (src,) = sorted(pop.glob("patient-*.json"))
    planted = _planted(json.loads(src.read_text()))
    assert planted

    def js(profile: str, *args: str) -> Any:
        return json.loads(_ok(_cli(data, "--profile", profile, "--json", *args)))

    try:
        _ok(_cli(data, "devnet", "up", "--proxies", "2", "--threshold", "2"))
        _ok(_cli(data, "--profile", "patient", "writer", "add", "hospital-a", "--category",
                 "lab-results"))  # fmt: skip
        mapped = ("fhir", "import", str(src), "--patient", "patient", "--only", "lab-results")
        imported = _cli(data, "--profile", "hospital-a", "--json", *mapped)
        if imported.returncode != 0:  # no --only: authorize every planned category instead
            plan = js("hospital-a", "fhir", "import", str(src), "--patient", "patient", "--dry-run")
            for category in plan["categories"]:
                _ok(_cli(data, "--profile", "patient", "writer", "add", "hospital-a",
                         "--category", category))  # fmt: skip
            js("hospital-a", "fhir", "import", str(src), "--patient", "patient")
        protocol = tmp_path / "protocol.txt"
        protocol.write_text("Synthetic study protocol: HbA1c trends.\n")
        study = js("researcher", "study", "publish", str(protocol), "--needs", "lab-results",
                   "--service", "deid", "--ethics", "IRB-2026-117", "--ends-in", "30d")  # fmt: skip
        sid = study["study"]
        assert study["status"] == "open" and study["needs"] == ["lab-results"]
        listed = js("patient", "study", "list")
        assert [(s["study"], s["joined"], s["points"]) for s in listed] == [(sid, False, 0)]

        joined = js("patient", "study", "join", sid)
        assert joined["joined"] is True and joined["participants"] == 1
        grants = js("patient", "grant", "list")
        deid = js("deid", "whoami")["address"]
        researcher = js("researcher", "whoami")["address"]
        assert any(g["grantee"] == deid for g in grants)
        assert not any(g["grantee"] == researcher for g in grants)  # never the researcher

        released = js("researcher", "study", "release", sid)
        assert released["participants"] == 1 and released["resources"] > 0
        dataset = tmp_path / "dataset.ndjson"
        _ok(_cli(data, "--profile", "researcher", "study", "open", sid, "--out", str(dataset)))
        text = dataset.read_text()
        rows = [json.loads(line) for line in text.splitlines()]
        assert len(rows) == released["resources"]
        assert {r["resourceType"] for r in rows} >= {"Observation"}
        left = sorted(s for s in planted if s in text)
        assert left == [], f"identifiers left in the dataset: {left}"
        assert js("patient", "study", "points", sid)["points"] == 10

        # Attacks on the service: raw HTTP, refused with a reason each.
        port = json.loads((data / "devnet" / "research.json").read_text())["port"]
        url = f"http://127.0.0.1:{port}"
        net = json.loads((data / "network.json").read_text())
        chain_id = int(net["deployment"]["chain_id"])
        studies = net["deployment"]["addresses"]["Studies"]
        sid_b = bytes.fromhex(sid[2:])
        hospital_key = dev_private_keys(12)[4]
        deadline = int(time.time()) + 60
        forged, _ = sign_eip191(release_digest(chain_id, studies, sid_b, 2, deadline), hospital_key)
        r = httpx.post(url + "/v1/release", json={
            "study": sid, "deadline": deadline, "signature": "0x" + forged.hex()})  # fmt: skip
        assert (r.status_code, r.json()["error"]) == (403, "not_researcher")
        patient = js("patient", "whoami")["address"]
        policy = next(g["policy_id"] for g in grants if g["grantee"] == deid)
        digest = join_digest(
            chain_id, studies, sid_b, patient, patient, [bytes.fromhex(policy[2:])]
        )
        forged_join = "0x" + sign_eip191(digest, hospital_key)[0].hex()
        r = httpx.post(url + "/v1/join", json={
            "study": sid, "participant": patient, "proof": "0x" + "00" * 65, "patient": patient,
            "policies": [policy], "signature": forged_join, "participant_signature": forged_join,
        })  # fmt: skip
        assert (r.status_code, r.json()["error"]) == (403, "bad_signature")
        r = httpx.post(url + "/v1/join", content=b"{not json")
        assert (r.status_code, r.json()["error"]) == (400, "bad_request")
        r = httpx.post(url + "/v1/join", content=b"x" * 20_000)
        assert r.status_code == 413

        left_study = js("patient", "study", "leave", sid)
        assert left_study["left_on_chain"] is True and left_study["revoked"]
        again = js("researcher", "study", "release", sid)
        assert (again["participants"], again["resources"]) == (0, 0)
        assert js("patient", "study", "points", sid)["points"] == 10  # kept after leaving
        shown = js("patient", "study", "show", sid)
        assert shown["joined"] is False and shown["releases"] == 2
    finally:
        _cli(data, "devnet", "down")
