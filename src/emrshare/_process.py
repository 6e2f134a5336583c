"""Process helpers shared by the journal, the devnet launchers and the test harnesses.

Every launched process runs in its own process group with a parent-death signal, so a
killed test run or CLI never leaves one behind (unless ``detach`` asks it to outlive its
parent, as ``emrshare devnet`` does); its output is appended to a 0600 log through
:mod:`emrshare._logfilter`, which redacts secrets. :func:`pid_alive` tells a live owner
from a dead or zombie one (the journal's claims, the devnet's pid files).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emrshare._files import open_private_append

__all__ = [
    "free_port",
    "health_answers",
    "log_tail",
    "pid_alive",
    "set_parent_death_signal",
    "spawn",
    "stop_group",
]


def health_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a service (a relay, a de-identification service) answers ``GET
    /v1/health`` at ``url`` with its chain id."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v1/health", timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status == 200 and "chain_id" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


#: prctl option: the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: signal.Signals = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only;
    elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child before exec
    os.setsid()
    set_parent_death_signal(signal.SIGTERM)


def spawn(
    cmd: list[str],
    log_path: Path,
    *,
    detach: bool = False,
    env: Mapping[str, str] | None = None,
    redact: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group, stdout and stderr appended to ``log_path``.

    The log is created 0600 (one left 0644 by release 1 is tightened) and the child runs
    with umask 077, so what it writes (anvil's state file) is private too. With
    ``redact`` (a node's secrets), the output goes through a filter process that leaves
    out every line holding a private key, the mnemonic or one of ``redact``: the banner
    anvil and ganache print is never written. By default the child also gets a
    parent-death signal (SIGTERM when this process dies), so a killed test run leaves
    nothing behind. ``detach=True`` leaves that out: the process outlives its parent
    (``emrshare devnet up``) and is stopped later through its process group with
    :func:`stop_group`.
    """
    log_fd = open_private_append(Path(log_path))
    try:
        out = log_fd if redact is None else _start_filter(log_fd, redact)
        try:
            # Detached: a session of its own, to outlive us; else a group of its own that
            # gets a signal when we die.
            tied: dict[str, Any] = (
                {"start_new_session": True} if detach else {"preexec_fn": _set_pdeathsig}
            )
            return subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                umask=0o077,
                **tied,
            )
        finally:
            if out != log_fd:
                os.close(out)
    finally:
        os.close(log_fd)


_FILTERS: list[int] = []


def _start_filter(log_fd: int, redact: Sequence[str]) -> int:
    """Start the log filter reading a new pipe and writing ``log_fd``; the pipe's write end.

    ``posix_spawn`` rather than ``Popen``: the filter outlives a detached node's parent
    and ends by itself at EOF, so there is no object to keep alive; the pids are reaped
    when the next filter starts.
    """
    for pid in list(_FILTERS):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _FILTERS.remove(pid)
    read_end, write_end = os.pipe()
    try:
        script = str(Path(__file__).with_name("_logfilter.py"))
        _FILTERS.append(
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", script],
                {"EMRSHARE_LOG_REDACT": "\n".join(redact), "PATH": os.defpath},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaping it if it is our child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(proc: subprocess.Popen[bytes] | int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by ``proc`` (a child or the pid of one started
    earlier, e.g. by another CLI run), wait up to ``timeout`` seconds, then SIGKILL it.

    Returns whether the process was running. Safe to call on a stopped process.
    """
    if isinstance(proc, int):
        if not pid_alive(proc):
            return False
        _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(proc):
            _killpg(proc, signal.SIGKILL)
        return True
    if proc.poll() is not None:
        return False
    _killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return True


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a launched process's log ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
