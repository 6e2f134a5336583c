"""`member add` on a real devnet: a refusal (not an admin, an unknown role) comes before
any profile is created or funded, and adding the same member again changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli_support import run_cli as _cli


def _refused(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr


def test_member_add_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    profiles = data_dir / "profiles"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2")
        assert up.returncode == 0, up.stdout + up.stderr

        not_admin = _cli(
            data_dir, "--profile", "hospital-a", "member", "add", "x", "--role", "pharmacy"
        )
        _refused(not_admin, "is not a consortium admin")
        assert "--profile admin" in not_admin.stderr
        assert not (profiles / "x").exists()

        _refused(
            _cli(data_dir, "--profile", "admin", "member", "add", "y", "--role", "surgeon"),
            "unknown role 'surgeon'",
        )
        assert not (profiles / "y").exists()

        added = _cli(data_dir, "--profile", "admin", "member", "add", "z", "--role", "pharmacy")
        assert added.returncode == 0, added.stdout + added.stderr
        assert "its mnemonic" in added.stderr and "as pharmacy" in added.stdout
        who = json.loads(_cli(data_dir, "--json", "--profile", "z", "whoami").stdout)

        again = _cli(data_dir, "--profile", "admin", "member", "add", "z", "--role", "pharmacy")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "mnemonic" not in again.stderr  # reused: shown only when created
        members = json.loads(_cli(data_dir, "--json", "member", "list").stdout)
        assert [m["role"] for m in members if m["address"] == who["address"]] == ["pharmacy"]
    finally:
        _cli(data_dir, "devnet", "down")
