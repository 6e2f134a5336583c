"""`member rotate-keys` on a real devnet: the member keeps its address and profile, the
registry holds its new keys, and a patient profile is refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

from emrshare.crypto import load_member_keystore, load_patient_keystore
from emrshare.crypto.rotated import RotatedPatientKeys
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


def test_patient_rotate_shows_the_new_mnemonic_once_and_keeps_the_address(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2")
        assert up.returncode == 0, up.stdout + up.stderr
        keystore = data_dir / "profiles" / "patient" / "keystore.json"
        before = load_patient_keystore(keystore, "devnet")
        added = _cli(data_dir, "--profile", "hospital-a", "whoami", "--json")
        hospital = json.loads(added.stdout)["address"]
        assert (
            _cli(
                data_dir, "--profile", "patient", "writer", "add", hospital, "--category", "lab"
            ).returncode
            == 0
        )

        done = _cli(data_dir, "--profile", "patient", "rotate")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "step 1 of" in done.stderr and "NEW mnemonic" in done.stderr
        after = load_patient_keystore(keystore, "devnet")
        assert isinstance(after, RotatedPatientKeys)
        assert after.address == before.address and after.master_secret != before.master_secret
        assert after.to_mnemonic() in done.stderr and before.to_mnemonic() not in done.stderr
        who = _cli(data_dir, "--json", "--profile", "patient", "whoami")
        assert json.loads(who.stdout)["address"] == before.address, who.stderr
        assert not (data_dir / "profiles" / "patient" / "state" / "rotation.json").exists()

        # The new words alone, on another profile (a new machine): the same identity.
        restored = _cli(
            data_dir, "--profile", "patient-again", "--json", "restore", input=after.to_mnemonic()
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr
        again = load_patient_keystore(
            data_dir / "profiles" / "patient-again" / "keystore.json", "devnet"
        )
        assert isinstance(again, RotatedPatientKeys) and again.address == before.address
        who = _cli(data_dir, "--json", "--profile", "patient-again", "whoami")
        assert json.loads(who.stdout)["address"] == before.address, who.stderr
        writers = _cli(
            data_dir, "--profile", "patient-again", "writer", "list", "--category", "lab"
        )
        assert writers.returncode == 0 and hospital[:6] in writers.stdout, writers.stderr
    finally:
        _cli(data_dir, "devnet", "down")


def test_rotating_an_unregistered_patient_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2")
        assert up.returncode == 0, up.stdout + up.stderr
        made = _cli(data_dir, "--profile", "newbie", "init")
        assert made.returncode == 0, made.stdout + made.stderr
        refused = _cli(data_dir, "--profile", "newbie", "rotate")
        assert refused.returncode != 0
        assert "Traceback" not in refused.stdout + refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "register before rotating" in refused.stderr
    finally:
        _cli(data_dir, "devnet", "down")
