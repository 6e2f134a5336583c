"""Print emrshare's import graph by layer; fail on a cycle, an upward or sideways import,
or a module or class over its size limit.

    python scripts/layers.py            # layers, then any violation; exit 1 if there is one
    python scripts/layers.py --mermaid  # the package graph as a Mermaid diagram
    python scripts/layers.py --json     # the module graph as JSON

Layers, bottom up (docs/architecture.md)::

    base     errors, types, categories and the private helpers (_files, _text, …)
    core     crypto · storage · chain · fhir · trace (siblings: none imports another)
    service  proxy · journal · relay        (they may use core, not each other)
    network  network                        (how to reach a chain, a store and the proxies)
    roles    roles                          (the facades an integrator imports)
    apps     research · portal              (services and apps built on the facades)
    devnet   devnet                         (local development networks)
    cli      cli                            (the example command line)

A module may import its own package, any lower layer, and nothing else (the base
helpers may use one another). Every import
counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import
hides a dependency from the interpreter, not from a reader. Cycles are found between
modules (a package's ``__init__`` is a module of its own).

Sizes: no module over 500 lines, no class over 300 (the generated ABI data is JSON, not
Python, and is not counted).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "emrshare"
MODULE_LINES = 500
CLASS_LINES = 300

#: Layers, bottom up; each holds one or more units (a unit is a subpackage or module).
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["emrshare", "errors", "types", "categories", "contracts", "_*"]),
    ("core", ["crypto", "storage", "chain", "fhir", "trace"]),
    ("service", ["proxy", "journal", "relay"]),
    ("network", ["network"]),
    ("roles", ["roles"]),
    ("apps", ["research", "portal"]),
    ("devnet", ["devnet"]),
    ("cli", ["cli"]),
]


@dataclass(slots=True)
class Module:
    name: str
    path: Path
    shown: str  # the path as printed, from the checkout's root
    lines: int
    imports: dict[str, int] = field(default_factory=dict)  # imported module -> line


def unit_of(module: str) -> str:
    """The unit a module belongs to: ``emrshare.chain.client`` → ``chain``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def layer_of(module: str) -> int:
    unit = unit_of(module)
    for rank, (_, units) in enumerate(LAYERS):
        for pattern in units:
            if unit == pattern or (pattern == "_*" and unit.startswith("_")):
                return rank
    raise SystemExit(f"{module}: unit {unit!r} is in no layer; add it to LAYERS in {__file__}")


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan(known: set[str], path: Path, root: Path = ROOT) -> Module:
    text = path.read_text(encoding="utf-8")
    name = module_name(path, root)
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    mod = Module(name, path, str(path.relative_to(root.parent)), lines)
    tree = ast.parse(text, filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # `import emrshare.chain.client` depends on that module, not its parents.
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    mod.imports.setdefault(target, node.lineno)
    return mod


def modules(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the package under ``root`` (a ``src`` directory), with its imports."""
    paths = sorted((root / PACKAGE).rglob("*.py"))
    known = {module_name(p, root) for p in paths}
    return {m.name: m for m in (scan(known, p, root) for p in paths)}


def cycles(graph: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v].imports:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, Module]) -> Iterator[str]:
    for mod in graph.values():
        own, rank = unit_of(mod.name), layer_of(mod.name)
        for target, line in sorted(mod.imports.items()):
            other, other_rank = unit_of(target), layer_of(target)
            if other == own or other_rank < rank or other_rank == rank == 0:
                continue  # own package, a lower layer, or base helpers using each other
            how = "upward" if other_rank > rank else "sideways"
            yield (
                f"{mod.shown}:{line}: {how} import of {target} "
                f"({LAYERS[other_rank][0]}/{other}) from {LAYERS[rank][0]}/{own}"
            )


def size_violations(graph: dict[str, Module]) -> Iterator[str]:
    for mod in graph.values():
        where = mod.shown
        if mod.lines > MODULE_LINES:
            yield f"{where}: {mod.lines} lines (limit {MODULE_LINES})"
        for node in ast.walk(ast.parse(mod.path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > CLASS_LINES:
                    yield (
                        f"{where}:{node.lineno}: class {node.name} is {length} lines "
                        f"(limit {CLASS_LINES})"
                    )


def mermaid(graph: dict[str, Module]) -> str:
    """Units as nodes inside one subgraph per layer, with the unit-level import edges."""
    edges: set[tuple[str, str]] = set()
    units: dict[int, set[str]] = {}
    for mod in graph.values():
        unit = unit_of(mod.name)
        units.setdefault(layer_of(mod.name), set()).add(unit)
        for target in mod.imports:
            other = unit_of(target)
            if other != unit and layer_of(target) > 0:  # base is used by all: not drawn
                edges.add((unit, other))
    out = ["```mermaid", "flowchart BT"]
    for rank in sorted(units, reverse=True):
        label = LAYERS[rank][0]
        out.append(f"  subgraph layer_{label}[{label}]")
        base = "base[errors · types · _files · _process · _text]"
        shown = sorted(units[rank]) if rank else [base]
        out.extend(f"    {u}" for u in shown)
        out.append("  end")
    out.extend(f"  {a} --> {b}" for a, b in sorted(edges))
    out.append("```")
    return "\n".join(out)


def problems(graph: dict[str, Module]) -> list[str]:
    """Cycles, then upward or sideways imports, then oversize modules and classes."""
    found = [f"cycle: {' ↔ '.join(c)}" for c in cycles(graph)]
    found += list(layer_violations(graph))
    found += list(size_violations(graph))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mermaid", action="store_true", help="print the Mermaid diagram only")
    parser.add_argument("--json", action="store_true", help="print the module graph as JSON")
    args = parser.parse_args(argv)
    graph = modules()
    if args.mermaid:
        print(mermaid(graph))
        return 0
    if args.json:
        print(json.dumps({m.name: sorted(m.imports) for m in graph.values()}, indent=1))
        return 0
    for rank in reversed(range(len(LAYERS))):
        names = sorted(m for m in graph if layer_of(m) == rank)
        units = sorted({unit_of(m) for m in names})
        print(f"{LAYERS[rank][0]:8} {', '.join(units)}  ({len(names)} modules)")
    found = problems(graph)
    if found:
        print(f"\n{len(found)} problem(s):")
        print("\n".join(f"  {p}" for p in found))
        return 1
    print(f"\nok: {len(graph)} modules, no cycle, no upward or sideways import, sizes in limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
