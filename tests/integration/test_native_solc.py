"""``scripts/build_contracts.py --native``: py-solc-x driving a native solc builds the
artifacts byte for byte as solc-js does.

No native solc can be installed here (nothing is downloaded), so ``tests/doubles/solc``
stands in for the binary: a labelled test double that answers py-solc-x's calls with the
pinned solc-js and reads no files, so the build must put every imported unit in its input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "doubles" / "solc"
SCRIPT = ROOT / "scripts" / "build_contracts.py"

# ~100 s (a full via-IR build through the double): left to `make test-all`; the default
# run checks the committed artifacts against solc-js (`make check-artifacts`).
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _build(*args: str, solc: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMRSHARE_SOLC": solc}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_native_build_matches_the_committed_artifacts() -> None:
    done = _build("--native", "--check", solc=str(DOUBLE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "contract artifacts are fresh" in done.stdout


def test_native_build_refuses_another_compiler_version(tmp_path: Path) -> None:
    other = tmp_path / "solc"
    version = "Version: 0.8.24+commit.e11b9ed9"
    other.write_text(f"#!/bin/sh\necho 'solc, the solidity compiler\n{version}'\n")
    other.chmod(0o755)
    done = _build("--native", "--check", solc=str(other))
    assert done.returncode != 0
    assert "is solc 0.8.24; the artifacts are built with 0.8.30" in done.stderr


def test_native_build_needs_a_solc(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("EMRSHARE_SOLC", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--native", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "--native needs solc 0.8.30 on PATH" in done.stderr
