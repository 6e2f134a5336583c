"""``Journal.same_content``: how a writer finds the record it was asked to write before
(issue 12, item 1). Open and confirmed writes count; a rolled-back one does not (its
content was never written, so writing it again is right); patient and category must match.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emrshare.errors import JournalError
from emrshare.journal import JobState, Journal
from tests.unit.journal.test_journal import STREAM, Ledger, Steps, rid


def test_same_content_finds_open_and_confirmed_writes_only(tmp_path: Path) -> None:
    steps = Steps(Ledger())
    with Journal(tmp_path / "j") as journal:
        first = journal.begin(
            "0xp",
            "lab",
            stream=STREAM,
            next_sequence=1,
            record_id_of=rid,
            meta={"content": "aa"},
        )
        assert journal.same_content("0xp", "lab", "aa") == journal.get(first.record_id)
        assert journal.same_content("0xp", "imaging", "aa") is None
        assert journal.same_content("0xq", "lab", "aa") is None
        assert journal.same_content("0xp", "lab", "bb") is None
        # No source and never spooled: recovery rolls it back, and it no longer counts.
        report = journal.recover(steps)
        assert report.rolled_back == [first.record_id]
        assert journal.same_content("0xp", "lab", "aa") is None

        steps.sources[bytes(rid(1))] = b"payload"
        again = journal.begin(
            "0xp",
            "lab",
            stream=STREAM,
            next_sequence=1,
            record_id_of=rid,
            meta={"content": "aa"},
        )
        journal.run([again], steps)
        found = journal.same_content("0xp", "lab", "aa")
        assert found is not None and found.state is JobState.CONFIRMED
        assert found.record_id == again.record_id


def test_concurrent_identical_adds_from_two_processes_write_one_copy(tmp_path: Path) -> None:
    # Two processes run the same `record add` at once: both asked same_content before
    # either began, so both saw nothing. The second begin must see the first's open
    # write, in the same transaction as its own insert, and refuse (unless --again).
    def begin(journal: Journal, unique: bool) -> object:
        return journal.begin(
            "0xp",
            "lab",
            stream=STREAM,
            next_sequence=1,
            record_id_of=rid,
            meta={"content": "aa"},
            unique_content=unique,
        )

    with Journal(tmp_path / "j") as one, Journal(tmp_path / "j") as two:
        begin(one, True)
        with pytest.raises(JournalError, match=r"same content .* wait for it"):
            begin(two, True)
        assert len(two.jobs(open_only=True)) == 1
        begin(two, False)  # --again: a copy on purpose
        assert len(two.jobs(open_only=True)) == 2


def test_identical_files_in_one_batch_are_each_begun(tmp_path: Path) -> None:
    # The check is against writes begun before the call: a batch (record import) that
    # holds two identical files still begins both, as before.
    with Journal(tmp_path / "j") as journal:
        jobs = journal.begin_many(
            "0xp",
            "lab",
            [{"content": "aa"}, {"content": "aa"}],
            stream=STREAM,
            next_sequence=1,
            record_id_of=rid,
            unique_content=True,
        )
        assert len(jobs) == 2 and jobs[0].record_id != jobs[1].record_id
