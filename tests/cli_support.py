"""Running the real ``emrshare`` command line in a subprocess, as a user would: one data
dir, the devnet password, output captured (shared by the CLI integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
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
