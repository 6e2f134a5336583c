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
