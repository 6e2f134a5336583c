"""The shared process helpers: ``spawn`` starts a process group (tied to its parent unless
detached), ``stop_group`` stops the whole group (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from emrshare._process import pid_alive, spawn, stop_group

SLEEPER = "import time; print('ready', flush=True); time.sleep(120)"
# Ignores SIGTERM and starts a grandchild in its process group.
STUBBORN = (
    "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "print('ready', c.pid, flush=True); time.sleep(120)"
)


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _log_line(log: Path) -> list[str]:
    assert _wait_for(lambda: log.exists() and "ready" in log.read_text()), log.read_text()
    return log.read_text().split()


def test_spawn_logs_and_stop_group_terminates(tmp_path: Path) -> None:
    log = tmp_path / "sleeper.log"
    proc = spawn([sys.executable, "-c", SLEEPER], log)
    assert _log_line(log) == ["ready"]
    assert os.getpgid(proc.pid) == proc.pid, "the child leads its own process group"
    assert stop_group(proc, 10) is True
    assert proc.returncode == -signal.SIGTERM
    assert stop_group(proc, 10) is False, "stopping a stopped process is a no-op"


def test_stop_group_by_pid_kills_the_whole_group_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    proc = spawn([sys.executable, "-c", STUBBORN], log, detach=True)
    grandchild = int(_log_line(log)[1])
    assert stop_group(proc.pid, timeout=0.5) is True
    assert _wait_for(lambda: not pid_alive(proc.pid) and not pid_alive(grandchild))
    assert stop_group(proc.pid, timeout=0.5) is False


@pytest.mark.parametrize("detach", [False, True], ids=["tied", "detached"])
def test_a_spawned_process_dies_with_its_parent_unless_detached(
    tmp_path: Path, detach: bool
) -> None:
    log = tmp_path / "child.log"
    # The parent exits only once the child runs: a parent that exits first may take the
    # child with it before it starts, which proves nothing.
    parent = (
        "import sys, time; from pathlib import Path; from emrshare._process import spawn\n"
        f"log = Path({str(log)!r})\n"
        f"p = spawn([sys.executable, '-c', {SLEEPER!r}], log, detach={detach})\n"
        "while not (log.exists() and 'ready' in log.read_text()):\n"
        "    time.sleep(0.05)\n"
        "print(p.pid)"
    )
    out = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, check=True, timeout=60
    )
    child = int(out.stdout.split()[-1])
    try:
        _log_line(log)
        if detach:
            # devnet's processes must outlive the CLI that started them (it has exited).
            assert pid_alive(child), "the detached child died with its parent"
        else:
            assert _wait_for(lambda: not pid_alive(child)), "the child outlived its parent"
    finally:
        stop_group(child, timeout=5)
