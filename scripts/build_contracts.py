"""Compile contracts/*.sol into ABI + bytecode artifacts under src/emrshare/contracts/.

The pinned solc-js (tools/node_modules/solc) is the compiler of record. With ``--native``,
py-solc-x drives a native ``solc`` instead (``$EMRSHARE_SOLC``, else ``solc`` on PATH; it
must be exactly version 0.8.30 — nothing is downloaded): the standard-JSON input carries
every source unit, imports included, so both compilers see the same input and the
artifacts are byte-identical.

    python scripts/build_contracts.py            # write artifacts
    python scripts/build_contracts.py --check    # recompile into a temp dir and compare
    python scripts/build_contracts.py --native [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "contracts"
NODE_MODULES = ROOT / "tools" / "node_modules"
OUT = ROOT / "src" / "emrshare" / "contracts"
SOLC_VERSION = "0.8.30"

# One place for compiler settings: every artifact records them, and the staleness
# check hashes them. Shanghai because ganache 7.9.2 (and many consortium chains)
# reject Cancun opcodes such as MCOPY.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10000},
    "evmVersion": "shanghai",
    "viaIR": True,
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {
        "*": {
            "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "devdoc", "userdoc"]
        }
    },
}


def source_units() -> dict[str, Path]:
    """Project sources by their unit name (``Foo.sol``)."""
    return {p.relative_to(SOURCES).as_posix(): p for p in sorted(SOURCES.rglob("*.sol"))}


def standard_input() -> dict[str, Any]:
    sources = {name: {"content": path.read_text()} for name, path in source_units().items()}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def input_hash(used_sources: dict[str, str]) -> str:
    """Hash of compiler version, settings and the text of every source unit used."""
    h = hashlib.sha256()
    h.update(SOLC_VERSION.encode())
    h.update(json.dumps(SETTINGS, sort_keys=True).encode())
    for name in sorted(used_sources):
        h.update(name.encode() + b"\0" + hashlib.sha256(used_sources[name].encode()).digest())
    return h.hexdigest()


def read_unit(name: str) -> str:
    """Text of a source unit: a project file, or an import from tools/node_modules."""
    for root in (SOURCES, NODE_MODULES):
        if (root / name).is_file():
            return (root / name).read_text()
    raise FileNotFoundError(f"source unit {name} not found in contracts/ or tools/node_modules")


def _compile_solcjs(std_input: dict[str, Any], work: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "solc").is_dir():
        sys.exit("solc-js is not installed: run `make setup` first")
    inp, outp = work / "input.json", work / "output.json"
    inp.write_text(json.dumps(std_input))
    subprocess.run(
        [
            node,
            str(ROOT / "tools" / "solc-compile.js"),
            str(inp),
            str(outp),
            str(SOURCES),
            str(NODE_MODULES),
        ],
        check=True,
    )
    result: dict[str, Any] = json.loads(outp.read_text())
    return result


_IMPORT = re.compile(r"""^\s*import\s+(?:[^;]*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)


def with_imports(std_input: dict[str, Any]) -> dict[str, Any]:
    """``std_input`` with every imported unit's text added, transitively, so a compiler
    needs no filesystem access (solc-js reads imports through a callback, a native solc
    through its include paths: this makes the two see one input)."""
    sources = dict(std_input["sources"])
    pending = list(sources)
    while pending:
        unit = pending.pop()
        for target in _IMPORT.findall(sources[unit]["content"]):
            name = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            name = name if target.startswith(".") else target
            if name not in sources:
                sources[name] = {"content": read_unit(name)}
                pending.append(name)
    return {**std_input, "sources": sources}


def native_solc() -> str:
    """The native solc to drive: ``$EMRSHARE_SOLC`` or ``solc`` on PATH, of exactly
    :data:`SOLC_VERSION` (py-solc-x's own installer downloads, which this project never
    does)."""
    from solcx.wrapper import get_solc_version  # dev dependency

    binary = os.environ.get("EMRSHARE_SOLC") or shutil.which("solc")
    if binary is None:
        sys.exit(f"--native needs solc {SOLC_VERSION} on PATH (or EMRSHARE_SOLC=/path/to/solc)")
    found = get_solc_version(binary, with_commit_hash=False)
    if str(found) != SOLC_VERSION:
        sys.exit(f"{binary} is solc {found}; the artifacts are built with {SOLC_VERSION}")
    return binary


def _compile_native(std_input: dict[str, Any]) -> dict[str, Any]:
    import solcx  # dev dependency; drives a native solc that is already installed

    result: dict[str, Any] = solcx.compile_standard(
        with_imports(std_input), solc_binary=native_solc(), allow_empty=True
    )
    return result


def compile_all(out_dir: Path, native: bool = False) -> list[str]:
    std_input = standard_input()
    with tempfile.TemporaryDirectory() as tmp:
        output = _compile_native(std_input) if native else _compile_solcjs(std_input, Path(tmp))
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    for e in output.get("errors", []):
        print(e.get("formattedMessage", e.get("message")), file=sys.stderr)
    if errors:
        sys.exit(f"solc reported {len(errors)} error(s)")
    used = {name: read_unit(name) for name in output.get("sources", {})}
    build_info = {
        "compiler": {"name": "solc", "version": SOLC_VERSION},
        "settings": SETTINGS,
        "inputHash": input_hash(used),
        "sources": {n: hashlib.sha256(t.encode()).hexdigest() for n, t in sorted(used.items())},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.json"):
        old.unlink()
    written = []
    project_units = set(source_units())
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if unit not in project_units:
            continue  # libraries pulled in from node_modules are not deployed on their own
        for name, c in sorted(contracts.items()):
            bytecode = c["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts
            artifact = {
                "contractName": name,
                "sourceName": unit,
                "abi": c["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
                "devdoc": c.get("devdoc", {}),
                "userdoc": c.get("userdoc", {}),
                "compiler": build_info["compiler"],
            }
            (out_dir / f"{name}.json").write_text(
                json.dumps(artifact, indent=1, sort_keys=True) + "\n"
            )
            written.append(name)
    (out_dir / "build-info.json").write_text(
        json.dumps(build_info, indent=1, sort_keys=True) + "\n"
    )
    return written


def check(native: bool = False) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        compile_all(Path(tmp), native=native)
        fresh = {p.name: p.read_bytes() for p in Path(tmp).glob("*.json")}
    committed = {p.name: p.read_bytes() for p in OUT.glob("*.json")}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    if stale:
        print("stale contract artifacts (run `make contracts` and commit): " + ", ".join(stale))
        return 1
    print(f"contract artifacts are fresh ({len(fresh)} files)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--check", action="store_true", help="recompile and compare with the committed artifacts"
    )
    ap.add_argument("--native", action="store_true", help="use a native solc via py-solc-x")
    a = ap.parse_args()
    if a.check:
        return check(native=a.native)
    names = compile_all(OUT, native=a.native)
    print(f"wrote {len(names)} artifacts to {OUT.relative_to(ROOT)}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
