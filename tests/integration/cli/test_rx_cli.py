"""`rx issue|show|list|dispense|cancel|counts` on a real devnet (issue 15): a hospital
issues, a pharmacy admitted by the admin verifies and dispenses the allowed fill and no
more, a member without the Pharmacy role is refused in one line, the regulator counts."""

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


def test_rx_issue_dispense_once_cancel_and_count(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        _ok(_cli(data, "devnet", "up", "--proxies", "1", "--threshold", "1"))
        _ok(_cli(data, "--profile", "admin", "member", "add", "pharmacy", "--role", "pharmacy"))
        patient = ("--profile", "patient")
        _ok(_cli(data, *patient, "writer", "add", "hospital-a", "--category", "prescriptions"))
        for to in ("pharmacy", "hospital-b"):
            _ok(_cli(data, *patient, "grant", "add", "--to", to, "--category", "prescriptions"))
        issue = ("--json", "--profile", "hospital-a", "rx", "issue", "patient")
        rx = json.loads(
            _ok(_cli(data, *issue, "amoxicillin 500 mg capsule", "--dosage", "1 tid")).stdout
        )
        assert rx["fills"] == 1 and rx["prescription"].startswith("0x")

        pharmacy = ("--json", "--profile", "pharmacy", "rx")
        shown = json.loads(_ok(_cli(data, *pharmacy, "show", "patient", rx["record"])).stdout)
        assert shown["medication"] == "amoxicillin 500 mg capsule"
        assert shown["status"] == "active" and shown["prescription"] == rx["prescription"]
        listed = json.loads(_ok(_cli(data, *pharmacy, "list", "patient")).stdout)
        assert [x["record"] for x in listed] == [rx["record"]]

        # hospital-b can read it but is no pharmacy: the chain refuses, in one line.
        _refused(
            _cli(data, "--profile", "hospital-b", "rx", "dispense", "patient", rx["record"]),
            "only pharmacies dispense",
        )
        fill = json.loads(_ok(_cli(data, *pharmacy, "dispense", "patient", rx["record"])).stdout)
        assert (fill["fill"], fill["fills"], fill["prescription"], fill["record"]) == (
            1, 1, rx["prescription"], rx["record"]
        )  # fmt: skip
        _refused(
            _cli(data, "--profile", "pharmacy", "rx", "dispense", "patient", rx["record"]),
            "Prescriptions_AlreadyDispensed",
        )

        second = json.loads(_ok(_cli(data, *issue, "ibuprofen 400 mg", "--dosage", "prn")).stdout)
        _refused(
            _cli(data, "--profile", "hospital-b", "rx", "cancel", second["prescription"]),
            "only its prescriber cancels",
        )
        _ok(_cli(data, "--profile", "hospital-a", "rx", "cancel", second["prescription"]))
        _refused(
            _cli(data, "--profile", "pharmacy", "rx", "dispense", "patient", second["record"]),
            "cancelled by its prescriber",
        )
        _refused(_cli(data, "--profile", "hospital-a", "rx", "cancel", "0x12"), "64 hex digits")

        counts = json.loads(_ok(_cli(data, *pharmacy, "counts")).stdout)
        (by_doctor,) = counts["prescribers"].values()
        assert by_doctor["issued"] == 2 and by_doctor["cancelled"] == 1
        assert by_doctor["dispensed"] == 1 and by_doctor["fills"] == 1
        (by_pharmacy,) = counts["pharmacies"].values()
        assert by_pharmacy == {"fills": 1, "prescriptions": 1}
    finally:
        _cli(data, "devnet", "down")
