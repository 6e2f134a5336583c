"""`record import DIR`, Ctrl-C part-way, then a re-run (issue 19): real `emrshare`
processes on a real devnet (anvil, a proxy process, the embedded LocalStore).

The SIGINT goes, as a terminal's Ctrl-C does, to the command's process group once the
journal holds a first confirmed batch (the test watches the journal's database, bounded
by a deadline). The re-run imports the rest: every file is on chain exactly once, under
the id the re-run reports for it. On a terminal a bar counts the records; under --json,
or with stderr not a terminal, nothing but the JSON is written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import interrupted_cli, run_cli_on_terminal
from tests.integration.cli.test_interrupt import _cli, _journal, _ok, _records

N = 120
IMPORT = ("--profile", "hospital-a", "record", "import", "--patient", "patient")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("import") / "data"
    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "1", "--threshold", "1"))
        for category in ("lab", "imaging"):
            _ok(
                _cli(
                    data_dir,
                    "--profile",
                    "patient",
                    "writer",
                    "add",
                    "hospital-a",
                    "--category",
                    category,
                )
            )
        yield data_dir
    finally:
        _cli(data_dir, "devnet", "down")


def _confirmed(data_dir: Path) -> int:
    path = _journal(data_dir)
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        (n,) = db.execute("SELECT count(*) FROM writes WHERE state = 'confirmed'").fetchone()
    except sqlite3.Error:
        return 0  # the table is being created
    finally:
        db.close()
    return int(n)


def _folder(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    for n in range(N):
        (folder / f"result-{n:04d}.txt").write_bytes(
            b"%s %d " % (name.encode(), n) + os.urandom(32)
        )
    (folder / "nested").mkdir()  # not a regular file: not imported
    return folder


def _interrupted_import(
    data_dir: Path, folder: Path, category: str, batch: int
) -> subprocess.CompletedProcess[str]:
    """`record import FOLDER`, sent SIGINT (to its process group) once the journal holds a
    first confirmed batch. Bounded: 120 s of watching."""
    before = _confirmed(data_dir)
    args = [*IMPORT, "--category", category, "--batch-size", str(batch), str(folder)]
    return interrupted_cli(
        data_dir, args, lambda: _confirmed(data_dir) >= before + batch, "no batch was confirmed"
    )


def _ids(data_dir: Path, category: str) -> list[str]:
    return [str(r["record_id"]) for r in _records(data_dir) if r["category"] == category]


def test_attack_ctrl_c_mid_import_then_rerun_duplicates_records(
    devnet: Path, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, "lab")
    # Small batches leave the signal time to land before the last one; a machine fast
    # enough to finish anyway gets smaller batches (at most three tries).
    for batch in (20, 10, 5):
        earlier = set(_ids(devnet, "lab-results"))
        result = _interrupted_import(devnet, folder, "lab", batch)
        if result.returncode != 0:
            break
        assert len(set(_ids(devnet, "lab-results")) - earlier) == N, "a finished import: once each"
        folder = _folder(tmp_path, f"lab-{batch}")
    else:
        pytest.fail("three imports of 120 files finished before SIGINT landed")
    assert result.returncode == 130, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith("interrupted: the files begun are journaled;")
    part = set(_ids(devnet, "lab-results")) - earlier
    assert batch <= len(part) < N, "stopped after its first batch, before its last"

    args = [*IMPORT, "--category", "lab", "--batch-size", str(batch), "--json", str(folder)]
    rerun = _ok(_cli(devnet, *args))
    assert rerun.stderr == "", "no bar when stderr is not a terminal"
    listed = json.loads(rerun.stdout)
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    assert [x["file"] for x in listed] == files, "the directory's files, sorted by name"
    ids = [x["record_id"] for x in listed]
    assert len(set(ids)) == N
    on_chain = _ids(devnet, "lab-results")
    new = [r for r in on_chain if r not in earlier]
    assert sorted(new) == sorted(ids), "every file on chain exactly once, under its id"
    assert part <= set(ids), "the records in before the Ctrl-C are reported, not rewritten"

    # Once more: nothing is written.
    assert [x["record_id"] for x in json.loads(_ok(_cli(devnet, *args)).stdout)] == ids
    assert sorted(_ids(devnet, "lab-results")) == sorted(on_chain)


def test_the_import_bar_counts_records_on_a_terminal(devnet: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "imaging")
    proc, screen = run_cli_on_terminal(
        devnet, *IMPORT, "--category", "imaging", "--batch-size", "10", str(folder), columns=120
    )
    assert proc.returncode == 0, proc.stdout + screen
    assert proc.stdout.strip() == f"imported {N} imaging records"
    assert "importing imaging" in screen and f"/{N}" in screen, screen[-2000:]
    assert "rec/s" in screen and "eta" in screen, screen[-2000:]
    assert len(_ids(devnet, "imaging")) == N
