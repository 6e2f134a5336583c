"""Ctrl-C during `record add`, then a re-run (issue 12, item 1): real `emrshare`
processes on a real devnet (anvil, a proxy process, the embedded LocalStore).

The interrupt is sent, as a terminal's Ctrl-C is, to the command's whole process group,
once the write is journaled (the test watches the journal's database, bounded by a
deadline). The re-run finishes the journaled write and reports that id; nothing is ever
written twice unless `--again`; `recover` lists the ids; no temp file outlives a writer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import interrupted_cli, run_cli_on_terminal

OPEN = ("pending", "encrypted", "stored", "append_sent")


def _env(data_dir: Path) -> dict[str, str]:
    return dict(os.environ, EMRSHARE_DATA_DIR=str(data_dir), EMRSHARE_PASSWORD="devnet")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emrshare.cli", *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


ADD = ("--profile", "hospital-a", "record", "add", "--patient", "patient", "--category", "lab")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("interrupt") / "data"
    try:
        _ok(_cli(data_dir, "devnet", "up", "--proxies", "1", "--threshold", "1"))
        _ok(
            _cli(
                data_dir, "--profile", "patient", "writer", "add", "hospital-a", "--category", "lab"
            )
        )
        yield data_dir
    finally:
        _cli(data_dir, "devnet", "down")


def _journal(data_dir: Path) -> Path:
    return data_dir / "profiles" / "hospital-a" / "state" / "journal" / "journal.db"


def _open_rows(data_dir: Path) -> list[tuple[bytes, str]]:
    path = _journal(data_dir)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        marks = ", ".join("?" * len(OPEN))
        rows = db.execute(
            f"SELECT record_id, state FROM writes WHERE state IN ({marks})",
            OPEN,
        ).fetchall()
    except sqlite3.Error:
        return []  # the table is being created
    finally:
        db.close()
    return [(bytes(r), s) for r, s in rows]


def _encrypting(data_dir: Path) -> bool:
    """An open write past ``journaled``: its spool file is begun (encryption started,
    so the CLI was told the id) or it is past ``pending``."""
    spool = _journal(data_dir).parent / "spool"
    return any(
        state != "pending" or (spool / f"{rid.hex()}.bin").exists()
        for rid, state in _open_rows(data_dir)
    )


def _state_of(data_dir: Path, record_id: bytes) -> str:
    db = sqlite3.connect(f"file:{_journal(data_dir)}?mode=ro", uri=True, timeout=5)
    try:
        (state,) = db.execute(
            "SELECT state FROM writes WHERE record_id = ?", (record_id,)
        ).fetchone()
    finally:
        db.close()
    return str(state)


def _interrupted_add(data_dir: Path, file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`record add FILE`, sent SIGINT (to its process group, like Ctrl-C) as soon as the
    journal holds its open write and encryption began. Bounded: 120 s of watching."""
    return interrupted_cli(
        data_dir,
        [*ADD, str(file), *extra],
        lambda: _encrypting(data_dir),
        "the write never showed up in the journal",
    )


def _interrupt(
    data_dir: Path, tmp: Path, name: str, odd: int, *, as_json: bool = False
) -> tuple[Path, str]:
    """A large file whose `record add` was interrupted mid-write; its printed short id.
    Its size is 48 MB + ``odd`` bytes (each test's records are told apart by size). A
    machine fast enough to finish it before the signal lands gets a bigger file (at
    most three tries)."""
    size = (48 << 20) + odd
    for attempt in range(3):
        file = tmp / f"{name}-{attempt}.bin"
        file.write_bytes(os.urandom(size))
        result = _interrupted_add(data_dir, file, *(["--json"] if as_json else []))
        if result.returncode == 0:
            size = 2 * size - odd  # finished before the signal: try again, bigger
            continue
        assert result.returncode == 130, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        line = result.stderr.strip()
        if as_json:  # one JSON error on stderr, with the full id
            error = json.loads(line)["error"]
            assert (error["type"], error["exit_code"]) == ("Interrupted", 130)
            assert error["message"].startswith(f"interrupted: the write of {file.name} is")
            assert "emrshare recover" in error["hint"]
            return file, str(error["record_id"])[:10]
        assert len(line.splitlines()) == 1, result.stderr
        assert line.startswith(f"interrupted: the write of {file.name} is journaled as 0x"), line
        assert "run 'emrshare recover' to finish it, or re-run the same command" in line
        short = line.split(" journaled as ")[1].split(";")[0]
        assert len(short) == 10
        return file, short
    pytest.fail("three `record add`s of up to 192 MB finished before SIGINT landed")


def _store_tmp(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "devnet" / "store" / "tmp").glob("*.tmp"))


def _records(data_dir: Path) -> list[dict[str, object]]:
    out = _ok(_cli(data_dir, "--profile", "patient", "--json", "record", "list"))
    records: list[dict[str, object]] = json.loads(out.stdout)
    return records


def _copies(data_dir: Path, size: int) -> list[str]:
    return [str(r["record_id"]) for r in _records(data_dir) if r["size"] == size]


def test_attack_ctrl_c_then_rerun_duplicates_a_record(devnet: Path, tmp_path: Path) -> None:
    file, short = _interrupt(devnet, tmp_path, "scan", 1)
    (rid_bytes, _), *more = [r for r in _open_rows(devnet) if r[0].hex().startswith(short[2:])]
    assert more == []
    # Ctrl-C left no temp file in the store (the writer dropped its own on the way out).
    assert _store_tmp(devnet) == []

    rerun = _ok(_cli(devnet, *ADD, str(file), "--json"))
    done = json.loads(rerun.stdout)
    assert done["record_id"] == "0x" + rid_bytes.hex(), "the re-run reports the journaled id"
    assert done["status"] == "resumed"
    assert _state_of(devnet, rid_bytes) == "confirmed"
    assert _copies(devnet, file.stat().st_size) == [done["record_id"]], "exactly one copy"

    # Once more: already there, nothing written.
    again = _ok(_cli(devnet, *ADD, str(file)))
    assert f"{file.name} was already added as record {done['record_id']}" in again.stdout
    assert _copies(devnet, file.stat().st_size) == [done["record_id"]]

    # --again is how a second copy is asked for.
    copy = json.loads(_ok(_cli(devnet, *ADD, str(file), "--again", "--json")).stdout)
    assert copy["status"] == "added" and copy["record_id"] != done["record_id"]
    assert sorted(_copies(devnet, file.stat().st_size)) == sorted(
        [done["record_id"], copy["record_id"]]
    )


def test_recover_lists_the_ids_it_finished(devnet: Path, tmp_path: Path) -> None:
    file, short = _interrupt(devnet, tmp_path, "mri", 2, as_json=True)
    (rid_bytes, _), *more = [r for r in _open_rows(devnet) if r[0].hex().startswith(short[2:])]
    assert more == []
    full = "0x" + rid_bytes.hex()

    text = _ok(_cli(devnet, "--profile", "hospital-a", "recover"))
    assert f"finished    {full}" in text.stdout, text.stdout
    assert text.stdout.startswith("finished 1, rolled back 0, still failing 0")
    assert _copies(devnet, file.stat().st_size) == [full]
    # Nothing is left to recover, and --json lists ids too.
    report = json.loads(_ok(_cli(devnet, "--profile", "hospital-a", "--json", "recover")).stdout)
    assert report["confirmed"] == [] and report["rolled_back"] == []

    # The re-run after recover finds the record, not a reason to write it again.
    rerun = json.loads(_ok(_cli(devnet, *ADD, str(file), "--json")).stdout)
    assert (rerun["record_id"], rerun["status"]) == (full, "existing")
    assert _copies(devnet, file.stat().st_size) == [full]


def test_media_type_comes_from_the_file_name(devnet: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "discharge.pdf"
    pdf.write_bytes(b"%PDF-1.7 discharge letter " + os.urandom(16))
    odd = tmp_path / "reading.zzunknown"
    odd.write_bytes(os.urandom(40))
    told = tmp_path / "note.pdf"
    told.write_bytes(os.urandom(24))
    ids = {
        json.loads(_ok(_cli(devnet, *ADD, str(f), "--json", *extra)).stdout)["record_id"]: want
        for f, extra, want in (
            (pdf, (), "application/pdf"),
            (odd, (), "application/octet-stream"),
            (told, ("--media-type", "text/plain"), "text/plain"),
        )
    }
    listed = {r["record_id"]: r["media_type"] for r in _records(devnet)}
    assert {rid: listed[rid] for rid in ids} == ids


def test_the_progress_bar_shows_each_stage(devnet: Path, tmp_path: Path) -> None:
    file = tmp_path / "echo.bin"
    file.write_bytes(os.urandom(3 << 20))  # a bar is drawn from 1 MiB on, on a terminal
    proc, screen = run_cli_on_terminal(devnet, *ADD, str(file))
    assert proc.returncode == 0, proc.stdout + screen
    for stage in ("encrypt", "store", "append", "confirm"):
        assert f"adding echo.bin: {stage}" in screen, (stage, screen[-2000:])
