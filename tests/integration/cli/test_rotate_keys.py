"""`member rotate-keys` on a real devnet: the member keeps its address and profile, the
registry holds its new keys, and a patient profile is refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

from emrshare.crypto import load_member_keystore
from tests.cli_support import run_cli as _cli


def test_member_rotate_keys_keeps_the_address_and_publishes_new_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2")
        assert up.returncode == 0, up.stdout + up.stderr
        keystore = data_dir / "profiles" / "hospital-a" / "keystore.json"
        before = load_member_keystore(keystore, "devnet")

        done = _cli(data_dir, "--json", "--profile", "hospital-a", "member", "rotate-keys")
        assert done.returncode == 0, done.stdout + done.stderr
        shown = json.loads(done.stdout)
        after = load_member_keystore(keystore, "devnet")
        assert shown["address"] == before.address == after.address
        assert after.seed != before.seed
        assert shown["receiving_key"] == "0x" + after.public_keys().receiving_key_bytes.hex()
        assert sorted(p.name for p in keystore.parent.iterdir() if "keystore" in p.name) == [
            "keystore.json"
        ]  # no backup or pending file left
        who = _cli(data_dir, "--json", "--profile", "hospital-a", "whoami")
        assert json.loads(who.stdout)["address"] == before.address, who.stderr

        patient = _cli(data_dir, "--profile", "patient", "member", "rotate-keys")
        assert patient.returncode != 0
        assert "Traceback" not in patient.stdout + patient.stderr
        assert len(patient.stderr.strip().splitlines()) == 1, patient.stderr
        assert "is a patient" in patient.stderr

        listed = _cli(data_dir, "--profile", "patient", "grant", "list")
        assert listed.returncode == 0, listed.stdout + listed.stderr
    finally:
        _cli(data_dir, "devnet", "down")
