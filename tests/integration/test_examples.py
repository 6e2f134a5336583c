"""Every runnable script in examples/ runs to completion, and the quickstart's in-process
script runs twice in the same directory (issue 12, item 3)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emrshare.devnet import LocalNetwork
from emrshare.errors import LocalStateError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
QUICKSTART = ROOT / "docs" / "quickstart.md"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _quickstart(tmp_path: Path) -> dict[str, Any]:
    """docs/quickstart.md's Python block, run as written with ``/tmp/`` moved into
    ``tmp_path`` (the same directory each time)."""
    (block,) = re.findall(r"```python\n(.*?)```", QUICKSTART.read_text(), flags=re.DOTALL)
    ns: dict[str, Any] = {}
    exec(compile(block.replace("/tmp/", f"{tmp_path}/"), str(QUICKSTART), "exec"), ns)
    return ns


def test_quickstart_python_runs_twice_in_one_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second run used to meet the first run's proxy state (a new in-memory chain, old
    watcher positions and kfrags on disk) and end in a traceback."""
    first = _quickstart(tmp_path)
    first_rid = first["rid"]
    for actor in ("a", "b", "patient"):
        first[actor].close()
    first["net"].close()

    with caplog.at_level(logging.INFO, logger="emrshare.devnet"):
        second = _quickstart(tmp_path)  # its own `assert b.read(...) == ...` ran
    try:
        assert any("starting clean" in r.getMessage() for r in caplog.records)
        # The second network is a new chain whose state holds only its own run.
        records = second["patient"].records()
        assert [r.record_id for r in records] == [second["rid"]]
        assert second["rid"] != first_rid
        assert second["b"].address in {e.requester for e in second["patient"].audit()}
    finally:
        for actor in ("a", "b", "patient"):
            second[actor].close()
        second["net"].close()


def test_local_network_never_deletes_state_it_did_not_record(tmp_path: Path) -> None:
    """A directory with a ``store`` but no marker (an older emrshare, another tool): the
    start is refused and nothing is deleted; files that are not LocalNetwork's stay."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blob").write_text("someone's data")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LocalStateError, match="no LocalNetwork recorded creating"):
        LocalNetwork.start(tmp_path)
    assert (tmp_path / "store" / "blob").read_text() == "someone's data"

    (tmp_path / "store" / "blob").unlink()
    (tmp_path / "store").rmdir()
    net = LocalNetwork.start(tmp_path, proxies=2)
    try:
        with pytest.raises(LocalStateError, match="in use by another running LocalNetwork"):
            LocalNetwork.start(tmp_path)
        assert (tmp_path / "proxy-2.local").is_dir()
    finally:
        net.close()
    # A symlink where the marker names an entry is not followed, not removed.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    shutil.rmtree(tmp_path / "members", ignore_errors=True)
    os.symlink(outside, tmp_path / "members")
    with pytest.raises(LocalStateError, match="symlink"):
        LocalNetwork.start(tmp_path)
    assert (outside / "keep").read_text() == "keep"
    assert (tmp_path / "notes.txt").read_text() == "mine"
