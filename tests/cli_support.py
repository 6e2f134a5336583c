"""Running the real ``emrshare`` command line in a subprocess, as a user would: one data
dir, the devnet password, output captured (shared by the CLI integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run_cli(
    data_dir: Path, *args: str, text: bool = True, umask: int = -1, input: str | None = None
) -> subprocess.CompletedProcess[Any]:
    """``emrshare ARGS`` on ``data_dir`` (``umask``: the child's, -1 for this one's;
    ``input``: the child's stdin, else this one's)."""
    env = dict(os.environ, EMRSHARE_DATA_DIR=str(data_dir), EMRSHARE_PASSWORD="devnet")
    return subprocess.run(
        [sys.executable, "-m", "emrshare.cli", *args],
        env=env,
        capture_output=True,
        text=text,
        timeout=300,
        check=False,
        umask=umask,
        input=input,
    )


def cli_ok(data_dir: Path, *args: str) -> str:
    """``emrshare ARGS``'s stdout; the command must succeed."""
    done = run_cli(data_dir, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(done.stdout)


def cli_json(data_dir: Path, *args: str) -> Any:
    """``emrshare --json ARGS``, parsed."""
    import json

    return json.loads(cli_ok(data_dir, "--json", *args))


def run_cli_on_terminal(
    data_dir: Path, *args: str, columns: int = 100
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``emrshare ARGS`` with stderr on a pseudo-terminal (so progress bars are drawn) and
    stdout captured: the finished process and what the terminal showed."""
    import pty
    import threading

    main, term = pty.openpty()
    drawn: list[bytes] = []

    def drain() -> None:  # read as it is drawn: a full terminal buffer would block the CLI
        while True:
            try:
                piece = os.read(main, 65536)
            except OSError:  # EIO: the other end is closed and everything was read
                return
            if not piece:
                return
            drawn.append(piece)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = dict(
        os.environ,
        EMRSHARE_DATA_DIR=str(data_dir),
        EMRSHARE_PASSWORD="devnet",
        COLUMNS=str(columns),
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "emrshare.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=term,
            text=True,
            timeout=300,
        )
    finally:
        os.close(term)
        reader.join(timeout=60)
        os.close(main)
    return proc, b"".join(drawn).decode(errors="replace")


def interrupted_cli(
    data_dir: Path, args: Sequence[str], ready: Callable[[], bool], what: str
) -> subprocess.CompletedProcess[str]:
    """``emrshare ARGS`` in its own process group, sent SIGINT (like Ctrl-C) as soon as
    ``ready()`` holds; ``what`` names the wait in the failure. Bounded: 120 s of watching."""
    import signal
    import time

    env = dict(os.environ, EMRSHARE_DATA_DIR=str(data_dir), EMRSHARE_PASSWORD="devnet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emrshare.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and not ready():
            assert time.monotonic() < deadline, what
            time.sleep(0.002)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def register_personal_profile(data_dir: Path, name: str, dev_key: int) -> str:
    """A personal (patient) profile ``name`` with development key ``dev_key`` (funded),
    registered on chain (a guardian, say); returns its address."""
    from emrshare.crypto import PatientKeys
    from emrshare.devnet import dev_private_keys
    from emrshare.network import Network
    from emrshare.roles import Patient, Profiles

    profiles = Profiles(data_dir)
    profile, _ = profiles.create(
        name, "patient", "devnet", ethereum_key=dev_private_keys(dev_key + 2)[dev_key],
        fast_kdf=True,
    )  # fmt: skip
    keys = profiles.unlock(name, "devnet")
    assert isinstance(keys, PatientKeys)
    with Network.from_config(profiles.network_path) as net:
        patient = Patient(net, keys, state_dir=profile.state_dir)
        assert patient.register()
        patient.close()
    return str(profile.address)
