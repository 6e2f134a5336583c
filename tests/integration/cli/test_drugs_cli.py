"""`drugs …` on a real devnet (issue 17): a manufacturer registers a batch, a distributor
receives and ships on to the devnet pharmacy and to a hospital with the pharmacy
capability, the patient makes a link and the pharmacy dispenses to it, the regulator
audits (table, JSON, CSV; with the invoices handed in), the patient reveals the link and
the regulator traces it, a recall notifies the patient, and `drugs check` (no key) tells a
genuine pack from a fake one; refusals are one line, never a traceback."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import jsonschema

from tests.cli_support import run_cli as _cli

GTIN = "09506000134352"


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _js(result: subprocess.CompletedProcess[str]) -> object:
    return json.loads(_ok(result).stdout)


def _refused(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr


def test_drugs_from_factory_to_patient_audit_trace_recall(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cert = tmp_path / "release.pdf"
    cert.write_bytes(b"%PDF-1.7 batch release")

    def as_(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(data, "--json", "--profile", profile, "drugs", *args)

    try:
        _ok(_cli(data, "devnet", "up", "--proxies", "1", "--threshold", "1"))
        for name, role in (("maker", "manufacturer"), ("dist", "distributor"),
                           ("regulator", "regulator")):  # fmt: skip
            _ok(_cli(data, "--profile", "admin", "member", "add", name, "--role", role))
        _ok(_cli(data, "--profile", "admin", "member", "capabilities", "hospital-a",
                 "--set", "emergency,pharmacy"))  # fmt: skip
        b = _js(as_("maker", "register", GTIN, "L24A", "--expiry", "2031-06-30",
                    "--quantity", "100", "--certificate", str(cert)))  # fmt: skip
        assert isinstance(b, dict)
        batch = b["batch"]

        def ship(src: str, dst: str, qty: int, n: int) -> str:
            s = _js(as_(src, "ship", dst, batch, str(qty), "--invoice-number", f"INV-{n}",
                        "--amount", str(qty * 1200), "--tax-id", "91310000MA1K"))  # fmt: skip
            assert isinstance(s, dict)
            return str(s["shipment"])

        s1 = ship("maker", "dist", 60, 1)
        _ok(as_("dist", "receive", s1))
        _refused(_cli(data, "--profile", "dist", "drugs", "receive", s1), "Trace_AlreadyReceived")
        s2 = ship("dist", "pharmacy", 30, 2)
        s3 = ship("dist", "hospital-a", 10, 3)
        _ok(as_("pharmacy", "receive", s2))
        short = _js(as_("hospital-a", "receive", s3, "--quantity", "9"))
        assert isinstance(short, dict) and short["discrepancy"] == 1
        s4 = ship("maker", "pharmacy", 5, 4)  # straight from the factory: one invoice
        _ok(as_("pharmacy", "receive", s4))
        _refused(
            _cli(data, "--profile", "dist", "drugs", "ship", "pharmacy", batch, "999",
                 "--invoice-number", "X", "--amount", "1", "--tax-id", "T"),
            "holds 20 unit(s)",
        )  # fmt: skip

        link = _js(as_("patient", "link"))
        assert isinstance(link, dict)
        _ok(as_("pharmacy", "dispense", batch, "2", "--link", link["link"]))
        mine = _js(as_("patient", "mine"))
        assert isinstance(mine, list) and [m["quantity"] for m in mine] == [2]

        # The audit: exit 1 as two receipts are flagged; CSV for the commission.
        handed = tmp_path / "handed-in"
        _ok(as_("maker", "invoices", "--out", str(handed)))
        _ok(as_("dist", "invoices", "--out", str(handed)))
        assert len(list(handed.glob("*.json"))) == 4
        report_csv = tmp_path / "audit.csv"
        audit = _cli(data, "--json", "--profile", "regulator", "drugs", "audit",
                     "--invoices", str(handed), "--csv", str(report_csv))  # fmt: skip
        assert audit.returncode == 1, audit.stderr
        doc = json.loads(audit.stdout)
        assert (doc["receipts"], doc["flagged"], doc["invoicesChecked"]) == (3, 2, True)
        reasons = {f["shipmentId"]: f["reasons"] for f in doc["findings"]}
        assert reasons == {s2: [], s3: ["quantity_mismatch"], s4: ["too_few_invoices"]}
        rows = list(csv.DictReader(report_csv.open()))
        assert sorted(r["result"] for r in rows) == ["flagged", "flagged", "ok"]
        table = _cli(data, "--profile", "regulator", "drugs", "audit")
        assert table.returncode == 1 and "3 hospital receipt(s), 2 flagged" in table.stdout

        # A reaction: the patient reveals the link, the regulator traces it.
        secret = _js(as_("patient", "reveal", str(link["index"])))
        assert isinstance(secret, dict)
        traced = _js(as_("regulator", "trace", "--secret", secret["secret"]))
        assert isinstance(traced, list) and len(traced) == 1
        [route] = traced[0]["routes"]
        assert [leg["shipment"] for leg in route["shipments"]] == [s1, s2]

        # A reaction reported by the hospital: a record for the patient, a notice on chain.
        _ok(_cli(data, "--profile", "patient", "writer", "add", "hospital-a",
                 "--category", "allergies"))  # fmt: skip
        ae = _js(as_("hospital-a", "adverse", "patient", batch, "--description",
                     "urticaria after the second dose", "--seriousness", "2"))  # fmt: skip
        assert isinstance(ae, dict) and len(ae["digest"]) == 66
        bt = _js(as_("regulator", "trace", batch))
        assert isinstance(bt, dict) and (bt["dispensed"], bt["patients"]) == (2, 1)
        assert {h["account"]: h["stock"] for h in bt["holders"]}[bt["manufacturer"]] == 35

        # The counterfeit check needs no profile; a recall reaches the patient.
        code = f"(01){GTIN}(17)310630(10)L24A"
        check = _js(_cli(data, "--json", "drugs", "check", GTIN, "L24A"))
        assert isinstance(check, dict) and check["status"] == "genuine"
        assert len(check["path"]["shipments"]) == 4
        by_code = _js(_cli(data, "--json", "drugs", "check", code))
        assert isinstance(by_code, dict) and by_code["status"] == "genuine"
        fake = _cli(data, "--json", "drugs", "check", f"(01){GTIN}(10)FAKE")
        assert fake.returncode == 1 and json.loads(fake.stdout)["status"] == "unknown_batch"
        _refused(_cli(data, "drugs", "check", f"(01){GTIN[:-1]}3(10)L24A"), "check digit")
        recall = _js(as_("regulator", "recall", batch, "--reason", "sterility failure"))
        assert isinstance(recall, dict) and recall["notices"] == 1
        mine = _js(as_("patient", "mine"))
        assert isinstance(mine, list) and mine[0]["recalled"] and mine[0]["notified"]
        assert _cli(data, "drugs", "check", code).returncode == 1
        _refused(_cli(data, "--profile", "pharmacy", "drugs", "dispense", batch, "1",
                      "--link", "0x" + "11" * 32), "recalled")  # fmt: skip

        # The batch's story for a supply-chain system, as EPCIS 2.0 JSON-LD (no key).
        epcis = tmp_path / "supply.jsonld"
        _ok(_cli(data, "drugs", "export", "--out", str(epcis), "--batch", batch))
        exported = json.loads(epcis.read_text())
        schema = json.loads((Path(__file__).parents[2] / "unit" / "trace" / "data" /
                             "EPCIS-JSON-Schema.json").read_text())  # fmt: skip
        assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(exported)] == []
        steps = [e["bizStep"] for e in exported["epcisBody"]["eventList"]]
        assert steps.count("shipping") == 4 and steps.count("receiving") == 4
        assert steps[0] == "commissioning" and steps[-1] == "holding"
        assert link["link"][2:] not in epcis.read_text()
    finally:
        _cli(data, "devnet", "down")
