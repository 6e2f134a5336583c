"""`claims file|list|show|consent|read|adjudicate|report` on a real devnet (issue 16): a
hospital files a claim for two encounter records, the patient lists and consents, the
insurer reads and partially approves once, a second adjudication and another member's are
refused in one line, and the bureau reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli_support import run_cli as _cli


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _refused(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr


def test_claims_file_consent_read_adjudicate_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        _ok(_cli(data, "devnet", "up", "--proxies", "1", "--threshold", "1"))
        _ok(_cli(data, "--profile", "admin", "member", "add", "insurer", "--role", "insurer"))
        _ok(_cli(data, "--profile", "patient", "writer", "add", "hospital-a",
                 "--category", "encounters"))  # fmt: skip
        records = []
        for i in range(2):
            f = tmp_path / f"visit{i}.txt"
            f.write_text(f"visit note {i}")
            added = _ok(_cli(data, "--json", "--profile", "hospital-a", "record", "add", str(f),
                             "--patient", "patient", "--category", "encounters"))  # fmt: skip
            records.append(json.loads(added.stdout)["record_id"])
        args = [a for r in records for a in ("--record", r)]
        filed = json.loads(
            _ok(
                _cli(
                    data,
                    "--json",
                    "--profile",
                    "hospital-a",
                    "claims",
                    "file",
                    "patient",
                    "insurer",
                    "encounters",
                    *args,
                    "--item",
                    "consultation:20000",
                    "--item",
                    "x-ray:5000",
                )
            ).stdout
        )
        assert filed["amount"] == 25_000 and len(filed["records"]) == 3
        cid = filed["claim"]

        listed = json.loads(_ok(_cli(data, "--json", "--profile", "patient", "claims",
                                     "list")).stdout)  # fmt: skip
        assert [(c["claim"], c["status"]) for c in listed] == [(cid, "filed")]
        _ok(_cli(data, "--profile", "patient", "claims", "consent", cid[:12], "--expires", "7d"))
        ins = ("--json", "--profile", "insurer", "claims")
        read = json.loads(_ok(_cli(data, *ins, "read", cid)).stdout)
        assert read["status"] == "consented" and read["amount"] == 25_000
        assert sorted(read["record_sizes"]) == sorted(records)
        _refused(_cli(data, "--profile", "hospital-b", "claims", "adjudicate", cid, "0",
                      "--reason", "not-covered"), "only its insurer adjudicates")  # fmt: skip
        done = json.loads(_ok(_cli(data, *ins, "adjudicate", cid, "20000", "--reason",
                                   "exceeds-limit")).stdout)  # fmt: skip
        assert (done["status"], done["approved"], done["reason_name"]) == (
            "partially_approved", 20_000, "exceeds-limit"
        )  # fmt: skip
        _refused(_cli(data, "--profile", "insurer", "claims", "adjudicate", cid, "20000",
                      "--reason", "exceeds-limit"), "Claims_AlreadyAdjudicated")  # fmt: skip
        _refused(_cli(data, "--profile", "insurer", "claims", "adjudicate", cid, "1",
                      "--reason", "diagnosis"), "unknown claim reason")  # fmt: skip
        shown = json.loads(_ok(_cli(data, "--json", "--profile", "patient", "claims", "show",
                                    cid)).stdout)  # fmt: skip
        assert shown["status"] == "partially_approved"
        report = json.loads(_ok(_cli(data, *ins, "report")).stdout)
        (h,) = report["hospitals"].values()
        assert (h["filed"], h["billed"], h["paid"], h["partially_approved"]) == (
            1, 25_000, 20_000, 1
        )  # fmt: skip
        trail = _ok(_cli(data, "--profile", "patient", "audit")).stdout
        kinds = [ln.split()[4] for ln in trail.splitlines() if f"claim {cid[:14]}" in ln]
        assert kinds == ["filed", "consented", "adjudicated", "settled"], trail
    finally:
        _cli(data, "devnet", "down")
