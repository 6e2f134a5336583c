"""`member capabilities`, `emergency opt-in|declare|list|read|review` and `notifications` on
a real devnet (issue 15): each refusal is one line saying what to do; the capability passes
M-of-N; `devnet up` publishes the emergency key and hands hospital-a its key file, and a
declared emergency is read through the devnet's proxy."""

from __future__ import annotations

import json
import subprocess
import time
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
        # `devnet up` gives hospital-a the capability and the key file; hospital-b has none.
        declare0 = ("--profile", "hospital-b", "emergency", "declare", "--patient", "patient")
        _refused(_cli(data, *declare0, "--why", "x"), "no active regulator")
        reg = _cli(data, "--profile", "admin", "member", "add", "regulator", "--role", "regulator")
        assert reg.returncode == 0, reg.stdout + reg.stderr
        hospital = json.loads(_cli(data, "--json", "--profile", "hospital-b", "whoami").stdout)
        declare = ("--profile", "hospital-b", "emergency", "declare", "--patient", "patient")
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
        listed = _cli(data, "--json", "--profile", "patient", "notifications")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert json.loads(listed.stdout) == []
        _emergency_read_through_the_devnet(data)
    finally:
        _cli(data, "devnet", "down")


def _emergency_read_through_the_devnet(data: Path) -> None:
    """opt-in, a record, declare, `emergency list`, `emergency read --out`, on the devnet
    `devnet up` made ready (published keys, hospital-a's capability and key file)."""
    key = data / "profiles" / "hospital-a" / "state" / "emergency-key.json"
    for f in list(data.rglob("emergency-key.json")) or [key]:  # hospital-a's and the master
        assert f.stat().st_mode & 0o777 == 0o600 and f.parent.stat().st_mode & 0o777 == 0o700
    assert not (data / "profiles" / "hospital-b" / "state" / "emergency-key.json").exists()
    ok = _cli(
        data, "--profile", "patient", "writer", "add", "hospital-a", "--category", "allergies"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    note = data.parent / "allergy.txt"
    note.write_text("penicillin: anaphylaxis")
    add = ("--profile", "hospital-a", "record", "add", str(note), "--patient", "patient")
    ok = _cli(data, *add, "--category", "allergies", "--media-type", "text/plain")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = _cli(data, "--profile", "patient", "emergency", "opt-in", "--categories", "allergies")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    declare = ("--profile", "hospital-a", "emergency", "declare", "--patient", "patient")
    did = json.loads(_cli(data, "--json", *declare, "--why", "unconscious").stdout)["declaration"]
    mine = json.loads(_cli(data, "--json", "--profile", "hospital-a", "emergency", "list").stdout)
    assert [(n["declaration"], n["status"]) for n in mine] == [(did, "active")]
    # hospital-b has the capability but no emergency key file: reading says so.
    _refused(
        _cli(data, "--profile", "hospital-b", "emergency", "read", str(did), "allergies"),
        "emergency key file",
    )
    out = data.parent / "records"
    read = ("--profile", "hospital-a", "emergency", "read", str(did), "allergies")
    got = _cli(data, "--json", *read, "--out", str(out))
    assert got.returncode == 0, got.stdout + got.stderr
    (rec,) = json.loads(got.stdout)
    assert Path(rec["path"]).read_text() == "penicillin: anaphylaxis"
    assert rec["media_type"] == "text/plain" and rec["category"] == "allergies"
    # The patient's notifications show the serve once the proxy logged it on chain.
    deadline = time.monotonic() + 30
    while True:
        notes = json.loads(_cli(data, "--json", "--profile", "patient", "notifications").stdout)
        (n,) = [n for n in notes if n["declaration"] == did]
        if n["accesses"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [(a["records"], a["category"]) for a in n["accesses"]] == [(1, "allergies")]
    # The audit trail shows the declaration first, then the reads.
    trail = _cli(data, "--profile", "patient", "audit")
    assert trail.returncode == 0, trail.stdout + trail.stderr
    assert trail.stdout.lstrip().startswith(f"EMERGENCY #{did} "), trail.stdout[:300]
    assert "read by" in trail.stdout
    # hospital-a co-signs hospital-b's declaration; hospital-b passes the co-signature.
    cosign = ("--profile", "hospital-a", "emergency", "cosign", "--clinician", "hospital-b")
    made = _cli(data, "--json", *cosign, "--patient", "patient", "--valid-for", "5m")
    assert made.returncode == 0, made.stdout + made.stderr
    hex_ = json.loads(made.stdout)["cosignature"]
    _refused(_cli(data, *cosign, "--patient", "patient", "--valid-for", "1h"), "at most")
    declare_b = ("--profile", "hospital-b", "emergency", "declare", "--patient", "patient")
    wrong = ("--cosigner", "hospital-b", "--cosignature", hex_)
    _refused(_cli(data, *declare_b, "--why", "second", *wrong), "check --cosigner")
    right = ("--cosigner", "hospital-a", "--cosignature", hex_)
    got = _cli(data, "--json", *declare_b, "--why", "second opinion", *right)
    assert got.returncode == 0, got.stdout + got.stderr
    did_b = json.loads(got.stdout)["declaration"]
    notes = json.loads(_cli(data, "--json", "--profile", "patient", "notifications").stdout)
    (nb,) = [n for n in notes if n["declaration"] == did_b]
    assert nb["cosigner"] == json.loads(made.stdout)["cosigner"]
    # After the patient withdraws, the proxy refuses the declaration, in one line.
    ok = _cli(data, "--profile", "patient", "emergency", "withdraw")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    deadline = time.monotonic() + 30
    while True:  # the proxy follows the chain one confirmation behind
        again = _cli(data, *read)
        if again.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    _refused(again, "declaration_withdrawn")
