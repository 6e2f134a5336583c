"""``scripts/layers.py``: the package's import graph respects its layers, and the checker
itself catches a cycle, an upward import, a sideways import and an oversize class."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers", ROOT / "scripts" / "layers.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["layers"] = mod  # its dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "src" / "emrshare" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in [p for p in (root / "src" / "emrshare").rglob("*") if p.is_dir()]:
        (d / "__init__.py").touch()
    (root / "src" / "emrshare" / "__init__.py").touch()
    return root / "src"


def test_emrshare_has_no_cycle_upward_import_or_oversize_module(layers: ModuleType) -> None:
    found = layers.problems(layers.modules())
    assert not found, "\n".join(found)


def test_checker_finds_a_cycle_and_an_upward_import(layers: ModuleType, tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "network.py": "from emrshare.roles.facade import Thing\n",
            "roles/facade.py": "from emrshare import network\nThing = 1\n",
        },
    )
    found = layers.problems(layers.modules(src))
    assert any(p.startswith("cycle: ") and "emrshare.network" in p for p in found), found
    assert any("upward import of emrshare.roles.facade" in p for p in found), found


def test_checker_finds_lazy_and_sideways_imports(layers: ModuleType, tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "crypto/keys.py": "def f():\n    from emrshare.storage import local\n",
            "storage/local.py": "X = 1\n",
            "proxy/node.py": "from ..journal import driver\n",
            "journal/driver.py": "Y = 2\n",
        },
    )
    found = layers.problems(layers.modules(src))
    assert any("sideways import of emrshare.storage.local" in p for p in found), found
    assert any("sideways import of emrshare.journal.driver" in p for p in found), found


def test_checker_finds_oversize_classes_and_modules(layers: ModuleType, tmp_path: Path) -> None:
    big_class = "class Big:\n" + "    x = 1\n" * 300
    src = _tree(tmp_path, {"chain/big.py": big_class + "\n" * 200})
    found = layers.problems(layers.modules(src))
    assert any("class Big is 301 lines" in p for p in found), found
    assert any("chain/big.py: 501 lines" in p for p in found), found


def test_mermaid_draws_every_layer(layers: ModuleType) -> None:
    text = layers.mermaid(layers.modules())
    for name, _ in layers.LAYERS:
        assert f"subgraph layer_{name}[{name}]" in text
    assert "roles --> chain" in text


def test_architecture_page_shows_the_current_diagram(layers: ModuleType) -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert layers.mermaid(layers.modules()) in page, (
        "docs/architecture.md shows an old layer diagram: paste `python scripts/layers.py "
        "--mermaid` between its generated markers"
    )
