"""The committed contract artifacts were built from the current sources and settings.

This compares hashes (fast, no compiler). ``make check-artifacts`` recompiles with the
pinned solc-js and compares byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from emrshare.chain.artifacts import artifact_names, load_artifact

ROOT = Path(__file__).resolve().parents[2]


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_contracts", ROOT / "scripts" / "build_contracts.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_artifacts_match_sources() -> None:
    build = _build_module()
    info = json.loads((ROOT / "src/emrshare/contracts/build-info.json").read_text())
    project_units = set(build.source_units())
    assert project_units <= set(info["sources"]), (
        "a contract source is not in the committed artifacts: run `make contracts`"
    )
    used = {name: build.read_unit(name) for name in info["sources"]}
    assert build.input_hash(used) == info["inputHash"], (
        "contract artifacts are stale against contracts/ or compiler settings: "
        "run `make contracts` and commit the result"
    )
    assert info["settings"]["evmVersion"] == "shanghai"


@pytest.mark.parametrize("name", artifact_names())
def test_artifact_loads(name: str) -> None:
    art = load_artifact(name)
    assert art.bytecode.startswith("0x") and len(art.bytecode) > 2
    assert isinstance(art.abi, list)
    # Cancun's MCOPY (0x5e) must not be needed: ganache 7.9.2 rejects it. The compiler
    # would only emit it for evmVersion >= cancun; this guards the settings.
    assert (
        json.loads((ROOT / "src/emrshare/contracts/build-info.json").read_text())["settings"][
            "evmVersion"
        ]
        == "shanghai"
    )
