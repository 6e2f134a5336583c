"""``Journal.same_content``: how a writer finds the record it was asked to write before
(issue 12, item 1). Open and confirmed writes count; a rolled-back one does not (its
content was never written, so writing it again is right); patient and category must match.
"""

from __future__ import annotations

from pathlib import Path

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
