"""Profiles, duration parsing and the CLI's error handling (no network needed)."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emrshare.cli import app
from emrshare.cli._parse import parse_duration, parse_role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.errors import ConfigurationError, KeystoreError
from emrshare.roles import Profiles

FAST = {"fast_kdf": True}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("1d12h", 129600),
        ("90m", 5400),
        ("2w", 1209600),
        ("45", 45),
        ("45s", 45),
        # issue 12, item 6: words and years are durations too ("30 days" was refused)
        ("30 days", 30 * 86400),
        ("30days", 30 * 86400),
        ("1y", 365 * 86400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30x", "d30", "-1d", "0d", "0", "1.5d", "30 dayz"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError, match="duration"):
        parse_duration(text)


def test_parse_role() -> None:
    assert parse_role("Provider").name == "PROVIDER"
    with pytest.raises(ConfigurationError, match="unknown role"):
        parse_role("surgeon")


def test_profiles_create_unlock_resolve(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    alice, words = profiles.create("alice", "patient", "pw", **FAST)
    assert len(words.split()) == 24
    assert words not in (tmp_path / "profiles/alice/profile.json").read_text()
    keys = profiles.unlock("alice", "pw")
    assert isinstance(keys, PatientKeys) and keys.address == alice.address
    assert PatientKeys.from_mnemonic(words).address == alice.address
    mode = (tmp_path / "profiles/alice/keystore.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    hosp, hwords = profiles.create("hosp", "member", "pw", role="provider", **FAST)
    assert isinstance(profiles.unlock("hosp", "pw"), MemberKeys)
    restored = Profiles(tmp_path / "other").create("h2", "member", "pw", mnemonic=hwords, **FAST)
    assert restored[0].address == hosp.address
    assert profiles.resolve("alice") == alice.address
    assert profiles.resolve(alice.address.lower()) == alice.address
    assert [p.name for p in profiles.list()] == ["alice", "hosp"]
    with pytest.raises(KeystoreError):
        profiles.unlock("alice", "wrong")
    with pytest.raises(ConfigurationError, match="already exists"):
        profiles.create("alice", "patient", "pw", **FAST)
    with pytest.raises(ConfigurationError, match="no profile 'bob'"):
        profiles.get("bob")
    with pytest.raises(ConfigurationError, match="not valid"):
        profiles.get("../etc")


runner = CliRunner()


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["--data-dir", str(tmp_path), *args], env={"EMRSHARE_PASSWORD": "pw"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_init_and_whoami(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import emrshare.roles.profiles as profiles_mod

    # The CLI uses the production KDF cost; make it cheap for this test only.
    real_create = profiles_mod.Profiles.create
    monkeypatch.setattr(
        profiles_mod.Profiles,
        "create",
        lambda self, *a, **k: real_create(self, *a, **{**k, "fast_kdf": True}),
    )
    code, out, _ = _cli(tmp_path, "--profile", "alice", "init", "--kind", "patient")
    assert code == 0, out
    assert "created patient profile alice" in out
    words = [line.strip() for line in out.splitlines() if len(line.split()) == 24]
    assert len(words) == 1, "the mnemonic is shown exactly once"
    code, out, _ = _cli(tmp_path, "--profile", "alice", "--json", "whoami")
    assert code == 0
    info = json.loads(out)
    assert info["kind"] == "patient" and info["address"].startswith("0x")
    code, out, err = _cli(tmp_path, "--profile", "alice", "init")
    assert code == 1 and "already exists" in err and "Traceback" not in out + err
    # With --json the mnemonic is in the JSON: a script's only chance to back it up.
    code, out, _ = _cli(tmp_path, "--profile", "bob", "--json", "init")
    assert code == 0
    created = json.loads(out)
    assert PatientKeys.from_mnemonic(created["mnemonic"]).address == created["address"]


def test_cli_user_mistakes_are_one_line(tmp_path: Path) -> None:
    code, out, err = _cli(tmp_path, "--profile", "nobody", "whoami")
    assert code == 1
    assert err.startswith("error: no profile 'nobody'")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    code, out, err = _cli(
        tmp_path,
        "--profile",
        "nobody",
        "grant",
        "add",
        "--to",
        "x",
        "--category",
        "lab",
        "--expires",
        "soon",
    )
    # A bad option value is a usage error (issue 12, item 6: it exited 1), found before
    # the missing profile.
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith("error: Invalid value for --expires") and len(err.splitlines()) == 1


def test_cli_record_list_without_network(tmp_path: Path) -> None:
    Profiles(tmp_path).create("alice", "patient", "pw", **FAST)
    code, _, err = _cli(tmp_path, "--profile", "alice", "record", "list")
    assert code == 1
    assert "no network configuration" in err and "devnet up" in err


def _one_line(code: int, out: str, err: str, expected_code: int, needle: str) -> None:
    assert code == expected_code, (out, err)
    assert "Traceback" not in out + err and "╭" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bogus", "whoami"], "No such option: --bogus"),
        (["recordz"], "No such command 'recordz'"),
        (["record", "add", "--bogus"], "No such option: --bogus"),
        (["record", "add", "/no/such/file", "--category", "lab"], "does not exist"),
        (["grant", "add", "--category", "lab"], "Missing option '--to'"),
        (["record", "get", "0x00", "-o", "/no/such/dir/out.bin"], "does not exist"),
        (["grant", "add", "--to", "x", "--category", "lab", "--threshold", "0"], "threshold"),
        (["audit", "--html", "/no/such/dir/audit.html"], "/no/such/dir does not exist"),
        (["audit", "--png", "/no/such/dir/audit.png", "--html", "a.html"], "--png"),
        (["audit", "--html", "a.html", "--fhir"], "not with --fhir or --by-proxy"),
        (["audit", "--png", "a.png", "--by-proxy"], "not with --fhir or --by-proxy"),
    ],
)
def test_cli_usage_mistakes_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    _one_line(*_cli(tmp_path, *args), expected_code=2, needle=needle)


def test_cli_group_alone_still_prints_help(tmp_path: Path) -> None:
    code, out, _ = _cli(tmp_path, "record")
    assert code == 2 and "Commands" in out


def test_cli_missing_password_file_is_one_line(tmp_path: Path) -> None:
    Profiles(tmp_path).create("alice", "patient", "pw", **FAST)
    result = runner.invoke(
        app,
        [
            *("--data-dir", str(tmp_path), "--profile", "alice"),
            *("--password-file", str(tmp_path / "nope"), "grant", "list"),
        ],
        env={"EMRSHARE_PASSWORD": ""},
    )
    _one_line(result.exit_code, result.stdout, result.stderr, 1, "cannot read the password file")
