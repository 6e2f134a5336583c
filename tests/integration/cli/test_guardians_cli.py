"""Issue 13, guardians through the CLI on a real devnet (anvil, two proxy processes at
threshold 2), every step a separate `emrshare` process: the patient names a guardian,
the guardian grants in the patient's name, the grantee reads, the patient's grant list
says "by guardian", and after a withdrawal the guardian's next action is one error line."""

from __future__ import annotations

from pathlib import Path

from tests.cli_support import cli_json as _json
from tests.cli_support import cli_ok as _ok
from tests.cli_support import register_personal_profile
from tests.cli_support import run_cli as _cli


def _register_guardian(data: Path) -> str:
    """A personal (patient) profile ``mum`` with a funded development key, registered."""
    return register_personal_profile(data, "mum", 8)


def test_guardian_add_act_list_withdraw(tmp_path: Path) -> None:
    data = tmp_path / "data"
    try:
        _ok(data, "devnet", "up", "--proxies", "2", "--threshold", "2")
        mum = _register_guardian(data)
        _ok(data, "--profile", "patient", "writer", "add", "hospital-a", "--category", "lab")
        (tmp_path / "lab.txt").write_bytes(b"Hb 14.1 g/dL\n")
        record = _json(
            data, "--profile", "hospital-a", "record", "add", str(tmp_path / "lab.txt"),
            "--patient", "patient", "--category", "lab",
        )["record_id"]  # fmt: skip

        named = _json(
            data, "--profile", "patient", "guardian", "add", "mum", "--until", "1y",
            "--category", "lab",
        )  # fmt: skip
        assert named["guardian"] == mum and named["status"] == "active"
        (listed,) = _json(data, "--profile", "patient", "guardian", "list")
        assert listed["guardian"] == mum and listed["status"] == "active"

        grant = _json(
            data, "--profile", "mum", "guardian", "act", "grant", "--for", "patient",
            "--to", "insurer", "--category", "lab", "--expires", "30d",
        )  # fmt: skip
        assert grant["by"] == mum and grant["category"] == "lab-results"
        out = tmp_path / "read.txt"
        _ok(
            data, "--profile", "insurer", "record", "get", record, "--patient", "patient",
            "-o", str(out),
        )  # fmt: skip
        assert out.read_bytes() == b"Hb 14.1 g/dL\n"

        table = _ok(data, "--profile", "patient", "grant", "list")
        assert "guardian" in table and "mum" in table  # the "by guardian" column
        assert all(len(line) <= 80 for line in table.splitlines())
        (made,) = _json(data, "--profile", "patient", "grant", "list")
        assert made["by"] == mum and made["policy_id"] == grant["policy_id"]
        (action,) = _json(data, "--profile", "patient", "guardian", "actions")
        assert action["guardian"] == mum and action["action"] == "grant"
        assert action["policy_ids"] == [grant["policy_id"]]

        withdrawn = _json(data, "--profile", "patient", "guardian", "withdraw", "mum")
        assert withdrawn == {"guardian": mum, "withdrawn": True}
        (listed,) = _json(data, "--profile", "patient", "guardian", "list")
        assert listed["status"] == "withdrawn"
        refused = _cli(
            data, "--profile", "mum", "guardian", "act", "revoke", "--for", "patient",
            grant["policy_id"],
        )  # fmt: skip
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith("error: ") and "no longer" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        (still,) = _json(data, "--profile", "patient", "grant", "list")
        assert still["status"] == "active"  # the refused revocation changed nothing
    finally:
        _cli(data, "devnet", "down", "--wipe")
