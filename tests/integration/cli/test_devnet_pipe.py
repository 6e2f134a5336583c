"""``emrshare devnet up | head -1``: the reader closes the pipe after the first line. A
broken output pipe must never roll back a devnet that is starting fine (it used to: the
failed progress write triggered the rollback, and the devnet was gone)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import run_cli as _cli

pytestmark = pytest.mark.integration


def test_devnet_up_into_a_closed_pipe_keeps_the_devnet(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = f"{shlex.quote(sys.executable)} -m emrshare.cli devnet up"
    env = dict(os.environ, EMRSHARE_DATA_DIR=str(data_dir), EMRSHARE_PASSWORD="devnet")
    try:
        piped = subprocess.run(
            ["bash", "-c", f"{up} | head -1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert piped.returncode == 0, piped.stderr
        assert len(piped.stdout.splitlines()) == 1  # head printed one line and left
        status = _cli(data_dir, "devnet", "status")
        assert status.returncode == 0, status.stdout + status.stderr  # still running
        assert "running" in status.stdout and "not running" not in status.stdout
        whoami = _cli(data_dir, "--profile", "patient", "whoami")
        assert whoami.returncode == 0, whoami.stderr
    finally:
        _cli(data_dir, "devnet", "down", "--wipe")


def test_a_failing_progress_callback_does_not_roll_back_the_devnet(tmp_path: Path) -> None:
    from emrshare.devnet import DEVNET_PASSWORD, devnet_down, devnet_up

    seen: list[str] = []

    def log(line: str) -> None:
        seen.append(line)
        raise BrokenPipeError("the reader went away")

    data_dir = tmp_path / "lib"
    try:
        status = devnet_up(data_dir, password=DEVNET_PASSWORD, log=log)
        assert status.running
        assert len(seen) == 1  # after the first failure the progress output is dropped
    finally:
        devnet_down(data_dir, wipe=True)
