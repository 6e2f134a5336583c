"""The write journal: a crash or failure at any step resumes to exactly one index entry.

The steps here are a small in-memory ledger written for these tests: a content-addressed
dict as the store and an append-only list as the index that, like the index contract,
accepts a record id only once. The same journal is driven by the real crypto, storage and
chain layers in ``tests/integration/roles``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from emrshare.errors import ContractRevert, JournalError, StoreUnavailable, TransactionFailed
from emrshare.journal import JobState, Journal, ReceiptStatus, WriteJob
from emrshare.types import Cid, RecordId

STREAM = "0xp/lab"


class Crash(BaseException):
    """Stands for the process dying: escapes every ``except Exception``."""


@dataclass
class Ledger:
    """Store + index + mempool shared by successive 'processes' (journal instances).

    Like the index contract, the index takes slot ``n`` of a stream only after ``n - 1``.
    """

    blobs: dict[str, bytes] = field(default_factory=dict)
    pinned: set[str] = field(default_factory=set)
    index: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Slot 0 is taken by an earlier record, so the tests' first record is slot 1.
    next_slot: dict[str, int] = field(default_factory=lambda: {STREAM: 1})
    mempool: dict[bytes, list[tuple[str, int, bytes, bytes]]] = field(default_factory=dict)
    duplicate_attempts: int = 0
    out_of_order: int = 0
    sends: int = 0

    def mine(self) -> None:
        for tx, entries in list(self.mempool.items()):
            del self.mempool[tx]
            stream, first = entries[0][0], entries[0][1]
            expected = self.next_slot.get(stream, 0)
            if first < expected:
                self.duplicate_attempts += 1
                continue
            if first > expected:
                self.out_of_order += 1
                continue
            for _, _, record_id, entry in entries:
                self.index.append((record_id, entry))
            self.next_slot[stream] = first + len(entries)


@dataclass
class Steps:
    ledger: Ledger
    sources: dict[bytes, bytes] = field(default_factory=dict)
    crash_at: str | None = None
    fail_at: str | None = None
    fail_with: Exception = field(default_factory=lambda: StoreUnavailable("store is down"))
    mine_on_send: bool = True
    receipt_status: ReceiptStatus | None = None
    calls: list[str] = field(default_factory=list)

    def _hook(self, point: str) -> None:
        self.calls.append(point)
        if self.crash_at == point:
            raise Crash(point)
        if self.fail_at == point:
            raise self.fail_with

    def encrypt(self, job: WriteJob, sink: IO[bytes]) -> bytes:
        self._hook("encrypt:before")
        data = self.sources[job.record_id]
        for i in range(0, len(data), 1000):
            sink.write(bytes(b ^ 0x5A for b in data[i : i + 1000]))
        self._hook("encrypt:after")
        return b"sealed-data-key"

    def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
        self._hook("store:before")
        data = ciphertext.read()
        cid = hashlib.sha256(data).hexdigest()
        self.ledger.blobs[cid] = data
        self.ledger.pinned.add(cid)
        self._hook("store:after")
        return Cid(cid)

    def seal(self, job: WriteJob, cid: Cid, secret: bytes) -> bytes:
        self._hook("seal")
        assert secret == b"sealed-data-key"
        return b"entry:" + cid.encode()

    def appended(self, jobs: Sequence[WriteJob]) -> set[RecordId]:
        self._hook("appended")
        return {j.record_id for j in jobs if j.sequence < self.ledger.next_slot.get(j.stream, 0)}

    def send_append(self, jobs: Sequence[WriteJob], sealed: Sequence[bytes]) -> bytes:
        self._hook("send:before")
        self.ledger.sends += 1
        tx = hashlib.sha256(b"tx%d" % self.ledger.sends).digest()
        self.ledger.mempool[tx] = [
            (j.stream, j.sequence, j.record_id, s) for j, s in zip(jobs, sealed, strict=True)
        ]
        if self.mine_on_send:
            self.ledger.mine()
        self._hook("send:after")
        return tx

    def receipt(self, tx_hash: bytes) -> ReceiptStatus:
        self._hook("receipt:before")
        if self.receipt_status is not None:
            return self.receipt_status
        self.ledger.mine()
        self._hook("receipt:after")
        return "confirmed"

    def unpin(self, cid: Cid) -> None:
        self._hook("unpin")
        self.ledger.pinned.discard(cid)


def rid(i: int, stream: str = STREAM) -> RecordId:
    return RecordId(hashlib.sha256(b"%s/%d" % (stream.encode(), i)).digest())


def begin(journal: Journal, *, next_sequence: int = 0, **kwargs: object) -> WriteJob:
    return journal.begin(
        "0xp", "lab", stream=STREAM, next_sequence=next_sequence, record_id_of=rid, **kwargs
    )  # type: ignore[arg-type]


def content(i: int, size: int = 3000) -> bytes:
    return (b"record %d " % i) * (size // 10)


def assert_exactly_once(ledger: Ledger, ids: Sequence[RecordId], sources: dict[bytes, bytes]):
    assert ledger.duplicate_attempts == 0
    assert ledger.out_of_order == 0
    indexed = [r for r, _ in ledger.index]
    assert sorted(indexed) == sorted(ids), "exactly one index entry per record"
    for r, entry in ledger.index:
        cid = entry.removeprefix(b"entry:").decode()
        assert cid in ledger.pinned
        plain = bytes(b ^ 0x5A for b in ledger.blobs[cid])
        assert plain == sources[r], "nothing lost: the stored blob decrypts to the record"
    assert ledger.pinned == {e.removeprefix(b"entry:").decode() for _, e in ledger.index}


def test_happy_path(tmp_path: Path) -> None:
    ledger = Ledger()
    steps = Steps(ledger, {rid(1): content(1)})
    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1, meta={"media_type": "text/plain"})
        assert job.record_id == rid(1) and job.sequence == 1
        assert job.state is JobState.PENDING
        journal.run([job], steps)
        done = journal.get(rid(1))
        assert done.state is JobState.CONFIRMED
        assert done.meta == {"media_type": "text/plain"}
        assert done.secret is None, "the secret is dropped once the entry is on chain"
        assert "secret" not in repr(done).replace("secret=", "")
        assert journal.pending() == []
    assert_exactly_once(ledger, [rid(1)], steps.sources)


CRASH_POINTS = [
    "encrypt:before",
    "encrypt:after",
    "store:before",
    "store:after",
    "seal",
    "appended",
    "send:before",
    "send:after",
    "receipt:before",
    "receipt:after",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize("with_source", [False, True])
def test_crash_at_every_step_then_recover(tmp_path: Path, point: str, with_source: bool) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    src = tmp_path / "source.bin"
    src.write_bytes(sources[rid(1)])
    with Journal(tmp_path / "j") as journal:
        job = begin(journal, next_sequence=1, source=src if with_source else None)
        with pytest.raises(Crash):
            journal.run([job], Steps(ledger, sources, crash_at=point))
    # A new process opens the journal and recovers.
    with Journal(tmp_path / "j") as journal:
        report = journal.recover(Steps(ledger, sources))
        assert report.ok
        final = journal.get(rid(1))
    if point.startswith("encrypt") and not with_source:
        # Died before the ciphertext was spooled: the caller never got an answer and
        # still holds the content; nothing half-written remains.
        assert final.state is JobState.ROLLED_BACK
        assert report.rolled_back == [rid(1)]
        assert ledger.index == [] and ledger.pinned == set()
    else:
        assert final.state is JobState.CONFIRMED
        assert_exactly_once(ledger, [rid(1)], sources)
    assert (
        not list((tmp_path / "j" / "spool").glob("*")) if (tmp_path / "j/spool").exists() else True
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_in_bulk_then_resume_by_next_run(tmp_path: Path, point: str) -> None:
    ledger = Ledger()
    sources = {rid(i): content(i, 500) for i in range(1, 121)}
    ids = list(sources)
    with Journal(tmp_path) as journal:
        jobs = journal.begin_many(
            "0xp", "lab", [{}] * 120, stream=STREAM, next_sequence=1, record_id_of=rid
        )
        assert [j.record_id for j in jobs] == ids
        with pytest.raises(Crash):
            journal.run(jobs, Steps(ledger, sources, crash_at=point), batch_size=50)
        # The same process keeps going: the next run resumes every job.
        journal.run(jobs, Steps(ledger, sources), batch_size=50)
        assert {j.state for j in journal.jobs()} == {JobState.CONFIRMED}
    assert_exactly_once(ledger, [RecordId(i) for i in ids], sources)


@pytest.mark.parametrize(
    "point", ["store:before", "store:after", "appended", "send:before", "receipt:before"]
)
def test_transient_failure_keeps_the_job(tmp_path: Path, point: str) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1)
        failing = Steps(ledger, sources, fail_at=point, fail_with=TransactionFailed("node down"))
        with pytest.raises(JournalError, match=r"recover\(\)") as info:
            journal.run([job], failing)
        assert isinstance(info.value.__cause__, TransactionFailed)
        left = journal.get(rid(1))
        assert not left.state.finished
        assert left.attempts == 1 and "node down" in (left.last_error or "")
        report = journal.recover(Steps(ledger, sources))
        assert report.confirmed == [rid(1)]
    assert_exactly_once(ledger, [rid(1)], sources)


def test_permanent_failure_rolls_back_and_unpins(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    revert = ContractRevert("RecordIndex_NotAuthorized", {"writer": "0xabc"})
    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1)
        with pytest.raises(ContractRevert):
            journal.run([job], Steps(ledger, sources, fail_at="send:before", fail_with=revert))
        gone = journal.get(rid(1))
        assert gone.state is JobState.ROLLED_BACK
        assert "RecordIndex_NotAuthorized" in (gone.last_error or "")
    assert ledger.index == []
    assert ledger.blobs and ledger.pinned == set(), "the orphaned blob was unpinned"


def test_dropped_transaction_is_resent_once(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    with Journal(tmp_path, retries=0) as journal:
        job = begin(journal, next_sequence=1)
        # The node accepts the tx but never mines it, then reports it dropped.
        steps = Steps(ledger, sources, mine_on_send=False, receipt_status="failed")
        with pytest.raises(JournalError, match="did not confirm"):
            journal.run([job], steps)
        ledger.mempool.clear()  # dropped
        assert journal.get(rid(1)).state is JobState.STORED
        journal.run([job], Steps(ledger, sources))
        assert journal.get(rid(1)).state is JobState.CONFIRMED
    assert_exactly_once(ledger, [rid(1)], sources)


def test_unmined_transaction_is_not_resent(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1)
        steps = Steps(ledger, sources, mine_on_send=False, receipt_status="unknown")
        with pytest.raises(JournalError, match="not mined yet"):
            journal.run([job], steps)
        assert journal.get(rid(1)).state is JobState.APPEND_SENT
        assert ledger.sends == 1
        journal.recover(Steps(ledger, sources))
        assert ledger.sends == 1, "the pending transaction was waited for, not duplicated"
    assert_exactly_once(ledger, [rid(1)], sources)


def test_large_records_spool_to_a_file(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(1): os.urandom(5000)}
    with Journal(tmp_path, inline_max=1024) as journal:
        job = begin(journal, next_sequence=1)
        with pytest.raises(Crash):
            journal.run([job], Steps(ledger, sources, crash_at="store:before"))
        spooled = list((tmp_path / "spool").glob("*.bin"))
        assert len(spooled) == 1 and spooled[0].stat().st_size == 5000
        journal.recover(Steps(ledger, sources))
        assert not list((tmp_path / "spool").glob("*.bin"))
    assert_exactly_once(ledger, [rid(1)], sources)


def test_rollback_by_request_never_undoes_an_appended_record(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1), rid(2): content(2)}
    with Journal(tmp_path) as journal:
        a = begin(journal, next_sequence=1)
        with pytest.raises(Crash):
            journal.run([a], Steps(ledger, sources, crash_at="send:after"))
        b = begin(journal)
        assert b.sequence == 2
        with pytest.raises(Crash):
            journal.run([b], Steps(ledger, sources, crash_at="store:after"))
        report = journal.recover(Steps(ledger, sources), rollback=True)
        assert report.confirmed == [rid(1)]
        assert report.rolled_back == [rid(2)]
    assert [r for r, _ in ledger.index] == [rid(1)]
    assert len(ledger.pinned) == 1


def test_slots_are_allocated_in_order_and_freed_by_rollback(tmp_path: Path) -> None:
    ledger = Ledger()
    with Journal(tmp_path) as journal:
        assert begin(journal, next_sequence=3).sequence == 3
        assert begin(journal, next_sequence=0).sequence == 4, "never below a live slot"
        assert begin(journal, next_sequence=9).sequence == 9, "the chain is ahead"
        report = journal.recover(Steps(ledger), rollback=True)
        assert sorted(report.rolled_back) == sorted([rid(3), rid(4), rid(9)])
        again = begin(journal, next_sequence=3)
        assert again.sequence == 3 and again.state is JobState.PENDING
        with pytest.raises(JournalError, match="already in the journal"):
            journal.begin(
                "0xp", "lab", stream="other", next_sequence=0, record_id_of=lambda n: rid(3)
            )


def test_jobs_of_a_live_other_process_are_left_alone(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        begin(journal, next_sequence=1)
        # Pretend pid 1 (always alive) is driving it.
        journal._db.execute("UPDATE writes SET owner = 1")
        assert journal.pending() == []
        journal._db.execute("UPDATE writes SET owner = 2147483646")  # no such process
        assert [j.record_id for j in journal.pending()] == [rid(1)]


def test_journal_file_is_private(tmp_path: Path) -> None:
    with Journal(tmp_path):
        pass
    assert (tmp_path / "journal.db").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_rollback_after_a_crash_at_every_step_leaves_nothing_orphaned(
    tmp_path: Path, point: str
) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}
    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1)
        with pytest.raises(Crash):
            journal.run([job], Steps(ledger, sources, crash_at=point))
        report = journal.recover(Steps(ledger, sources), rollback=True)
        assert report.ok
        final = journal.get(rid(1)).state
    if final is JobState.CONFIRMED:
        assert_exactly_once(ledger, [rid(1)], sources)
    else:
        assert final is JobState.ROLLED_BACK
        assert ledger.index == [] and ledger.pinned == set()


def test_bulk_store_outage_midway_keeps_slot_order(tmp_path: Path) -> None:
    ledger = Ledger()
    sources = {rid(i): content(i, 200) for i in range(1, 61)}

    class FlakyStore(Steps):
        stores = 0

        def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
            self.stores += 1
            if self.stores == 30:
                raise StoreUnavailable("store went away")
            return super().store(job, ciphertext)

    with Journal(tmp_path) as journal:
        jobs = journal.begin_many(
            "0xp", "lab", [{}] * 60, stream=STREAM, next_sequence=1, record_id_of=rid
        )
        with pytest.raises(JournalError, match=r"recover\(\)"):
            journal.run(jobs, FlakyStore(ledger, sources))
        assert ledger.index == [], "nothing is appended past a slot that is not stored"
        report = journal.recover(Steps(ledger, sources))
        assert report.ok and len(report.confirmed) == 60
    assert_exactly_once(ledger, list(sources), sources)
    assert [r for r, _ in ledger.index] == list(sources), "slot order kept"


@pytest.mark.parametrize("point", ["store:before", "store:after", None])
def test_parallel_stores_in_bulk(tmp_path: Path, point: str | None) -> None:
    ledger = Ledger()
    sources = {rid(i): content(i, 300 if i % 2 else 3000) for i in range(1, 101)}

    class Parallel(Steps):
        store_concurrency = 4
        stores = 0

        def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
            type(self).stores += 1
            if point is not None and type(self).stores == 37:
                self.crash_at = point
            return super().store(job, ciphertext)

    with Journal(tmp_path, inline_max=1000) as journal:  # some inline, some spooled
        jobs = journal.begin_many(
            "0xp", "lab", [{}] * 100, stream=STREAM, next_sequence=1, record_id_of=rid
        )
        if point is None:
            journal.run(jobs, Parallel(ledger, sources))
        else:
            with pytest.raises(Crash):
                journal.run(jobs, Parallel(ledger, sources))
            journal.recover(Steps(ledger, sources))
        assert {j.state for j in journal.jobs()} == {JobState.CONFIRMED}
    assert_exactly_once(ledger, list(sources), sources)


@pytest.mark.parametrize("point", [None, "send:after", "send:before"])
def test_steps_that_confirm_on_send_skip_the_receipt(tmp_path: Path, point: str | None) -> None:
    ledger = Ledger()
    sources = {rid(1): content(1)}

    class Confirming(Steps):
        confirms_on_send = True

    with Journal(tmp_path) as journal:
        job = begin(journal, next_sequence=1)
        steps = Confirming(ledger, sources, crash_at=point)
        if point is None:
            journal.run([job], steps)
            assert "receipt:before" not in steps.calls
            assert "appended" not in steps.calls, "a fresh write needs no chain check"
        else:
            with pytest.raises(Crash):
                journal.run([job], steps)
            journal.recover(Confirming(ledger, sources))
        assert journal.get(rid(1)).state is JobState.CONFIRMED
    assert_exactly_once(ledger, [rid(1)], sources)


@pytest.mark.parametrize("point", [None, "store:before", "send:before"])
def test_grouped_stores_and_presealed_entries_in_bulk(tmp_path: Path, point: str | None) -> None:
    # The optional bulk capabilities: store_many (groups, durable when it returns) and
    # seal_many (entries sealed ahead; None means "seal it yourself"). Exactly once and in
    # slot order, with crashes midway.
    ledger = Ledger()
    sources = {rid(i): content(i, 300 if i % 2 else 3000) for i in range(1, 121)}
    sealed_ahead: list[bytes] = []

    class Bulk(Steps):
        def store_many(self, jobs: Sequence[WriteJob], files: Sequence[IO[bytes]]) -> list[Cid]:
            return [self.store(j, f) for j, f in zip(jobs, files, strict=True)]

        def seal_many(self, jobs: Sequence[WriteJob]) -> Iterator[bytes | None]:
            for j in jobs:
                if j.sequence % 7 == 0:
                    yield None  # the journal must seal this one itself
                else:
                    sealed_ahead.append(bytes(j.record_id))
                    assert j.cid is not None
                    yield b"entry:" + j.cid.encode()

    with Journal(tmp_path, inline_max=1000) as journal:
        jobs = journal.begin_many(
            "0xp", "lab", [{}] * 120, stream=STREAM, next_sequence=1, record_id_of=rid
        )
        steps = Bulk(ledger, sources, crash_at=point)
        if point is None:
            journal.run(jobs, steps, batch_size=25)
            seals = steps.calls.count("seal")
            assert seals == len([j for j in jobs if j.sequence % 7 == 0])
            assert len(sealed_ahead) == 120 - seals
        else:
            with pytest.raises(Crash):
                journal.run(jobs, steps, batch_size=25)
            journal.recover(Bulk(ledger, sources))
        assert {j.state for j in journal.jobs()} == {JobState.CONFIRMED}
    assert_exactly_once(ledger, list(sources), sources)
    assert [r for r, _ in ledger.index] == list(sources), "slot order kept"
