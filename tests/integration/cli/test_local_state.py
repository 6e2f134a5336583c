"""Local state after a realistic CLI session on a real devnet (issue #10, holes 9 and 10):
every file 0600, every directory 0700, no development secret in any file, and damaged
local files give one line and stay byte-identical."""

from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
from pathlib import Path

from emrshare.devnet import DEV_MNEMONIC, dev_private_keys
from tests.cli_support import run_cli

FIRST_DEV_KEY = b"ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


#: A usual login umask: the modes must not depend on it.
_cli = functools.partial(run_cli, umask=0o022)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def _walk(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def test_attack_world_readable_state(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    note = tmp_path / "note.txt"
    note.write_text("potassium 4.1 mmol/L")
    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2"))
        _ok(_cli(data_dir, "--profile", "carol", "init", "--kind", "patient"))
        _ok(
            _cli(
                data_dir, "--profile", "patient", "writer", "add", "hospital-a", "--category", "lab"
            )
        )
        added = _ok(
            _cli(
                data_dir,
                *("--profile", "hospital-a", "--json", "record", "add", str(note)),
                *("--patient", "patient", "--category", "lab"),
            )
        )
        assert json.loads(added.stdout)["record_id"]
        _ok(
            _cli(
                data_dir,
                *("--profile", "patient", "grant", "add", "--to", "hospital-b"),
                *("--category", "lab", "--expires", "30d"),
            )
        )
        _ok(_cli(data_dir, "--profile", "patient", "grant", "list"))

        loose = []
        secrets = [
            FIRST_DEV_KEY,
            DEV_MNEMONIC.encode(),
            *(k.hex().encode() for k in dev_private_keys(10)),
        ]
        leaks = []
        for path in _walk(data_dir):
            st = os.lstat(path)
            assert not stat.S_ISLNK(st.st_mode), path
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                loose.append(f"{path.relative_to(data_dir)} {oct(stat.S_IMODE(st.st_mode))}")
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes().lower()
                leaks += [f"{path.relative_to(data_dir)}" for s in secrets if s in content]
        assert not loose, loose
        assert not leaks, leaks
        names = {p.name for p in _walk(data_dir)}
        assert {"anvil.log", "proxy.log", "patient.json", "journal.db", "keystore.json"} <= names

        # Damaged local files after the session: one line each, left byte-identical.
        state = data_dir / "profiles" / "patient" / "state" / "patient.json"
        state.write_text(json.dumps({"epochs": {"lab": "1"}}))
        before = state.read_bytes()
        _one_line(
            _cli(data_dir, "--profile", "patient", "grant", "list"), str(state), "move it aside"
        )
        assert state.read_bytes() == before

        journal = next((data_dir / "profiles" / "hospital-a" / "state").rglob("journal.db"))
        journal.write_bytes(b"\x00" * 100 + os.urandom(4000))
        before = journal.read_bytes()
        _one_line(
            _cli(data_dir, "--profile", "hospital-a", "recover"), str(journal), "move it aside"
        )
        assert journal.read_bytes() == before

        profile = data_dir / "profiles" / "insurer" / "profile.json"
        profile.write_text('{"kind": "member", "address": 12}')
        _one_line(_cli(data_dir, "--profile", "insurer", "whoami"), str(profile))
    finally:
        _cli(data_dir, "devnet", "down")
