"""`member capabilities`, `emergency declare|review` and `notifications` on a real devnet
(issue 15): each refusal is one line saying what to do; the capability passes M-of-N."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli_support import run_cli as _cli


def _refused(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr


def test_emergency_commands_refuse_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        up = _cli(data, "devnet", "up", "--proxies", "1", "--threshold", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        declare0 = ("--profile", "hospital-a", "emergency", "declare", "--patient", "patient")
        _refused(_cli(data, *declare0, "--why", "x"), "no active regulator")
        reg = _cli(data, "--profile", "admin", "member", "add", "regulator", "--role", "regulator")
        assert reg.returncode == 0, reg.stdout + reg.stderr
        hospital = json.loads(_cli(data, "--json", "--profile", "hospital-a", "whoami").stdout)
        declare = ("--profile", "hospital-a", "emergency", "declare", "--patient", "patient")
        _refused(_cli(data, *declare, "--why", "unconscious"), "ask the consortium admins")

        caps = _cli(
            data,
            "--json",
            "--profile",
            "admin",
            "member",
            "capabilities",
            hospital["address"],
            "--set",
            "emergency",
        )
        assert caps.returncode == 0, caps.stdout + caps.stderr
        assert json.loads(caps.stdout)["capabilities"] == ["emergency"]
        _refused(_cli(data, *declare, "--why", "unconscious"), "has not opted in")

        _refused(
            _cli(data, "--profile", "insurer", "emergency", "review", "1", "--mark", "reviewed"),
            "only the regulator",
        )
        _refused(
            _cli(data, "--profile", "patient", "emergency", "opt-in", "--categories", "allergies"),
            "not published its emergency keys",
        )
        listed = _cli(data, "--json", "--profile", "patient", "notifications")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert json.loads(listed.stdout) == []
    finally:
        _cli(data, "devnet", "down")
