"""Interrupting or killing a test run leaves no chain node behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_probe(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    pid_file = tmp_path / "pids"
    env = dict(os.environ, EMRSHARE_PROBE_PIDS=str(pid_file))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout=0",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(ROOT / "tests/integration/probes/hold_nodes.py"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert proc.poll() is None, "probe run ended before starting its nodes"
        assert time.monotonic() < deadline, "nodes did not start"
        time.sleep(0.2)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    return proc, pids


def _gone(pids: list[int], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p
            for p in pids
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_no_node_survives(tmp_path: Path, sig: signal.Signals) -> None:
    proc, pids = _run_probe(tmp_path)
    proc.send_signal(sig)
    proc.wait(60)
    assert _gone(pids), f"node processes {pids} outlived the test run ({sig.name})"
