"""What the CLI's tables show (issue 12, items 2 and 7): short ids that fit an 80-column
terminal and stay unique, profile names beside addresses, one audit row per read."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from emrshare._ids import resolve_id
from emrshare.cli import _context, _render
from emrshare.roles import AccessEvent, RecordInfo
from emrshare.roles._audit import group_reads
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

PATIENT = Address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")
HOSPITAL = Address("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65")
P1 = Address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
P2 = Address("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
SAME = bytes.fromhex("abcdef01" + "00" * 28), bytes.fromhex("abcdef01" + "ff" * 28)
OTHER = bytes.fromhex("12345678" + "9a" * 28)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(_context, "out", Console(file=buf, width=80, highlight=False))
    monkeypatch.setattr(_render, "known_names", lambda: {HOSPITAL: "hospital-b"})
    return buf


def _record(rid: bytes, author: str) -> RecordInfo:
    return RecordInfo(
        record_id=RecordId(rid),
        patient=PATIENT,
        author=author,  # type: ignore[arg-type]
        category="lab",
        epoch=0,
        tag=CategoryTag(b"\x01" * 32),
        block_number=41,
        media_type="text/plain",
        size=67,
    )


def test_record_table_fits_80_columns_with_unique_short_ids(screen: io.StringIO) -> None:
    records = [_record(SAME[0], HOSPITAL), _record(SAME[1], PATIENT), _record(OTHER, PATIENT)]
    _render.RECORDS.show(records, as_json=False)
    text = screen.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    # One line per record: the id does not wrap, and is a prefix that names it.
    shown = {"0xabcdef0100": SAME[0], "0xabcdef01ff": SAME[1], "0x12345678": OTHER}
    for short, rid in shown.items():
        (row,) = [line for line in lines if short in line]
        assert "text/plain" in row and "67" in row
        assert resolve_id(short, [*SAME, OTHER], where="here") == rid
    # The profile name beside the address (in its cell, folded under it at 80 columns).
    (named,) = [i for i, line in enumerate(lines) if "0xabcdef0100" in line]
    assert "hospital-b" in lines[named] and "0x15d3…6A65" in lines[named + 1]
    assert "0x90F7…b906" in text and "0x" + OTHER.hex() not in text


def test_record_json_has_full_ids_and_addresses(
    screen: io.StringIO, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _render.RECORDS.show([_record(OTHER, HOSPITAL)], as_json=True)
    (doc,) = json.loads(screen.getvalue())
    assert doc["record_id"] == "0x" + OTHER.hex() and doc["author"] == HOSPITAL


def _access(proxy: str, nonce: int, block: int, anomaly: str = "") -> AccessEvent:
    return AccessEvent(
        policy_id=PolicyId(b"\x05" * 32),
        requester=HOSPITAL,
        proxy=proxy,  # type: ignore[arg-type]
        capsule_hashes=(b"\x06" * 32,),
        nonce=nonce,
        evaluated_at_block=block,
        evaluated_time=1_764_680_000 + block,
        block_number=block + 1,
        timestamp=1_764_680_000 + block + 1,
        category="lab",
        record_ids=(RecordId(OTHER),) if not anomaly else None,
        anomaly=anomaly,
    )


class _Grant:
    threshold = 2


def test_three_reads_by_two_proxies_are_three_rows(screen: io.StringIO) -> None:
    # Three reads, each logged by both proxies (in batches, so interleaved), plus one
    # entry a check refused: it is in no read.
    logged = [
        _access(P1, 1, 10),
        _access(P1, 2, 11),
        _access(P2, 1, 10),
        _access(P2, 2, 11),
        _access(P1, 3, 12),
        _access(P2, 9, 12, anomaly="the logged evaluation time is not the time of block 12"),
    ]
    reads = group_reads(logged, {b"\x05" * 32: _Grant()})  # type: ignore[dict-item]
    assert [(r.nonce, r.proxies) for r in reads] == [(1, (P1, P2)), (2, (P1, P2)), (3, (P1,))]
    assert [r.complete for r in reads] == [True, True, False]
    assert reads[0].evaluated_at_block == 10 and reads[0].record_ids == (RecordId(OTHER),)
    _render.READS.show(reads, as_json=False)
    lines = screen.getvalue().splitlines()
    rows = [line for line in lines if "0x12345678" in line]
    assert len(rows) == 3 and max(len(line) for line in lines) <= 80
    assert all("hospital-b" in r for r in rows)
    # The read only one proxy logged says so.
    assert _render._proxies(reads[2]) == "0x7099…79C8 (1 of 2 logged)"
    assert _render._proxies(reads[0]) == "0x7099…79C8, 0x3C44…93BC"
