"""Issue 12, items 2, 7 and 9 through the CLI on a real devnet (anvil, two proxy
processes at threshold 2, an embedded store), every step a separate `emrshare` process:
short ids and profile names in tables, id prefixes back in, a grantee's listing with
type and size, `record get -o -`, and the audit trail one row per read; issue 18: the
trail drawn as a timeline (`audit --html/--png`)."""

from __future__ import annotations

import re
import stat
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import cli_json as _json
from tests.cli_support import cli_ok as _ok
from tests.cli_support import run_cli as _cli

LAB = b"Complete blood count\nHb 14.1 g/dL\n\x00\xff binary-safe \r\n"


@dataclass
class Devnet:
    data: Path
    lab: str
    note: str
    files: Path


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    tmp = tmp_path_factory.mktemp("ids-cli")
    data = tmp / "data"
    try:
        _ok(data, "devnet", "up", "--proxies", "2", "--threshold", "2")
        _ok(data, "--profile", "patient", "writer", "add", "hospital-a", "--category", "lab")
        (tmp / "lab.txt").write_bytes(LAB)
        (tmp / "note.csv").write_bytes(b"sys,dia\n120,80\n")
        ids = []
        for name, media in (("lab.txt", "text/plain"), ("note.csv", "text/csv")):
            added = _json(
                data,
                "--profile",
                "hospital-a",
                "record",
                "add",
                str(tmp / name),
                "--patient",
                "patient",
                "--category",
                "lab",
                "--media-type",
                media,
            )
            ids.append(added["record_id"])
        _ok(
            data,
            "--profile",
            "patient",
            "grant",
            "add",
            "--to",
            "hospital-b",
            "--category",
            "lab",
            "--expires",
            "30d",
        )
        yield Devnet(data, ids[0], ids[1], tmp)
    finally:
        _cli(data, "devnet", "down", "--wipe")


def test_tables_show_short_ids_and_profile_names(devnet: Devnet) -> None:
    table = _ok(devnet.data, "--profile", "patient", "record", "list")
    assert devnet.lab[:10] in table and devnet.lab not in table  # 0x + 8 hex, not 66 chars
    assert "hospital-a" in table  # the author's profile name beside its address
    assert all(len(line) <= 80 for line in table.splitlines())
    listed = _json(devnet.data, "--profile", "patient", "record", "list")
    assert {r["record_id"] for r in listed} == {devnet.lab, devnet.note}  # full in JSON
    grants = _ok(devnet.data, "--profile", "patient", "grant", "list")
    assert "hospital-b" in grants


def test_grantee_list_shows_type_and_size(devnet: Devnet) -> None:
    args = ("--profile", "hospital-b", "record", "list", "--patient", "patient")
    table = _ok(devnet.data, *args)
    assert "text/plain" in table and "text/csv" in table and str(len(LAB)) in table
    listed = {r["record_id"]: r for r in _json(devnet.data, *args)}
    assert listed[devnet.lab]["size"] == len(LAB)
    assert listed[devnet.note]["media_type"] == "text/csv"
    # --no-details: the ids without opening anything, so no read in the patient's trail.
    before = len(_json(devnet.data, "--profile", "patient", "audit"))
    plain = {r["record_id"]: r for r in _json(devnet.data, *args, "--no-details")}
    assert set(plain) == set(listed) and plain[devnet.lab]["size"] is None
    assert len(_json(devnet.data, "--profile", "patient", "audit")) == before


def test_record_get_takes_a_prefix_and_writes_stdout(devnet: Devnet) -> None:
    prefix = devnet.lab[:10]
    got = _cli(
        devnet.data,
        "--profile",
        "hospital-b",
        "record",
        "get",
        prefix,
        "--patient",
        "patient",
        "-o",
        "-",
        text=False,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == LAB  # the record, byte for byte, and nothing else
    assert devnet.lab.encode() in got.stderr and b"stdout" in got.stderr
    out = devnet.files / "lab-copy.txt"
    doc = _json(
        devnet.data, "--profile", "patient", "record", "get", devnet.lab[2:12], "-o", str(out)
    )
    assert doc["record_id"] == devnet.lab and out.read_bytes() == LAB
    short = _cli(devnet.data, "--profile", "patient", "record", "get", "0x1234567", "-o", "-")
    assert short.returncode == 1 and short.stdout == ""
    assert short.stderr.startswith("error: ") and "at least 8 hex digits" in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1


_DATE_CELL = re.compile(r"│ \d{4}-\d{2}-\d{2} ")


def test_audit_is_one_row_per_read(devnet: Devnet) -> None:
    b = _json(devnet.data, "--profile", "hospital-b", "whoami")["address"]
    for _ in range(3):
        _cli(
            devnet.data,
            "--profile",
            "hospital-b",
            "record",
            "get",
            devnet.note[:10],
            "--patient",
            "patient",
            "-o",
            str(devnet.files / "note-copy.csv"),
        ).check_returncode()

    def note_reads() -> list[dict[str, Any]]:
        trail = _json(devnet.data, "--profile", "patient", "audit")
        return [e for e in trail if e["requester"] == b and e["records"] == [devnet.note]]

    reads = note_reads()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        len(reads) == 3 and all(len(e["proxies"]) == 2 for e in reads)
    ):
        time.sleep(1)  # proxies log their served batches every second
        reads = note_reads()
    assert len(reads) == 3 and all(len(set(e["proxies"])) == 2 and e["complete"] for e in reads)
    by_proxy = _json(devnet.data, "--profile", "patient", "audit", "--by-proxy")
    mine = [e for e in by_proxy if e["requester"] == b and e["records"] == [devnet.note]]
    assert len(mine) == 6 and {e["nonce"] for e in mine} == {e["nonce"] for e in reads}
    # The table: one row per read (each row's first line starts with its date; a time that
    # wraps onto the row's second line starts with "20" too after 20:00 UTC).
    trail = _json(devnet.data, "--profile", "patient", "audit")
    table = _ok(devnet.data, "--profile", "patient", "audit")
    firsts = [line for line in table.splitlines() if _DATE_CELL.match(line)]
    assert len(firsts) == len(trail) and all("hospital-b" in line for line in firsts)
    per_proxy = _ok(devnet.data, "--profile", "patient", "audit", "--by-proxy")
    assert len([line for line in per_proxy.splitlines() if _DATE_CELL.match(line)]) == len(by_proxy)
    _check_timeline_files(devnet, trail, b)


def _check_timeline_files(devnet: Devnet, trail: list[dict[str, Any]], b: str) -> None:
    """``audit --html --png``: both files, 0600, one mark per read of the trail, the
    reader's profile name; a missing directory is a one-line usage error."""
    html, png = devnet.files / "audit.html", devnet.files / "audit.png"
    done = _cli(
        devnet.data, "--profile", "patient", "audit", "--html", str(html), "--png", str(png)
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"wrote the timeline of {len(trail)} reads to {html}",
        f"wrote the timeline of {len(trail)} reads to {png}",
    ]
    doc = html.read_text()
    assert "hospital-b" in doc and re.search(r"verified against block \d+", doc)
    assert doc.count('<tr class="read">') == len(trail)
    svg = ET.fromstring(doc[doc.index("<svg") : doc.index("</svg>") + len("</svg>")])
    marks = [e for e in svg.iter("{http://www.w3.org/2000/svg}circle") if e.get("class") == "read"]
    assert len(marks) == len(trail)
    assert sum(m.get("data-grantee") == b for m in marks) == sum(e["requester"] == b for e in trail)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert {stat.S_IMODE(p.stat().st_mode) for p in (html, png)} == {0o600}
    nowhere = devnet.files / "no-such-dir" / "audit.html"
    bad = _cli(devnet.data, "--profile", "patient", "audit", "--html", str(nowhere))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "does not exist" in bad.stderr
    assert not nowhere.parent.exists()
