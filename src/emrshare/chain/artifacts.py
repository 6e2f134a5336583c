"""Compiled contract artifacts shipped as package data (built by ``make contracts``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from emrshare.errors import DeploymentError

__all__ = ["Artifact", "artifact_names", "load_artifact"]


@dataclass(frozen=True, slots=True)
class Artifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def artifact_names() -> list[str]:
    """Names of every deployable contract shipped with this release."""
    files = resources.files("emrshare.contracts").iterdir()
    return sorted(
        f.name[:-5] for f in files if f.name.endswith(".json") and f.name != "build-info.json"
    )


@cache
def load_artifact(name: str) -> Artifact:
    """Load the artifact of contract ``name``."""
    try:
        raw = resources.files("emrshare.contracts").joinpath(f"{name}.json").read_text()
    except FileNotFoundError as exc:
        raise DeploymentError(
            f"no compiled artifact for contract {name!r}; known: {', '.join(artifact_names())}"
        ) from exc
    data = json.loads(raw)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
    )
