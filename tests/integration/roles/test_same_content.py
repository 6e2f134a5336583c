"""The same record twice is one record (issue 12, item 1), in the library: real anvil and
a real LocalStore. A re-run after an interrupted write finishes that write and returns its
id; a re-run after a finished one returns the record on chain; ``again=True`` writes a
copy; ``on_stage`` reports which, then each step; ``record import`` (``add_records`` of
files) writes only the files not in yet."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable

import pytest

from emrshare.journal import JobState
from emrshare.types import RecordId
from tests.integration.roles.conftest import Stack, entries_by_record


def _stages() -> tuple[list[tuple[str, RecordId]], Callable[[str, RecordId], None]]:
    seen: list[tuple[str, RecordId]] = []
    return seen, lambda stage, rid: seen.append((stage, rid))


def test_attack_ctrl_c_then_rerun_duplicates_a_record(stack: Stack) -> None:
    hospital, patient = stack.hospital, stack.patient.address
    scan = stack.tmp / "scan.bin"
    scan.write_bytes(os.urandom(300_000))
    real_store = hospital.writer.store

    def ctrl_c(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt  # Ctrl-C while the ciphertext goes to the store

    hospital.writer.store = ctrl_c  # type: ignore[method-assign,assignment]
    seen, on_stage = _stages()
    with pytest.raises(KeyboardInterrupt):
        hospital.add_record(patient, "lab", scan, on_stage=on_stage)
    hospital.writer.store = real_store  # type: ignore[method-assign]
    (first, rid), *_ = seen
    assert first == "journaled"
    assert hospital.writer.journal.get(rid).state is JobState.ENCRYPTED

    seen, on_stage = _stages()
    assert hospital.add_record(patient, "lab", scan, on_stage=on_stage) == rid
    assert [s for s, _ in seen] == ["resumed", "store", "append", "confirm"]
    assert entries_by_record(stack) == {bytes(rid): 1}

    seen, on_stage = _stages()
    assert hospital.add_record(patient, "lab", scan, on_stage=on_stage) == rid
    assert seen == [("existing", rid)]
    # Bytes of the same content are the same record too.
    assert hospital.add_record(patient, "lab", scan.read_bytes()) == rid
    assert entries_by_record(stack) == {bytes(rid): 1}

    seen, on_stage = _stages()
    copy = hospital.add_record(patient, "lab", scan, again=True, on_stage=on_stage)
    assert copy != rid
    assert [s for s, _ in seen] == ["journaled", "encrypt", "store", "append", "confirm"]
    assert entries_by_record(stack) == {bytes(rid): 1, bytes(copy): 1}
    assert stack.patient.read(copy) == stack.patient.read(rid) == scan.read_bytes()


def test_the_content_digest_stays_local_and_keyed(stack: Stack) -> None:
    content = b"K 4.1 mmol/L"
    rid = stack.hospital.add_record(stack.patient.address, "lab", content)
    db = sqlite3.connect(stack.tmp / "hosp" / "journal" / "journal.db")
    (meta,) = db.execute("SELECT meta FROM writes WHERE record_id = ?", (bytes(rid),)).fetchone()
    db.close()
    digest = json.loads(meta)["content"]
    assert digest != hashlib.sha256(content).hexdigest(), "keyed: a guess cannot be checked"
    assert len(digest) == 64
    # Nothing of it on chain: no index event carries the digest.
    for ev in stack.net.contracts.index.entries(stack.patient.address):
        assert bytes.fromhex(digest) not in bytes(ev.entry)


def test_reimport_writes_only_the_files_not_in_yet(stack: Stack) -> None:
    files = []
    for n in range(3):
        f = stack.tmp / f"lab{n}.txt"
        f.write_bytes(b"result %d " % n + os.urandom(8))
        files.append(f)
    hospital, patient = stack.hospital, stack.patient.address
    first = hospital.add_records(patient, "lab", files[:2])
    extra = stack.tmp / "lab3.txt"
    extra.write_bytes(b"late result")
    again = hospital.add_records(patient, "lab", [*files, extra])
    assert again[:2] == first
    assert len(set(again)) == 4
    assert sorted(entries_by_record(stack)) == sorted(bytes(r) for r in again)
    forced = hospital.add_records(patient, "lab", files[:1], again=True)
    assert forced[0] not in again


def test_a_patient_adds_its_own_record_once(stack: Stack) -> None:
    p = stack.patient
    seen, on_stage = _stages()
    rid = p.add_record("notes", b"home bp 120/80", media_type="text/plain", on_stage=on_stage)
    assert seen[0] == ("journaled", rid)
    assert p.add_record("notes", b"home bp 120/80") == rid
    copy = p.add_record("notes", b"home bp 120/80", again=True)
    assert copy != rid
    assert sorted(r.record_id for r in p.records("notes")) == sorted([rid, copy])


def test_attack_a_file_changed_before_its_write_resumed_is_told_for_the_old_content(
    stack: Stack,
) -> None:
    # Ctrl-C while encrypting (nothing spooled: the journal will re-read the file). The
    # file is then edited and added again: recovery re-reads the edited file for the old
    # write, whose journal name is the *old* content. An add of the old content must not
    # be told that record (it would hold the edited bytes).
    hospital, patient = stack.hospital, stack.patient.address
    scan = stack.tmp / "scan.bin"
    original = os.urandom(200_000)
    scan.write_bytes(original)
    real_encrypt = hospital.writer.encrypt

    def ctrl_c(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    hospital.writer.encrypt = ctrl_c  # type: ignore[method-assign,assignment]
    seen, on_stage = _stages()
    with pytest.raises(KeyboardInterrupt):
        hospital.add_record(patient, "lab", scan, on_stage=on_stage)
    hospital.writer.encrypt = real_encrypt  # type: ignore[method-assign]
    (_, first), *_ = seen
    assert hospital.writer.journal.get(first).state is JobState.PENDING

    edited = os.urandom(200_000)
    scan.write_bytes(edited)
    new = hospital.add_record(patient, "lab", scan)
    assert stack.patient.read(new) == edited
    told = hospital.add_record(patient, "lab", original)
    assert stack.patient.read(told) == original
