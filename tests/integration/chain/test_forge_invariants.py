"""Forge invariant tests (tests/forge): exactly-once appends, hash chain, revocation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FORGE = ROOT / "tools" / "node_modules" / ".bin" / "forge"


@pytest.mark.skipif(not FORGE.exists(), reason="forge is not installed: run `make setup`")
def test_forge_invariants_hold() -> None:
    result = subprocess.run(
        [str(FORGE), "test", "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "4 passed; 0 failed" in out, out[-4000:]
