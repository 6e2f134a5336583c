"""The CLI's hints point the right way: a new data dir to `devnet up`, a typo to the name
it probably meant, never to creating a profile called after the typo (issue 12, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emrshare.cli import app
from emrshare.errors import ProfileNotFound
from emrshare.roles import Profiles

runner = CliRunner()


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["--data-dir", str(data_dir), *args], env={"EMRSHARE_PASSWORD": "pw"}
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.exit_code, result.stderr.strip()


def test_a_new_data_dir_points_at_devnet_up_not_init(tmp_path: Path) -> None:
    for args in (["whoami"], ["record", "list"], ["grant", "list"], ["--profile", "x", "audit"]):
        code, err = _cli(tmp_path, *args)
        assert code == 1
        assert "`emrshare devnet up`" in err, (args, err)
        assert "--profile default init" not in err and "--profile x init" not in err


def test_a_typo_of_a_profile_is_asked_about(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    profiles.create("patient", "patient", "pw", fast_kdf=True)
    profiles.create("hospital", "member", "pw", fast_kdf=True)
    code, err = _cli(tmp_path, "--profile", "patinet", "whoami")
    assert code == 1
    assert "did you mean 'patient'?" in err and "--profile patient" in err
    assert "patinet init" not in err
    # A name with no near neighbour: create it, or pick a known one.
    code, err = _cli(tmp_path, "--profile", "zed", "whoami")
    assert "known: hospital, patient" in err and "`emrshare --profile zed init`" in err


def test_a_typo_of_a_patient_reference_is_asked_about(tmp_path: Path) -> None:
    profiles = Profiles(tmp_path)
    profiles.create("patient", "patient", "pw", fast_kdf=True)
    profiles.create("hospital", "member", "pw", fast_kdf=True)
    # Checked before the member's keys are unlocked or a network is needed.
    code, err = _cli(tmp_path, "--profile", "hospital", "record", "list", "--patient", "patinet")
    assert code == 1
    assert "no address or profile 'patinet'" in err and "did you mean 'patient'?" in err
    assert "init" not in err
    with pytest.raises(ProfileNotFound) as caught:
        profiles.resolve("hospitl")
    assert caught.value.suggestion == "hospital" and caught.value.reference
    code, err = _cli(tmp_path, "--profile", "hospital", "record", "list", "--patient", "qqq")
    assert "give a 0x address or the name of a profile" in err
