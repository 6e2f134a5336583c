"""``Journal.run(..., progress=)``: done/total of a bulk run, counted from committed rows
(issue 19: `record import` draws it). It starts with what is already on chain, grows after
each append batch, never decreases, and ends at (total, total), also across a Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest

from emrshare.journal import JobState, Journal
from emrshare.types import RecordId
from tests.unit.journal.test_journal import (
    STREAM,
    Crash,
    Ledger,
    Steps,
    assert_exactly_once,
    content,
    rid,
)


class Confirming(Steps):
    """Steps whose send waits for the receipt (as the real writer's do)."""

    confirms_on_send = True


def _begin(journal: Journal, n: int) -> list:  # type: ignore[type-arg]
    return journal.begin_many(
        "0xp", "lab", [{}] * n, stream=STREAM, next_sequence=1, record_id_of=rid
    )


@pytest.mark.parametrize("confirms_on_send", [True, False])
def test_progress_counts_confirmed_records_per_batch(
    tmp_path: Path, confirms_on_send: bool
) -> None:
    ledger = Ledger()
    sources = {rid(i): content(i, 200) for i in range(1, 121)}
    seen: list[tuple[int, int]] = []
    with Journal(tmp_path) as journal:
        jobs = _begin(journal, 120)
        steps = (Confirming if confirms_on_send else Steps)(ledger, sources)
        journal.run(jobs, steps, batch_size=50, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 120) and seen[-1] == (120, 120)
    assert {t for _, t in seen} == {120}
    done = [d for d, _ in seen]
    assert done == sorted(done), "never decreases"
    if confirms_on_send:  # else the batches confirm together, in the round's confirm pass
        assert {50, 100} <= set(done), "reported after each batch, not only at the end"
    assert_exactly_once(ledger, [RecordId(i) for i in sources], sources)


def test_progress_after_an_interrupt_starts_from_what_is_on_chain(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(i): content(i, 200) for i in range(1, 121)}

    def ctrl_c_after_the_first_batch(done: int, total: int) -> None:
        if done >= 50:
            raise Crash("SIGINT")

    with Journal(tmp_path) as journal:
        jobs = _begin(journal, 120)
        with pytest.raises(Crash):
            journal.run(
                jobs,
                Confirming(ledger, sources),
                batch_size=50,
                progress=ctrl_c_after_the_first_batch,
            )
        assert len(ledger.index) == 50
        seen: list[tuple[int, int]] = []
        journal.run(
            jobs,
            Confirming(ledger, sources),
            batch_size=50,
            progress=lambda d, t: seen.append((d, t)),
        )
        assert {j.state for j in journal.jobs()} == {JobState.CONFIRMED}
    assert seen[0] == (50, 120) and seen[-1] == (120, 120)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert_exactly_once(ledger, [RecordId(i) for i in sources], sources)
