"""The end-to-end demo, through the `emrshare` CLI (each step is a separate process).

A devnet comes up (anvil, or ganache with ``--node ganache``; the contracts, 3 proxy
processes at threshold 2, a relay, an embedded store, demo profiles). A new patient,
alice, is created holding no ETH: each of her operations is signed by her and the
devnet's relay pays its gas. Hospital A writes a lab result and an imaging report for
her; hospital B requests lab access; alice approves it for 30 days; B reads the lab
result (bytes equal to the original) but is refused the imaging report; alice revokes;
B is refused; the audit trail shows B's reads.

With ``--all`` (``make demo-all``), then an emergency: alice opts in (allergies and
medications, 24 h); the consortium admits
a regulator; alice arrives unconscious and a hospital A clinician declares an emergency
and reads her allergy record through the proxies; the regulator opens the justification
and marks the declaration reviewed; alice's notifications show who, why, what was read
and the review. And a prescription: hospital A issues one (one fill); alice grants her
prescriptions to the devnet's pharmacy; the pharmacy dispenses it; a second dispense is
refused by the chain; the regulator's counts show 1 issued, 1 fill. And a study: a
researcher publishes one of lab results; alice joins (her grant goes to the devnet's
de-identification service); a release reaches the researcher without her name, ids or
exact dates; alice earns points and leaves. And a drug batch: a manufacturer, two
distributors and the pharmacy move it (one hidden extra intermediary planted on the way
to hospital A), the pharmacy dispenses to alice's blinded link, the regulator's
two-invoice audit flags the planted receipt, and alice's reported reaction is traced to
the factory. alice still holds 0 ETH; the devnet goes down.

    python scripts/demo.py [--all] [--node anvil|ganache] [--data-dir DIR] [--keep]

Exits non-zero as soon as an expectation fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BOLD, GREEN, RED, DIM, RESET = "\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = GREEN = RED = DIM = RESET = ""


#: The demo's patient: a profile the demo creates, whose address no one funds.
PATIENT = "alice"


class DemoFailed(Exception):
    pass


class Demo:
    def __init__(self, data_dir: Path, node: str = "anvil", *, all_scenes: bool = False) -> None:
        self.data_dir = data_dir
        self.node = node
        self.all_scenes = all_scenes
        self.env = dict(
            os.environ,
            EMRSHARE_DATA_DIR=str(data_dir),
            EMRSHARE_PASSWORD=os.environ.get("EMRSHARE_PASSWORD", "devnet"),
            COLUMNS="120",
        )
        self.step_no = 0
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.step_no += 1
        at = f"{DIM}  (+{time.monotonic() - self.started:.0f} s){RESET}"
        print(f"\n{BOLD}[{self.step_no}] {text}{RESET}{at}", flush=True)

    def run(
        self,
        *args: str,
        profile: str | None = None,
        expect_ok: bool = True,
        quiet: bool = False,
        says: str = "",
        exit_codes: tuple[int, ...] = (0,),
    ) -> str:
        """Run one `emrshare` command. With ``expect_ok=False`` it must be refused, in one
        line of stderr that contains ``says``."""
        cmd = [sys.executable, "-m", "emrshare.cli"]
        if profile:
            cmd += ["--profile", profile]
        cmd += list(args)
        print(f"{DIM}$ emrshare {' '.join(cmd[3:])}{RESET}", flush=True)
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        output = proc.stdout.rstrip()
        if output and not quiet:
            print(output)
        if proc.stderr.strip():
            print(proc.stderr.rstrip())
        if expect_ok and proc.returncode not in exit_codes:
            raise DemoFailed(f"`emrshare {' '.join(args)}` failed (exit {proc.returncode})")
        if not expect_ok and proc.returncode == 0:
            raise DemoFailed(f"`emrshare {' '.join(args)}` succeeded but should be refused")
        if not expect_ok:
            error = proc.stderr.strip()
            if len(error.splitlines()) != 1 or says not in error:
                raise DemoFailed(
                    f"`emrshare {' '.join(args)}` was not refused in one line {says!r}"
                )
            print(f"{GREEN}  refused, as expected{RESET}")
        return proc.stdout

    def json(
        self,
        *args: str,
        profile: str | None = None,
        quiet_keys: tuple[str, ...] = (),
        exit_codes: tuple[int, ...] = (0,),
    ) -> Any:
        value = json.loads(
            self.run("--json", *args, profile=profile, quiet=True, exit_codes=exit_codes)
        )
        shown = {k: v for k, v in value.items() if k not in quiet_keys} if quiet_keys else value
        summary = json.dumps(shown)
        print(f"{DIM}  → {summary if len(summary) < 160 else summary[:157] + '…'}{RESET}")
        return value

    def new_patient(self, name: str) -> str:
        """A new patient profile with keys of its own (no funded development account):
        what ``emrshare --profile NAME init --kind patient`` makes, but with the cheap
        development KDF ``devnet up`` gives its profiles, so that each of the patient's
        commands does not spend a second unlocking. Returns its address."""
        from emrshare.roles.profiles import Profiles

        print(f"{DIM}$ emrshare --profile {name} init --kind patient   (devnet KDF){RESET}")
        profile, _words = Profiles(self.data_dir).create(
            name, "patient", self.env["EMRSHARE_PASSWORD"], fast_kdf=True
        )
        print(f"created patient profile {name} → {profile.address}")
        return str(profile.address)

    def address(self, name: str) -> str:
        """A profile's address, read from its file in the data dir."""
        from emrshare.roles.profiles import Profiles

        return str(Profiles(self.data_dir).get(name).address)

    def balance(self, address: str) -> int:
        """The address's balance in wei, asked of the devnet's chain node."""
        config = json.loads((self.data_dir / "network.json").read_text())
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getBalance",
            "params": [address, "latest"],
        }
        request = urllib.request.Request(
            config["rpc_url"], json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(json.loads(answer.read())["result"], 16)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            raise DemoFailed(what)
        print(f"{GREEN}  ✓ {what}{RESET}")


def scenario(d: Demo, files: Path) -> None:
    lab = files / "lab-result.txt"
    lab.write_text("Complete blood count, 2026-11-23\nHb 14.1 g/dL\nWBC 6.2 x10^9/L\n")
    imaging = files / "mri-report.bin"
    imaging.write_bytes(os.urandom(2 * 1024 * 1024))

    d.step(
        f"Bring up the devnet: {d.node}, contracts, 3 proxies (2-of-3), relay, store, demo members"
    )
    d.run("devnet", "up", "--node", d.node)
    d.run("devnet", "status")

    d.step("A new patient, alice, with no ETH: the devnet's relay pays for what she signs")
    alice = d.new_patient(PATIENT)
    d.expect(d.balance(alice) == 0, f"alice ({alice}) holds 0 ETH")
    d.run("register", profile=PATIENT)

    d.step("alice authorizes hospital A to write lab and imaging records")
    d.run("writer", "add", "hospital-a", "--category", "lab", profile=PATIENT)
    d.run("writer", "add", "hospital-a", "--category", "imaging", profile=PATIENT)

    d.step("Hospital A writes a lab result and an imaging report for the patient")
    lab_id = d.json(
        "record",
        "add",
        str(lab),
        "--patient",
        PATIENT,
        "--category",
        "lab",
        "--media-type",
        "text/plain",
        profile="hospital-a",
    )["record_id"]
    img_id = d.json(
        "record",
        "add",
        str(imaging),
        "--patient",
        PATIENT,
        "--category",
        "imaging",
        "--media-type",
        "application/octet-stream",
        profile="hospital-a",
    )["record_id"]
    own = d.json("record", "list", profile=PATIENT)
    d.expect({r["record_id"] for r in own} >= {lab_id, img_id}, "both records are in the index")

    d.step("Hospital B requests access to alice's lab results")
    req = d.json(
        "request",
        "add",
        "--patient",
        PATIENT,
        "--category",
        "lab",
        "--purpose",
        "TREAT",
        "--reason",
        "referral for follow-up",
        profile="hospital-b",
    )["request_id"]
    d.run("request", "list", "--pending", profile=PATIENT)

    d.step("alice approves the request for 30 days")
    grant = d.json("request", "approve", str(req), "--expires", "30d", profile=PATIENT)
    d.expect(
        grant["category"] == "lab-results" and grant["status"] == "active", "lab grant is active"
    )

    d.step("Hospital B reads the lab result through 2-of-3 proxies")
    got = files / "lab-as-read-by-b.txt"
    d.run("record", "get", lab_id, "--patient", PATIENT, "-o", str(got), profile="hospital-b")
    d.expect(got.read_bytes() == lab.read_bytes(), "the bytes equal the original lab result")

    d.step("Hospital B tries the imaging report: refused (never granted)")
    d.run(
        "record",
        "get",
        img_id,
        "--patient",
        PATIENT,
        "-o",
        str(files / "no.bin"),
        profile="hospital-b",
        expect_ok=False,
    )
    d.expect(not (files / "no.bin").exists(), "nothing was written")

    fhir_scene(d, files)

    d.step("alice revokes hospital B's grant (the lab category moves to a new epoch)")
    d.run("grant", "revoke", grant["policy_id"], profile=PATIENT)
    consents = d.json("grant", "list", "--fhir", profile=PATIENT)
    d.expect(
        [e["resource"]["status"] for e in consents["entry"]] == ["inactive"],
        "alice's grant, as a FHIR Consent (IHE PCF), is now inactive",
    )

    d.step("Hospital B tries the lab result again: refused by the proxies")
    d.run(
        "record",
        "get",
        lab_id,
        "--patient",
        PATIENT,
        "-o",
        str(files / "no2.txt"),
        profile="hospital-b",
        expect_ok=False,
    )

    d.step("alice's audit trail shows hospital B's read")
    b_address = d.address("hospital-b")
    trail: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # proxies log their served batches every second
        trail = d.json("audit", profile=PATIENT)
        if any(e["requester"] == b_address and e["records"] == [lab_id] for e in trail):
            break
        time.sleep(1)
    d.run("audit", profile=PATIENT)
    d.expect(
        any(e["requester"] == b_address and e["records"] == [lab_id] for e in trail),
        "hospital B's read of the lab result is on chain",
    )

    if d.all_scenes:
        emergency_scene(d, files)
        rx = prescription_scene(d, files)
        claim_scene(d, files, rx)
        study_scene(d, files)
        drug_scene(d, files)

    d.step("alice paid no gas: every one of her operations went through the relay")
    d.expect(d.balance(alice) == 0, "alice still holds 0 ETH")


def _observation(oid: str, loinc: str, value: float, unit: str, *labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"versionId": "1"}
    if labels:
        system = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        meta["security"] = [{"system": system, "code": c} for c in labels]
    return {
        "resourceType": "Observation", "id": oid, "meta": meta, "status": "final",
        "category": [{"coding": [{"code": "laboratory", "system":
                      "http://terminology.hl7.org/CodeSystem/observation-category"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/alice"},
        "valueQuantity": {"value": value, "unit": unit},
    }  # fmt: skip


def fhir_scene(d: Demo, files: Path) -> None:
    """Hospital A publishes what its EHR exported (synthetic FHIR); B reads labs back."""
    export = files / "ehr-export.json"
    labs = [("obs-1", "718-7", 14.1, "g/dL"), ("obs-2", "2345-7", 92.0, "mg/dL"),
            ("obs-3", "2160-0", 0.9, "mg/dL")]  # fmt: skip
    resources = [_observation(*lab) for lab in labs]
    resources.append(_observation("obs-4", "20447-9", 20.0, "copies/mL", "HIV"))
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in resources]}  # fmt: skip
    export.write_text(json.dumps(bundle, indent=2))

    d.step("Hospital A publishes its EHR's FHIR export; the HIV-labelled result goes apart")
    d.run("writer", "add", "hospital-a", "--category", "hiv", profile=PATIENT)
    d.run("fhir", "import", str(export), "--patient", PATIENT, "--explain", profile="hospital-a")
    again = d.json("fhir", "import", str(export), "--patient", PATIENT, profile="hospital-a",
                   quiet_keys=("placements", "records", "problems"))  # fmt: skip
    d.expect(again["written"] == 0, "the same export again writes nothing")

    d.step("Hospital B reads alice's lab results back as FHIR (the HIV result is not granted)")
    got = files / "labs-as-fhir.json"
    d.run("fhir", "read", "--patient", PATIENT, "--type", "Observation", "--out", str(got),
          profile="hospital-b")  # fmt: skip
    codes = {
        e["resource"]["code"]["coding"][0]["code"] for e in json.loads(got.read_text())["entry"]
    }
    d.expect(codes == {"718-7", "2345-7", "2160-0"}, "three lab Observations, not the HIV one")


def emergency_scene(d: Demo, files: Path) -> None:
    """alice opts in to emergency access; unconscious in the emergency room, she cannot
    grant: hospital A declares an emergency and reads her allergies through the proxies;
    the regulator reviews the declaration; alice sees all of it in her notifications."""
    allergy = files / "allergies.txt"
    allergy.write_text("penicillin: anaphylaxis (2019)\nlatex: contact dermatitis\n")
    why = "unconscious after a road accident, no relative reachable; need allergies before surgery"
    hospital_a = d.address("hospital-a")

    d.step("Hospital A records alice's allergies; alice opts in to emergency access")
    d.run("writer", "add", "hospital-a", "--category", "allergies", profile=PATIENT)
    added = d.json("record", "add", str(allergy), "--patient", PATIENT, "--category",
                   "allergies", "--media-type", "text/plain", profile="hospital-a")  # fmt: skip
    allergy_id = added["record_id"]
    opted = d.json("emergency", "opt-in", "--categories", "allergies,medications", "--window",
                   "24h", profile=PATIENT)  # fmt: skip
    d.expect(
        opted["categories"] == ["allergies", "medications"] and opted["window_s"] == 86400,
        "allergies and medications (not mental-health) may open for 24 h per declaration",
    )

    d.step("The consortium admits a regulator, who reviews every emergency declaration")
    d.run("member", "add", "regulator", "--role", "regulator", profile="admin")

    d.step("alice arrives unconscious: a hospital A clinician declares an emergency")
    did = d.json("emergency", "declare", "--patient", PATIENT, "--why", why,
                 profile="hospital-a")["declaration"]  # fmt: skip

    d.step("The clinician reads alice's allergies through 2-of-3 proxies (each serve logged)")
    out = files / "emergency"
    (rec,) = d.json("emergency", "read", str(did), "allergies", "--out", str(out),
                    profile="hospital-a")  # fmt: skip
    d.expect(
        rec["record"] == allergy_id and Path(rec["path"]).read_bytes() == allergy.read_bytes(),
        "the allergy record, bytes equal to what hospital A wrote",
    )

    d.step("The regulator reviews the declaration and its justification, and marks it")
    shown = " ".join(d.run("emergency", "review", profile="regulator").split())
    d.expect(
        f"EMERGENCY #{did} " in shown and why in shown, "the regulator opened the justification too"
    )
    d.run("emergency", "review", str(did), "--mark", "reviewed", profile="regulator")

    d.step("alice, awake, sees the emergency in her notifications: who, why, what, the review")
    notices: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the proxies log their serves on chain each second
        notices = d.json("notifications", profile=PATIENT)
        if any(n["declaration"] == did and n["accesses"] for n in notices):
            break
        time.sleep(1)
    (notice,) = [n for n in notices if n["declaration"] == did]
    d.expect(
        notice["clinician"] == hospital_a and notice["justification"] == why,
        "declared by hospital A, its justification opened for alice",
    )
    d.expect(notice["review"] == "reviewed", "the regulator's verdict is on chain: reviewed")
    d.expect(
        {(a["category"], a["records"]) for a in notice["accesses"]} == {("allergies", 1)},
        "the serve is on chain: 1 allergies record, nothing else",
    )


def prescription_scene(d: Demo, files: Path) -> dict[str, Any]:
    """Hospital A prescribes; alice lets the devnet's pharmacy read that one prescription;
    the pharmacy verifies and dispenses; a second dispense is refused by the chain."""
    d.step("alice authorizes hospital A to write prescriptions")
    d.run("writer", "add", "hospital-a", "--category", "prescriptions", profile=PATIENT)

    d.step("Hospital A issues a prescription: a signed FHIR MedicationRequest, committed on chain")
    rx = d.json("rx", "issue", PATIENT, "amoxicillin 500 mg capsule", "--dosage",
                "1 capsule 3 times a day for 7 days", profile="hospital-a")  # fmt: skip
    d.expect(rx["fills"] == 1, "one fill allowed")

    d.step("alice grants the pharmacy that one prescription, not her prescriptions category")
    g = d.json("grant", "add", "--to", "pharmacy", "--category", "prescriptions",
               "--record", rx["record"], "--expires", "7d", profile=PATIENT)  # fmt: skip
    d.expect(g["records"] == [rx["record"]], "the grant names that record only")

    d.step("The pharmacy verifies it and dispenses; a second dispense is refused")
    fill = d.json("rx", "dispense", PATIENT, rx["record"], profile="pharmacy")
    d.expect(fill["fill"] == 1, "fill 1 of 1 dispensed")
    d.run("rx", "dispense", PATIENT, rx["record"], profile="pharmacy", expect_ok=False,
          says="Prescriptions_AlreadyDispensed")  # fmt: skip

    d.step("The regulator counts prescriptions per prescriber and pharmacy, from the chain")
    counts = d.json("rx", "counts", profile="regulator")
    by_doctor = {a.lower(): c for a, c in counts["prescribers"].items()}
    by_pharmacy = {a.lower(): c for a, c in counts["pharmacies"].items()}
    doctor = by_doctor.get(d.address("hospital-a").lower(), {})
    d.expect(
        doctor.get("issued") == 1 and doctor.get("dispensed") == 1,
        "hospital A: 1 issued, 1 dispensed",
    )
    d.expect(
        by_pharmacy.get(d.address("pharmacy").lower()) == {"fills": 1, "prescriptions": 1},
        "the pharmacy: 1 fill of 1 prescription",
    )
    return rx  # type: ignore[no-any-return]


def claim_scene(d: Demo, files: Path, rx: dict[str, Any]) -> None:
    """Hospital A bills alice's visit and the dispensed prescription to the insurer;
    alice consents to that claim only; the insurer reads and partially approves once;
    the insurance bureau's figures and billed-vs-dispensed check come from the chain."""
    d.step("The consortium admits the insurer; alice lets hospital A write encounters")
    d.run("member", "add", "insurer", "--role", "insurer", profile="admin")
    d.run("writer", "add", "hospital-a", "--category", "encounters", profile=PATIENT)
    visit = files / "visit-note.txt"
    visit.write_text("Outpatient visit: sore throat, examined, amoxicillin prescribed.\n")
    rec = d.json("record", "add", str(visit), "--patient", PATIENT, "--category", "encounters",
                 profile="hospital-a")  # fmt: skip

    d.step("Hospital A files a claim: a FHIR Claim record, its commitment and amount on chain")
    filed = d.json("claims", "file", PATIENT, "insurer", "encounters", "--record",
                   rec["record_id"], "--item", "consultation:20000", "--item",
                   f"amoxicillin:1500:{rx['prescription']}", profile="hospital-a")  # fmt: skip
    d.expect(filed["amount"] == 21_500, "21,500 billed (minor units)")
    claims = d.json("claims", "list", profile=PATIENT)
    d.expect([c["status"] for c in claims] == ["filed"], "alice sees the claim, filed")

    d.step("alice consents to that claim only: a grant of its 2 records, linked on chain")
    d.run("claims", "consent", filed["claim"], "--expires", "14d", profile=PATIENT)

    d.step("The insurer reads the claim and the visit note, then approves 20,000 of 21,500")
    read = d.json("claims", "read", filed["claim"], profile="insurer")
    d.expect(read["status"] == "consented", "the document matches its commitment")
    done = d.json("claims", "adjudicate", filed["claim"], "20000", "--reason",
                  "exceeds-limit", profile="insurer")  # fmt: skip
    d.expect(done["status"] == "partially_approved", "partially approved, settled")
    d.run("claims", "adjudicate", filed["claim"], "20000", "--reason", "exceeds-limit",
          profile="insurer", expect_ok=False, says="Claims_AlreadyAdjudicated")  # fmt: skip

    d.step("The insurance bureau's figures and billed-vs-dispensed check, from the chain")
    report = d.json("claims", "report", profile="regulator")
    by_hospital = {a.lower(): c for a, c in report["hospitals"].items()}
    row = by_hospital.get(d.address("hospital-a").lower(), {})
    d.expect(row.get("billed") == 21_500 and row.get("paid") == 20_000, "billed and paid")
    d.expect(not report["mismatches"], "the billed prescription was dispensed")
    d.run("audit", profile=PATIENT)


def study_scene(d: Demo, files: Path) -> None:
    """A researcher publishes a study of lab results; alice joins (her grant goes to the
    devnet's de-identification service, not the researcher); a release reaches the
    researcher de-identified; alice earns points, then leaves."""
    protocol = files / "study-protocol.txt"
    protocol.write_text("Synthetic protocol: kidney function trends in adults.\n")
    d.step("A researcher publishes a study of lab results, de-identified by the devnet's service")
    study = d.json("study", "publish", str(protocol), "--needs", "lab", "--service", "deid",
                   "--ethics", "IRB-117", "--ends-in", "90d", profile="researcher")  # fmt: skip
    sid = study["study"]

    d.step("alice joins: her lab results are granted to the service, never to the researcher")
    joined = d.json("study", "join", sid, profile=PATIENT)
    d.expect(joined["joined"] is True, "alice is a participant, under a key of this study alone")

    d.step("The researcher asks for a release and opens it: no name, no id, no exact date")
    released = d.json("study", "release", sid, profile="researcher")
    d.expect(released["participants"] == 1, "one participant in the release")
    out = files / "release.ndjson"
    d.run("study", "open", sid, "--out", str(out), profile="researcher")
    text = out.read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    d.expect(
        len(rows) == 3 and all(r["resourceType"] == "Observation" for r in rows),
        "three lab Observations (the HIV-labelled one was never granted)",
    )
    d.expect("Patient/alice" not in text and "obs-1" not in text, "ids replaced by pseudonyms")
    points = d.json("study", "points", sid, profile=PATIENT)["points"]
    d.expect(points == 10, "alice earned 10 points")

    d.step("alice leaves: her grant is revoked; what was released stays released")
    left = d.json("study", "leave", sid, profile=PATIENT)
    d.expect(left["left_on_chain"] is True, "the leave is on chain")


def drug_scene(d: Demo, files: Path) -> None:
    """A batch from the factory to alice: a manufacturer registers it, a distributor
    passes it on to the pharmacy, and a second distributor slips in on the way to
    hospital A (a hidden third invoice); the pharmacy dispenses to alice's blinded link;
    the regulator's two-invoice audit finds the planted violation; hospital A reports
    alice's reaction and the regulator traces her dispense back to the factory."""
    d.step("The consortium admits a manufacturer and two distributors; hospital A's pharmacy")
    for name, role in (
        ("maker", "manufacturer"),
        ("dist", "distributor"),
        ("dist2", "distributor"),
    ):
        d.run("member", "add", name, "--role", role, profile="admin")
    d.run("member", "capabilities", "hospital-a", "--set", "emergency,pharmacy", profile="admin")

    d.step("The manufacturer registers a batch (GS1 check digit verified on chain)")
    cert = files / "release.pdf"
    cert.write_bytes(b"%PDF-1.7 batch release certificate (synthetic)")
    registered = d.json("drugs", "register", "09506000134352", "L24A", "--expiry",
                        "2031-06-30", "--quantity", "100", "--certificate", str(cert),
                        profile="maker")  # fmt: skip
    batch = registered["batch"]

    def ship(src: str, dst: str, qty: int, n: int) -> str:
        s = d.json("drugs", "ship", dst, batch, str(qty), "--invoice-number", f"INV-{n}",
                   "--amount", str(qty * 1200), "--tax-id", f"TAX-{src}", profile=src)  # fmt: skip
        d.run("drugs", "receive", s["shipment"], profile=dst)
        return str(s["shipment"])

    d.step("Factory → distributor → pharmacy: one invoice each, each receipt confirmed")
    ship("maker", "dist", 80, 1)
    clean = ship("dist", "pharmacy", 40, 2)
    d.step("Planted: the distributor sells through a second one to hospital A (3 invoices)")
    ship("dist", "dist2", 20, 3)
    planted = ship("dist2", "hospital-a", 10, 4)

    d.step("alice shows the pharmacy a fresh link; the pharmacy dispenses 2 packs to it")
    link = d.json("drugs", "link", profile=PATIENT)
    d.run("drugs", "dispense", batch, "2", "--link", link["link"], profile="pharmacy")

    d.step("The regulator's two-invoice audit: the hidden intermediary is flagged")
    audit = d.json("drugs", "audit", profile="regulator", exit_codes=(1,))
    flagged = {f["shipmentId"]: f["reasons"] for f in audit["findings"] if not f["ok"]}
    d.expect(flagged == {planted: ["extra_intermediary"]}, "hospital A's receipt: 3 invoices")
    d.expect(
        any(f["shipmentId"] == clean and f["ok"] for f in audit["findings"]),
        "the pharmacy's receipt passes: two invoices",
    )

    d.step("alice reacts; hospital A files a FHIR AdverseEvent; the chain names the batch only")
    d.json("drugs", "adverse", PATIENT, batch, "--description", "urticaria after the second "
           "dose", "--seriousness", "2", profile="hospital-a")  # fmt: skip
    secret = d.json("drugs", "reveal", str(link["index"]), profile=PATIENT, quiet_keys=("secret",))
    (traced,) = d.json("drugs", "trace", "--secret", secret["secret"], profile="regulator")
    (route,) = traced["routes"]
    d.expect(
        [leg["from"] for leg in route["shipments"]] == [d.address("maker"), d.address("dist")],
        "her packs came factory → distributor → pharmacy",
    )
    check = d.json("drugs", "check", "09506000134352", "L24A", quiet_keys=("path",))
    d.expect(check["status"] == "genuine", "the pack checks genuine, by anyone, with no key")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--keep", action="store_true", help="leave the devnet running")
    parser.add_argument("--node", choices=("anvil", "ganache"), default="anvil", help="chain node")
    parser.add_argument(
        "--all", action="store_true", help="also the emergency, prescription and study scenes"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emrshare-demo-"))
    data_dir = (args.data_dir or tmp / "data").resolve()
    d = Demo(data_dir, args.node, all_scenes=args.all)
    failed = False
    try:
        scenario(d, tmp)
    except (DemoFailed, subprocess.TimeoutExpired) as exc:
        print(f"\n{RED}{BOLD}DEMO FAILED: {exc}{RESET}")
        failed = True
    finally:
        if not args.keep:
            d.step("Bring the devnet down")
            down = subprocess.run(
                [sys.executable, "-m", "emrshare.cli", "devnet", "down"], env=d.env, check=False
            )
            failed = failed or down.returncode != 0
            shutil.rmtree(tmp, ignore_errors=True)
    if not failed:
        took = time.monotonic() - d.started
        print(
            f"\n{GREEN}{BOLD}demo passed on {args.node} in {took:.0f} s: every expectation "
            f"held{RESET}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
