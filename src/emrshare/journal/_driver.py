"""The journal's state machine: every state of a write and every transition, in one place.

Each transition is committed to the journal (SQLite in WAL mode) *before* the next step
starts, so a process killed at any point leaves each write in its last committed state,
from which the next run (or :meth:`Journal.recover`) resumes it::

                                                ┌─ failed or dropped ─┐
                                                ▼                     │
    pending ──encrypt──▶ encrypted ──store──▶ stored ──append──▶ append_sent ──confirm──▶ confirmed
       │                     │                 │ │                    │                       ▲
       │                     │                 │ └─ already appended ─┼─ or confirms_on_send ─┘
       └─────────────────────┴────────┬────────┴──────────────────────┘
                                      ▼
                                 rolled_back  (a permanent failure, or recover(rollback=True))

=============  ===========  ==========================  =====================================
from           to           done by                     steps called
=============  ===========  ==========================  =====================================
pending        encrypted    :meth:`Driver._encrypt_all` ``encrypt`` into the spool
encrypted      stored       ``Driver._store_*``         ``store`` (or ``store_many``)
stored         append_sent  :meth:`Driver._append`      ``appended``, ``seal`` (or
                                                        ``seal_many``), ``send_append``
stored         confirmed    :meth:`Driver._append`      ``appended`` found it (an earlier send
                                                        was mined), or ``confirms_on_send``
append_sent    confirmed    :meth:`Driver._confirm`     ``receipt``, ``appended``
append_sent    stored       :meth:`Driver._confirm`     ``receipt`` says failed or dropped,
                                                        and not appended: it is sent again
any open       rolled_back  :meth:`Driver.rollback`     ``store`` (to learn the CID), ``unpin``
=============  ===========  ==========================  =====================================

- ``pending``: the intent (record id, slot, patient, category) is recorded; nothing
  durable yet.
- ``encrypted``: the ciphertext is spooled (see :mod:`emrshare.journal._spool`) with an
  opaque *secret* the steps protect (the data key sealed to the writer's own key). From
  here on the record can no longer be lost, even if the caller's source is gone.
- ``stored``: the ciphertext is pinned in storage under a CID.
- ``append_sent``: the index append transaction was sent; its hash is recorded.
- ``confirmed``: the entry is in the on-chain index; the spool is deleted.

Exactly once: before a write that may have been sent is appended, the steps are asked
whether its record id is already in the index (``appended``), and the index contract
accepts a record id only once. Appends go out in slot order, batched over consecutive
slots of one stream, and never past a slot that is not stored yet.

A transient failure (storage or chain down) leaves the jobs where they are, counts the
attempt and raises :class:`JournalError`; a permanent one (:func:`is_permanent`) rolls the
affected jobs back, unpinning their blobs, and re-raises. :meth:`Driver.recover` rolls
back the ``pending`` jobs that have no source to re-read (their caller never got an
answer and still holds the content), then drives the rest, or with ``rollback=True``
rolls back every job not appended yet.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

from emrshare.errors import EmrShareError, JournalError
from emrshare.journal._bulk import Capabilities, Presealed, append_batches
from emrshare.journal._db import Writes
from emrshare.journal._spool import Spooled, Spools
from emrshare.journal.steps import JobState, StoreMany, WriteJob, WriteSteps, is_permanent
from emrshare.types import Cid, RecordId

#: Encrypted jobs committed to the journal per SQLite transaction in a bulk write.
_ENCRYPT_GROUP = 64
#: Blobs per ``store_many`` call in a bulk write (one durability round each).
_STORE_GROUP = 256

_OPEN = (JobState.PENDING, JobState.ENCRYPTED, JobState.STORED, JobState.APPEND_SENT)

#: ``progress(done, total)``: of the ``total`` jobs of a run, ``done`` are confirmed.
OnProgress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Journal.recover` did."""

    confirmed: list[RecordId] = field(default_factory=list)
    rolled_back: list[RecordId] = field(default_factory=list)
    failed: dict[RecordId, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _Report:
    """Calls ``progress(done, total)`` for a run, ``done`` counted from the committed rows
    of the jobs it is shown, each job once: it never goes back."""

    def __init__(
        self, writes: Writes, jobs: Sequence[WriteJob], progress: OnProgress | None
    ) -> None:
        self._writes, self._total, self._progress = writes, len(jobs), progress
        self._confirmed: set[bytes] = set()
        self(jobs)

    def __call__(self, group: Sequence[WriteJob]) -> None:
        if self._progress is None:
            return
        states = self._writes.states([j.record_id for j in group]) if group else []
        self._confirmed.update(bytes(i) for i, s in states if s == JobState.CONFIRMED.value)
        self._progress(len(self._confirmed), self._total)


class Driver:
    """Moves claimed jobs through the states above, with the caller's steps."""

    def __init__(self, writes: Writes, spools: Spools, *, retries: int) -> None:
        self._writes = writes
        self._spools = spools
        self._retries = retries
        # Writes begun by this object and never handed to ``send_append``: nobody can have
        # appended them, so the chain need not be asked before their first send.
        self._unsent: set[bytes] = set()

    def begun(self, record_ids: Sequence[RecordId]) -> None:
        """Note writes this process just began (they cannot have been sent yet)."""
        self._unsent.update(bytes(i) for i in record_ids)

    def drive(
        self,
        jobs: Sequence[WriteJob],
        steps: WriteSteps,
        batch_size: int,
        progress: OnProgress | None = None,
    ) -> None:
        """Drive ``jobs`` to ``confirmed`` (see :meth:`Journal.run`)."""
        can = Capabilities.of(steps)
        ids = [j.record_id for j in jobs]
        report = _Report(self._writes, jobs, progress)  # tells what is confirmed already

        def current(*states: JobState) -> list[WriteJob]:
            # Always act on the committed rows, never on the caller's stale copies.
            wanted = {s.value for s in states}
            return self._writes.get_many([i for i, s in self._writes.states(ids) if s in wanted])

        self._encrypt_all(current(JobState.PENDING), steps)
        # Bulk stores first; the one-by-one pass then retries whatever they left, and
        # reports the error.
        encrypted = current(JobState.ENCRYPTED)
        if len(encrypted) > 1 and can.store_many is not None:
            self._store_grouped(encrypted, can.store_many)
        elif can.store_concurrency > 1 and len(encrypted) > 1:
            self._store_parallel(encrypted, steps, can.store_concurrency)
        for job in current(JobState.ENCRYPTED):
            self._guarded([job], steps, self._store_one)
        append = functools.partial(self._append, confirms_on_send=can.confirms_on_send)
        # A round confirms what was sent, then appends what is stored; a dropped append
        # goes back to ``stored`` and is sent again in the next round.
        for _ in range(self._retries + 1):
            if not current(JobState.STORED, JobState.APPEND_SENT):
                break
            self._guarded(sent := current(JobState.APPEND_SENT), steps, self._confirm)
            report(sent)
            batches = append_batches(
                current(JobState.STORED), current(JobState.PENDING, JobState.ENCRYPTED), batch_size
            )
            ahead = [j for b in batches for j in b] if len(batches) > 1 else []
            with contextlib.closing(Presealed(can.seal_many, ahead)) as presealed:
                for group in batches:
                    self._guarded(group, steps, functools.partial(append, presealed=presealed))
                    report(group)
            self._guarded(sent := current(JobState.APPEND_SENT), steps, self._confirm)
            report(sent)
        left = current(*_OPEN)
        if left:
            raise JournalError(
                f"{len(left)} write(s) did not confirm after {self._retries + 1} attempts; "
                "they are safe in the journal: recover() finishes them later"
            )

    def recover(
        self, claimed: Sequence[WriteJob], steps: WriteSteps, *, rollback: bool, batch_size: int
    ) -> RecoveryReport:
        """Finish (or undo) the claimed open jobs (see :meth:`Journal.recover`)."""
        report = RecoveryReport()
        live: list[WriteJob] = []
        for job in claimed:
            if job.state is JobState.PENDING and job.source is None:
                self.rollback(job, steps, "interrupted before the ciphertext was spooled")
            else:
                live.append(job)
        error: str | None = None
        try:
            if rollback:
                self._rollback_unless_appended(live, steps)
            else:
                self.drive(live, steps, batch_size)
        except EmrShareError as exc:
            error = str(exc)
        for job in claimed:
            final = self._writes.get(job.record_id)
            if final.state is JobState.CONFIRMED:
                report.confirmed.append(job.record_id)
            elif final.state is JobState.ROLLED_BACK:
                report.rolled_back.append(job.record_id)
            else:
                report.failed[job.record_id] = final.last_error or error or "not finished"
        return report

    def rollback(self, job: WriteJob, steps: WriteSteps, reason: str) -> None:
        """Any open state → ``rolled_back``: unpin the blob, drop the spool."""
        current = self._writes.get(job.record_id)
        # Best effort: a store that is down now leaves an orphan that storage GC of
        # unpinned blocks covers; the rollback itself must stand.
        with contextlib.suppress(EmrShareError, OSError):
            cid = current.cid
            if cid is None and current.state is JobState.ENCRYPTED:
                # We may have died right after the put: storing the spooled ciphertext
                # again is idempotent and tells us the CID to unpin.
                with self._spools.open(job.record_id) as ciphertext:
                    cid = steps.store(current, ciphertext)
            if cid is not None:
                steps.unpin(cid)
        self._spools.drop(job.record_id)
        self._writes.update(
            job.record_id, state=JobState.ROLLED_BACK.value, last_error=reason[:500]
        )

    def _rollback_unless_appended(self, jobs: Sequence[WriteJob], steps: WriteSteps) -> None:
        maybe_sent = [j for j in jobs if j.state in (JobState.STORED, JobState.APPEND_SENT)]
        done = steps.appended(maybe_sent) if maybe_sent else set()
        # Newest slot first, so a stream never has a rolled-back slot below a live one.
        for j in sorted(jobs, key=lambda j: (j.stream, -j.sequence)):
            if j.record_id in done:
                self._confirmed(j)
            else:
                self.rollback(j, steps, "rolled back by request")

    def _guarded(
        self,
        group: Sequence[WriteJob],
        steps: WriteSteps,
        action: Callable[[Sequence[WriteJob], WriteSteps], None],
    ) -> None:
        """Run one transition on ``group``; on failure keep or roll back the jobs."""
        if not group:
            return
        try:
            action(group, steps)
        except Exception as exc:
            if is_permanent(exc):
                for j in group:
                    if not self._writes.get(j.record_id).state.finished:
                        self.rollback(j, steps, f"{type(exc).__name__}: {exc}")
                raise
            self._writes.fail(group, exc)
            more = f" and {len(group) - 1} more" if len(group) > 1 else ""
            raise JournalError(
                f"the write of record 0x{group[0].record_id.hex()}{more} was interrupted "
                f"({type(exc).__name__}: {exc}); it is safe in the journal: recover() (or "
                "writing it again) finishes it"
            ) from exc

    # -- pending → encrypted ----------------------------------------------------------

    def _encrypt_all(self, jobs: Sequence[WriteJob], steps: WriteSteps) -> None:
        """Encrypt ``jobs`` one by one, committing them as ``encrypted`` in groups.

        A job counts as encrypted only once its group is committed, and every group is
        committed before this returns or raises, so nothing is stored before its
        ciphertext is safe in the journal.
        """
        done: list[Spooled] = []

        def one(group: Sequence[WriteJob], steps: WriteSteps) -> None:
            done.append(self._spools.encrypt(group[0], steps))

        try:
            for job in jobs:
                self._guarded([job], steps, one)
                if len(done) >= _ENCRYPT_GROUP:
                    self._commit_encrypted(done)
        finally:
            self._commit_encrypted(done)

    def _commit_encrypted(self, done: list[Spooled]) -> None:
        if not done:
            return
        with self._writes.tx():
            for s in done:
                self._writes.set_state(
                    s.job,
                    JobState.ENCRYPTED,
                    secret=s.secret,
                    ciphertext=s.inline,
                    spool=str(s.path) if s.path is not None else None,
                )
        done.clear()

    # -- encrypted → stored -----------------------------------------------------------

    def _store_one(self, group: Sequence[WriteJob], steps: WriteSteps) -> None:
        (job,) = group
        with self._spools.open(job.record_id) as ciphertext:
            cid = steps.store(job, ciphertext)
        self._writes.set_state(job, JobState.STORED, cid=str(cid))

    def _store_parallel(self, jobs: Sequence[WriteJob], steps: WriteSteps, workers: int) -> None:
        """Store many blobs concurrently (a store's fsyncs overlap); the journal itself is
        only touched from this thread. Failures are left for the sequential pass, which
        reports them."""

        def put(job: WriteJob, data: bytes | None) -> Cid:
            if data is not None:
                return steps.store(job, io.BytesIO(data))
            with self._spools.file(job.record_id).open("rb") as fh:
                return steps.store(job, fh)

        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(jobs), 4 * workers):
                chunk = jobs[start : start + 4 * workers]
                inline = self._writes.inline_many([j.record_id for j in chunk])
                futures = [(j, pool.submit(put, j, inline.get(bytes(j.record_id)))) for j in chunk]
                with self._writes.tx():
                    for job, fut in futures:
                        try:
                            cid = fut.result()
                        except Exception:  # noqa: S112 - retried and reported below
                            continue
                        self._writes.set_state(job, JobState.STORED, cid=str(cid))

    def _store_grouped(self, jobs: Sequence[WriteJob], store_many: StoreMany) -> None:
        """Store blobs in groups through ``store_many`` (one durability round per group).
        A group is marked ``stored`` only after ``store_many`` returned, i.e. once its
        blobs are durable. Failures are left for the sequential pass, which retries and
        reports them."""
        for start in range(0, len(jobs), _STORE_GROUP):
            group = jobs[start : start + _STORE_GROUP]
            inline = self._writes.inline_many([j.record_id for j in group])
            with contextlib.ExitStack() as files:
                sources: list[IO[bytes]] = []
                for job in group:
                    data = inline.get(bytes(job.record_id))
                    if data is not None:
                        sources.append(io.BytesIO(data))
                    else:
                        sources.append(files.enter_context(self._spools.open(job.record_id)))
                try:
                    cids = list(store_many(group, sources))
                except Exception:  # noqa: S112 - retried and reported below
                    continue
            with self._writes.tx():
                for job, cid in zip(group, cids, strict=True):
                    self._writes.set_state(job, JobState.STORED, cid=str(cid))

    # -- stored → append_sent → confirmed ---------------------------------------------

    def _append(
        self,
        group: Sequence[WriteJob],
        steps: WriteSteps,
        *,
        presealed: Presealed,
        confirms_on_send: bool,
    ) -> None:
        # The guard that makes appends exactly-once: an earlier attempt may have been mined
        # after we lost track of it (crash between send and the journal commit).
        maybe_sent = [j for j in group if bytes(j.record_id) not in self._unsent]
        done = steps.appended(maybe_sent) if maybe_sent else set()
        with self._writes.tx():
            for j in group:
                if j.record_id in done:
                    self._confirmed(j)
        todo = [j for j in group if j.record_id not in done]
        if not todo:
            return
        sealed = []
        for j in todo:
            if j.cid is None or j.secret is None:
                raise JournalError(f"record 0x{j.record_id.hex()} has no CID or secret")
            ahead = presealed.take(j)
            sealed.append(ahead if ahead is not None else steps.seal(j, j.cid, j.secret))
        self._unsent.difference_update(bytes(j.record_id) for j in todo)
        tx_hash = steps.send_append(todo, sealed)
        # Steps whose send waits for a successful receipt let us skip the confirm round.
        with self._writes.tx():
            for j in todo:
                if confirms_on_send:
                    self._confirmed(j, tx_hash=bytes(tx_hash))
                else:
                    self._writes.set_state(j, JobState.APPEND_SENT, tx_hash=bytes(tx_hash))

    def _confirm(self, sent: Sequence[WriteJob], steps: WriteSteps) -> None:
        by_tx: dict[bytes, list[WriteJob]] = {}
        for j in sent:
            by_tx.setdefault(j.tx_hash or b"", []).append(j)
        for tx_hash, group in by_tx.items():
            status = steps.receipt(tx_hash) if tx_hash else "failed"
            if status == "unknown":
                raise JournalError(f"transaction 0x{tx_hash.hex()} is not mined yet")
            done = steps.appended(group)
            with self._writes.tx():
                for j in group:
                    if j.record_id in done:
                        self._confirmed(j)
                    else:
                        # Failed or dropped and not in the index: send it again.
                        self._writes.set_state(j, JobState.STORED, tx_hash=None)

    def _confirmed(self, job: WriteJob, **values: bytes) -> None:
        self._writes.set_state(job, JobState.CONFIRMED, **values)
        self._spools.drop(job.record_id)
