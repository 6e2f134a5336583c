"""The :class:`Journal`: the write journal of one writer identity."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from emrshare._files import private_dir
from emrshare.journal._claims import Claims
from emrshare.journal._db import Writes, connect
from emrshare.journal._driver import Driver, OnProgress, RecoveryReport
from emrshare.journal._spool import INLINE_MAX, Spools
from emrshare.journal.steps import WriteJob, WriteSteps
from emrshare.types import RecordId


class Journal:
    """The write journal of one writer identity, in ``directory`` (``journal.db`` + ``spool/``).

    Several processes may open the same journal: a job is driven by one process at a time
    (the owner's pid is recorded; a dead owner's jobs are taken over).

    Example::

        journal = Journal(data_dir / "journal")
        job = journal.begin(patient, "lab", stream=stream, next_sequence=n,
                            record_id_of=record_id_of)
        journal.run([job], steps)          # → confirmed, or raises JournalError
        journal.recover(steps)             # finishes whatever an earlier crash left
    """

    def __init__(
        self,
        directory: Path,
        *,
        inline_max: int = INLINE_MAX,
        now: Callable[[], float] = time.time,
        retries: int = 2,
    ) -> None:
        self.directory = Path(directory)
        private_dir(self.directory)
        self._pid = os.getpid()
        self._db = connect(self.directory / "journal.db")
        self._writes = Writes(self._db, now)
        self._claims = Claims(self._writes, self._pid)
        spools = Spools(self.directory / "spool", self._writes, inline_max)
        self._driver = Driver(self._writes, spools, retries=retries)

    def close(self) -> None:
        """Close the database (jobs stay in their committed state)."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------

    def get(self, record_id: RecordId) -> WriteJob:
        """The committed state of one job."""
        return self._writes.get(record_id)

    def jobs(self, *, open_only: bool = False) -> list[WriteJob]:
        """All jobs (or only unfinished ones), by stream and slot."""
        return self._writes.all(open_only=open_only)

    def pending(self) -> list[WriteJob]:
        """Unfinished jobs not being driven by another live process."""
        return [j for j in self.jobs(open_only=True) if self._claims.claimable(j.record_id)]

    def same_content(self, patient: str, category: str, content: str) -> WriteJob | None:
        """The newest write (open or confirmed, not rolled back) whose ``meta["content"]``
        is ``content``, for ``patient`` and ``category``: how a writer recognises a record
        it was asked to write before (the journal does not interpret the digest)."""
        return self._writes.same_content(patient, category, content)

    def same_contents(
        self, patient: str, category: str, contents: Sequence[str]
    ) -> dict[str, WriteJob]:
        """:meth:`same_content` of each of ``contents``, by content (those found)."""
        return self._writes.same_contents(patient, category, contents)

    def claimable(self, record_id: RecordId) -> bool:
        """Whether no other live process is driving this job."""
        return self._claims.claimable(record_id)

    # -- writing ----------------------------------------------------------------------

    def begin(
        self,
        patient: str,
        category: str,
        *,
        stream: str,
        next_sequence: int,
        record_id_of: Callable[[int], RecordId],
        meta: Mapping[str, Any] | None = None,
        source: Path | None = None,
        unique_content: bool = False,
    ) -> WriteJob:
        """Record the intent to write one record (state ``pending``) and return its job.

        Records of one *stream* (one patient's index under one tag, written by one writer)
        take consecutive sequence numbers: the index contract accepts exactly sequence
        ``n`` after ``n - 1``, so a sequence number is a slot that can be filled once.
        ``next_sequence`` is the chain's next free slot; the journal allocates
        ``max(next_sequence, last slot it handed out + 1)`` and names the record
        ``record_id_of(sequence)``.

        ``source`` names a file the record can be re-read from if the process dies before
        the ciphertext is spooled; without it such a write is rolled back on recovery
        (the call never returned, so the caller still holds the content).

        ``unique_content``: refuse (:class:`JournalError`) if an open write of the same
        ``meta["content"]``, patient and category is in the journal, checked in the
        insert's own transaction (two processes adding the same content at once).
        """
        return self.begin_many(
            patient,
            category,
            [dict(meta or {})],
            stream=stream,
            next_sequence=next_sequence,
            record_id_of=record_id_of,
            sources=[source],
            unique_content=unique_content,
        )[0]

    def begin_many(
        self,
        patient: str,
        category: str,
        metas: Sequence[Mapping[str, Any]],
        *,
        stream: str,
        next_sequence: int,
        record_id_of: Callable[[int], RecordId],
        sources: Sequence[Path | None] | None = None,
        unique_content: bool = False,
    ) -> list[WriteJob]:
        """:meth:`begin` for ``len(metas)`` records with consecutive slots, in one transaction."""
        ids = self._writes.insert_pending(
            patient,
            category,
            metas,
            sources if sources is not None else [None] * len(metas),
            stream=stream,
            next_sequence=next_sequence,
            record_id_of=record_id_of,
            owner=self._pid,
            unique_content=unique_content,
        )
        self._driver.begun(ids)
        return self._writes.get_many(ids)

    # -- driving ----------------------------------------------------------------------

    def run(
        self,
        jobs: Sequence[WriteJob],
        steps: WriteSteps,
        *,
        batch_size: int = 50,
        progress: OnProgress | None = None,
    ) -> None:
        """Drive ``jobs`` to ``confirmed``; ``progress(done, total)``, if given, is called
        as the run starts and after each append batch: ``done`` of the ``total`` jobs are
        confirmed (it never decreases).

        Transient failures (storage or chain down, a crash) leave every job at its last
        committed state and raise :class:`JournalError`; run again or call
        :meth:`recover`. A permanent failure (see :func:`is_permanent`) rolls the affected
        jobs back (unpinning their blobs) and re-raises the original error.

        ``steps`` that also offer bulk capabilities (see :class:`BulkWriteSteps`) make
        writes of many jobs faster.
        """
        claimed = self._claims.claim([self.get(j.record_id) for j in jobs])
        try:
            self._driver.drive(claimed, steps, batch_size, progress)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._claims.release(claimed)

    def recover(
        self, steps: WriteSteps, *, rollback: bool = False, batch_size: int = 50
    ) -> RecoveryReport:
        """Finish (or, with ``rollback=True``, undo) every interrupted write.

        A write whose entry already reached the chain is always finished, never undone.
        Writes whose ciphertext was never spooled (the writer died while encrypting, so
        its caller got no answer and still holds the content) are rolled back.
        """
        claimed = self._claims.claim(self.pending())
        try:
            return self._driver.recover(claimed, steps, rollback=rollback, batch_size=batch_size)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._claims.release(claimed)
