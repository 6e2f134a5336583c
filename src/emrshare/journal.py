"""Exactly-once record writes: a local SQLite journal of the steps of ``add_record``.

Every write moves through these states, and each transition is committed to the journal
(SQLite in WAL mode) *before* the next step starts::

    pending ──encrypt──▶ encrypted ──store──▶ stored ──append──▶ append_sent ──▶ confirmed
       │                     │                  │                    │
       └───────────── rolled_back ◀─────────────┴────────────────────┘   (permanent failure)

- ``pending``: the intent (record id, patient, category) is recorded; nothing durable yet.
- ``encrypted``: the ciphertext is spooled in the journal (inline for small records, a
  file in ``spool/`` for large ones) together with an opaque *secret* the caller's steps
  protect (the data key sealed to the writer's own key). From here on the record can no
  longer be lost, even if the caller's source is gone.
- ``stored``: the ciphertext is pinned in storage under a CID.
- ``append_sent``: the index append transaction was sent; its hash is recorded.
- ``confirmed``: the entry is in the on-chain index; the spool is deleted.

Slots. The index contract numbers each writer's entries per (patient, tag) *stream* and
accepts sequence ``n`` only right after ``n - 1``; the record id is derived from the slot.
The journal hands out the slots (:meth:`Journal.begin`), so a record keeps its id across
retries, "is it appended?" is "is the chain's next slot past it?", and appends go out in
slot order, batched over consecutive slots.

The journal never touches crypto, storage or the chain itself: the work is done by a
:class:`WriteSteps` object (the facades build one from the crypto core, a ``BlobStore``
and the chain bindings). Duplicates are impossible because, before every append, the steps
are asked whether the record id is already in the index, and the index contract accepts a
record id only once. A crash or a chain/storage failure leaves the job in its last
committed state; :meth:`Journal.run` (called again by the next write) or
:meth:`Journal.recover` (``emrshare recover``) resumes it. A permanent failure (the
contract refuses the writer, say) rolls the job back and unpins its orphaned blob.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from emrshare._files import connect_sqlite, open_private_write, private_dir
from emrshare._process import pid_alive
from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    ContractRevert,
    CryptoError,
    EmrShareError,
    JournalError,
    WireFormatError,
)
from emrshare.types import Cid, RecordId

__all__ = [
    "INLINE_MAX",
    "Journal",
    "JobState",
    "ReceiptStatus",
    "RecoveryReport",
    "WriteJob",
    "WriteSteps",
    "is_permanent",
]

#: Ciphertexts up to this size are spooled inside the journal database; larger ones go to
#: a file next to it (bulk imports of small records then cost one SQLite commit per batch).
INLINE_MAX = 256 * 1024

ReceiptStatus = Literal["confirmed", "failed", "unknown"]


class JobState(StrEnum):
    """Where a journaled write stands."""

    PENDING = "pending"
    ENCRYPTED = "encrypted"
    STORED = "stored"
    APPEND_SENT = "append_sent"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"

    @property
    def finished(self) -> bool:
        return self in (JobState.CONFIRMED, JobState.ROLLED_BACK)


@dataclass(frozen=True, slots=True)
class WriteJob:
    """One journaled write, as last committed."""

    record_id: RecordId
    stream: str
    sequence: int
    patient: str
    category: str
    state: JobState
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    cid: Cid | None = None
    tx_hash: bytes | None = None
    attempts: int = 0
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # The opaque secret (e.g. the data key sealed to the writer) never appears in a repr.
    secret: bytes | None = field(default=None, repr=False)


class WriteSteps(Protocol):
    """The work behind each journal transition, supplied by the caller.

    Every method must be safe to call again after a crash (storing the same ciphertext
    twice yields the same CID; appends are guarded by :meth:`appended`).

    Optional attributes: ``confirms_on_send`` (see :meth:`send_append`),
    ``store_concurrency`` (bulk runs call :meth:`store` from that many threads at once;
    the store must be thread-safe) and ``store_many(jobs, ciphertexts) -> list[Cid]``
    (bulk runs store groups of blobs at once; it returns only when they are all durable,
    and it is preferred over ``store_concurrency``) and ``seal_many(jobs) ->
    Iterator[bytes | None]`` (bulk runs seal entries ahead of their appends; ``None``
    for a job makes the journal call :meth:`seal` for it).
    """

    def encrypt(self, job: WriteJob, sink: IO[bytes]) -> bytes:
        """Write the record's ciphertext to ``sink``; return the opaque secret to keep."""

    def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
        """Put and pin the ciphertext; return its CID."""

    def seal(self, job: WriteJob, cid: Cid, secret: bytes) -> bytes:
        """Build and seal the index entry for ``job`` (its blob is stored under ``cid``)."""

    def appended(self, jobs: Sequence[WriteJob]) -> set[RecordId]:
        """Which of these record ids are already in the on-chain index."""

    def send_append(self, jobs: Sequence[WriteJob], sealed: Sequence[bytes]) -> bytes:
        """Send one (batch) append transaction for ``jobs``; return its hash.

        Steps with a true ``confirms_on_send`` attribute return only once the transaction
        was mined successfully (and raise otherwise); the journal then skips
        :meth:`receipt`.
        """

    def receipt(self, tx_hash: bytes) -> ReceiptStatus:
        """Wait for the transaction: mined and successful, failed/dropped, or still unknown."""

    def unpin(self, cid: Cid) -> None:
        """Unpin an orphaned blob (its entry never reached the index)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: the write must be rolled back and the error reported.

    Contract reverts, refusals, crypto and format errors and bad configuration are
    permanent; storage and chain outages, timeouts and crashes are not.
    """
    return isinstance(
        exc, ContractRevert | AccessDenied | CryptoError | WireFormatError | ConfigurationError
    )


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Journal.recover` did."""

    confirmed: list[RecordId] = field(default_factory=list)
    rolled_back: list[RecordId] = field(default_factory=list)
    failed: dict[RecordId, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    record_id  BLOB PRIMARY KEY,
    stream     TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    patient    TEXT NOT NULL,
    category   TEXT NOT NULL,
    state      TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',
    source     TEXT,
    secret     BLOB,
    ciphertext BLOB,
    spool      TEXT,
    cid        TEXT,
    tx_hash    BLOB,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    owner      INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_stream ON writes(stream, sequence);
CREATE INDEX IF NOT EXISTS writes_open ON writes(state) WHERE state NOT IN
    ('confirmed', 'rolled_back');
"""

_COLUMNS = (
    "record_id, stream, sequence, patient, category, state, meta, source, secret, cid, "
    "tx_hash, attempts, last_error, created_at, updated_at"
)


#: Ids per ``IN (...)`` query (well under SQLite's bound-parameter limit).
_QUERY_CHUNK = 500
#: Encrypted jobs committed to the journal per SQLite transaction in a bulk write.
_ENCRYPT_GROUP = 64
#: Blobs per ``store_many`` call in a bulk write (one durability round each).
_STORE_GROUP = 256


class _Spool:
    """A write sink that stays in memory up to ``INLINE_MAX`` and then rolls to a file."""

    def __init__(self, path: Path, inline_max: int) -> None:
        self._path = path
        self._inline_max = inline_max
        self._mem: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._mem is not None and self._mem.tell() + len(data) > self._inline_max:
            private_dir(self._path.parent)
            self._file = os.fdopen(open_private_write(self._path), "wb")
            self._file.write(self._mem.getvalue())
            self._mem = None
        if self._file is not None:
            return self._file.write(data)
        assert self._mem is not None
        return self._mem.write(data)

    def finish(self) -> tuple[bytes | None, Path | None]:
        """Close the sink: ``(inline bytes, None)`` or ``(None, durable file path)``."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            return None, self._path
        assert self._mem is not None
        return self._mem.getvalue(), None

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


class _SinkAdapter(io.RawIOBase):
    """Presents a :class:`_Spool` as a writable binary file object."""

    def __init__(self, spool: _Spool) -> None:
        super().__init__()
        self._spool = spool

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return self._spool.write(bytes(b))


class Journal:
    """The write journal of one writer identity, in ``directory`` (``journal.db`` + ``spool/``).

    Several processes may open the same journal: a job is driven by one process at a time
    (the owner's pid is recorded; a dead owner's jobs are taken over).

    Example::

        journal = Journal(data_dir / "journal")
        job = journal.begin(record_id, patient, "lab")
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
        self._spool_dir = self.directory / "spool"
        self._inline_max = inline_max
        self._now = now
        self._retries = retries
        self._pid = os.getpid()
        # Writes begun by this object and never handed to ``send_append``: nobody can have
        # appended them, so the chain need not be asked before their first send.
        self._unsent: set[bytes] = set()
        self._db = connect_sqlite(
            self.directory / "journal.db",
            "write journal",
            _SCHEMA,
            timeout=30.0,
            isolation_level=None,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: every commit survives the process being killed; a power cut
        # may lose the newest transitions, which recovery re-derives from the chain and
        # the store (the sources of truth once a write got that far). FULL would add an
        # fsync per transition, five per record.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

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
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM writes WHERE record_id = ?",  # noqa: S608 - fixed columns
            (bytes(record_id),),
        ).fetchone()
        if row is None:
            raise JournalError(f"no journaled write for record 0x{bytes(record_id).hex()}")
        return self._job(row)

    def jobs(self, *, open_only: bool = False) -> list[WriteJob]:
        """All jobs (or only unfinished ones), oldest first."""
        where = "WHERE state NOT IN ('confirmed', 'rolled_back')" if open_only else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM writes {where} ORDER BY stream, sequence"  # noqa: S608
        ).fetchall()
        return [self._job(r) for r in rows]

    def pending(self) -> list[WriteJob]:
        """Unfinished jobs not being driven by another live process."""
        return [j for j in self.jobs(open_only=True) if self._claimable(j.record_id)]

    @staticmethod
    def _job(row: tuple[Any, ...]) -> WriteJob:
        return WriteJob(
            record_id=RecordId(bytes(row[0])),
            stream=row[1],
            sequence=int(row[2]),
            patient=row[3],
            category=row[4],
            state=JobState(row[5]),
            meta=json.loads(row[6]),
            source=Path(row[7]) if row[7] else None,
            secret=bytes(row[8]) if row[8] is not None else None,
            cid=Cid(row[9]) if row[9] else None,
            tx_hash=bytes(row[10]) if row[10] is not None else None,
            attempts=int(row[11]),
            last_error=row[12],
            created_at=float(row[13]),
            updated_at=float(row[14]),
        )

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
        """
        return self.begin_many(
            patient,
            category,
            [dict(meta or {})],
            stream=stream,
            next_sequence=next_sequence,
            record_id_of=record_id_of,
            sources=[source],
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
    ) -> list[WriteJob]:
        """:meth:`begin` for ``len(metas)`` records with consecutive slots, in one transaction."""
        now = self._now()
        ids: list[RecordId] = []
        with self._tx():
            # Confirmed slots are already counted in the chain's ``next_sequence``; only
            # slots handed to unfinished writes are ahead of it.
            (last,) = self._db.execute(
                "SELECT MAX(sequence) FROM writes WHERE stream = ?"
                " AND state NOT IN ('rolled_back', 'confirmed')",
                (stream,),
            ).fetchone()
            first = max(next_sequence, last + 1 if last is not None else 0)
            for i, meta in enumerate(metas):
                record_id = record_id_of(first + i)
                source = sources[i] if sources is not None else None
                # A rolled-back write freed its slot; the new record takes it over. (A
                # confirmed row for a free slot means the chain was reset: a devnet.)
                self._db.execute(
                    "DELETE FROM writes WHERE record_id = ?"
                    " AND state IN ('rolled_back', 'confirmed')",
                    (bytes(record_id),),
                )
                try:
                    self._db.execute(
                        "INSERT INTO writes (record_id, stream, sequence, patient, category,"
                        " state, meta, source, owner, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            bytes(record_id),
                            stream,
                            first + i,
                            patient,
                            category,
                            JobState.PENDING.value,
                            json.dumps(dict(meta), sort_keys=True),
                            str(source) if source is not None else None,
                            self._pid,
                            now,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise JournalError(
                        f"record 0x{bytes(record_id).hex()} is already in the journal; "
                        "run `emrshare recover` to finish it"
                    ) from exc
                ids.append(record_id)
        self._unsent.update(bytes(i) for i in ids)
        return self._get_many(ids)

    def _states(self, record_ids: Sequence[RecordId]) -> list[tuple[RecordId, str]]:
        """The committed state of each id, in order (cheaper than whole rows)."""
        found: dict[bytes, str] = {}
        for start in range(0, len(record_ids), _QUERY_CHUNK):
            chunk = [bytes(r) for r in record_ids[start : start + _QUERY_CHUNK]]
            marks = ", ".join("?" * len(chunk))
            for rid, state in self._db.execute(
                f"SELECT record_id, state FROM writes WHERE record_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[bytes(rid)] = state
        missing = [r for r in record_ids if bytes(r) not in found]
        if missing:
            raise JournalError(f"no journaled write for record 0x{bytes(missing[0]).hex()}")
        return [(r, found[bytes(r)]) for r in record_ids]

    def _get_many(self, record_ids: Sequence[RecordId]) -> list[WriteJob]:
        """:meth:`get` for many ids, a few queries instead of one per id (same order)."""
        found: dict[bytes, WriteJob] = {}
        for start in range(0, len(record_ids), _QUERY_CHUNK):
            chunk = [bytes(r) for r in record_ids[start : start + _QUERY_CHUNK]]
            marks = ", ".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM writes WHERE record_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[bytes(row[0])] = self._job(row)
        missing = [r for r in record_ids if bytes(r) not in found]
        if missing:
            raise JournalError(f"no journaled write for record 0x{bytes(missing[0]).hex()}")
        return [found[bytes(r)] for r in record_ids]

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _update(self, record_id: RecordId, **values: Any) -> None:
        values["updated_at"] = self._now()
        cols = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(
            f"UPDATE writes SET {cols} WHERE record_id = ?",  # noqa: S608 - fixed keys
            (*values.values(), bytes(record_id)),
        )

    def _claimable(self, record_id: RecordId) -> bool:
        row = self._db.execute(
            "SELECT owner FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        owner = row[0] if row else None
        return owner is None or owner == self._pid or not pid_alive(int(owner))

    def _claim(self, jobs: Sequence[WriteJob]) -> list[WriteJob]:
        claimed: list[WriteJob] = []
        with self._tx():
            for job in jobs:
                if self._claimable(job.record_id):
                    self._db.execute(
                        "UPDATE writes SET owner = ? WHERE record_id = ?",
                        (self._pid, bytes(job.record_id)),
                    )
                    claimed.append(job)
        return claimed

    def _release(self, jobs: Sequence[WriteJob]) -> None:
        with self._tx():
            for job in jobs:
                self._db.execute(
                    "UPDATE writes SET owner = NULL WHERE record_id = ? AND owner = ?",
                    (bytes(job.record_id), self._pid),
                )

    def _ciphertext(self, record_id: RecordId) -> IO[bytes]:
        row = self._db.execute(
            "SELECT ciphertext, spool FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        if row is None or (row[0] is None and row[1] is None):
            raise JournalError(f"the spooled ciphertext of record 0x{record_id.hex()} is missing")
        if row[0] is not None:
            return io.BytesIO(bytes(row[0]))
        try:
            return Path(row[1]).open("rb")
        except FileNotFoundError as exc:
            raise JournalError(
                f"the spool file {row[1]} of record 0x{record_id.hex()} is missing"
            ) from exc

    def _drop_spool(self, record_id: RecordId) -> None:
        row = self._db.execute(
            "SELECT spool FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        if row and row[0]:
            with contextlib.suppress(FileNotFoundError):
                Path(row[0]).unlink()
        self._update(record_id, ciphertext=None, spool=None, secret=None)

    # -- driving ----------------------------------------------------------------------

    def run(self, jobs: Sequence[WriteJob], steps: WriteSteps, *, batch_size: int = 50) -> None:
        """Drive ``jobs`` to ``confirmed``.

        Transient failures (storage or chain down, a crash) leave every job at its last
        committed state and raise :class:`JournalError`; run again or call
        :meth:`recover`. A permanent failure (see :func:`is_permanent`) rolls the affected
        jobs back (unpinning their blobs) and re-raises the original error.
        """
        claimed = self._claim([self.get(j.record_id) for j in jobs])
        try:
            self._drive(claimed, steps, batch_size)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._release(claimed)

    def recover(
        self, steps: WriteSteps, *, rollback: bool = False, batch_size: int = 50
    ) -> RecoveryReport:
        """Finish (or, with ``rollback=True``, undo) every interrupted write.

        A write whose entry already reached the chain is always finished, never undone.
        Writes whose ciphertext was never spooled (the writer died while encrypting, so
        its caller got no answer and still holds the content) are rolled back.
        """
        report = RecoveryReport()
        claimed = self._claim(self.pending())
        try:
            live: list[WriteJob] = []
            for job in claimed:
                if job.state is JobState.PENDING and job.source is None:
                    self._rollback(job, steps, "interrupted before the ciphertext was spooled")
                else:
                    live.append(job)
            error: str | None = None
            try:
                if rollback:
                    self._rollback_unless_appended(live, steps)
                else:
                    self._drive(live, steps, batch_size)
            except EmrShareError as exc:
                error = str(exc)
            for job in claimed:
                final = self.get(job.record_id)
                if final.state is JobState.CONFIRMED:
                    report.confirmed.append(job.record_id)
                elif final.state is JobState.ROLLED_BACK:
                    report.rolled_back.append(job.record_id)
                else:
                    report.failed[job.record_id] = final.last_error or error or "not finished"
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._release(claimed)
        return report

    def _rollback_unless_appended(self, jobs: Sequence[WriteJob], steps: WriteSteps) -> None:
        maybe_sent = [j for j in jobs if j.state in (JobState.STORED, JobState.APPEND_SENT)]
        done = steps.appended(maybe_sent) if maybe_sent else set()
        # Newest slot first, so a stream never has a rolled-back slot below a live one.
        for j in sorted(jobs, key=lambda j: (j.stream, -j.sequence)):
            if j.record_id in done:
                self._set_state(j, JobState.CONFIRMED)
                self._drop_spool(j.record_id)
            else:
                self._rollback(j, steps, "rolled back by request")

    def _set_state(self, job: WriteJob, state: JobState, **values: Any) -> None:
        self._update(job.record_id, state=state.value, last_error=None, **values)

    def _fail(self, jobs: Sequence[WriteJob], exc: BaseException) -> None:
        with self._tx():
            for job in jobs:
                self._db.execute(
                    "UPDATE writes SET attempts = attempts + 1, last_error = ?, updated_at = ?"
                    " WHERE record_id = ?",
                    (f"{type(exc).__name__}: {exc}", self._now(), bytes(job.record_id)),
                )

    def _rollback(self, job: WriteJob, steps: WriteSteps, reason: str) -> None:
        current = self.get(job.record_id)
        # Best effort: a store that is down now leaves an orphan that storage GC of
        # unpinned blocks covers; the rollback itself must stand.
        with contextlib.suppress(EmrShareError, OSError):
            cid = current.cid
            if cid is None and current.state is JobState.ENCRYPTED:
                # We may have died right after the put: storing the spooled ciphertext
                # again is idempotent and tells us the CID to unpin.
                with self._ciphertext(job.record_id) as ciphertext:
                    cid = steps.store(current, ciphertext)
            if cid is not None:
                steps.unpin(cid)
        self._drop_spool(job.record_id)
        self._update(job.record_id, state=JobState.ROLLED_BACK.value, last_error=reason[:500])

    def _guarded(
        self,
        group: Sequence[WriteJob],
        steps: WriteSteps,
        action: Callable[[Sequence[WriteJob], WriteSteps], None],
    ) -> None:
        if not group:
            return
        try:
            action(group, steps)
        except Exception as exc:
            if is_permanent(exc):
                for j in group:
                    if not self.get(j.record_id).state.finished:
                        self._rollback(j, steps, f"{type(exc).__name__}: {exc}")
                raise
            self._fail(group, exc)
            more = f" and {len(group) - 1} more" if len(group) > 1 else ""
            raise JournalError(
                f"the write of record 0x{group[0].record_id.hex()}{more} was interrupted "
                f"({type(exc).__name__}: {exc}); it is safe in the journal: run "
                "`emrshare recover` (or write again) to finish it"
            ) from exc

    def _drive(self, jobs: Sequence[WriteJob], steps: WriteSteps, batch_size: int) -> None:
        ids = [j.record_id for j in jobs]

        def current(*states: JobState) -> list[WriteJob]:
            # Always act on the committed rows, never on the caller's stale copies.
            wanted = {s.value for s in states}
            return self._get_many([i for i, state in self._states(ids) if state in wanted])

        self._encrypt_all(current(JobState.PENDING), steps)
        encrypted = current(JobState.ENCRYPTED)
        workers = int(getattr(steps, "store_concurrency", 1))
        if len(encrypted) > 1 and callable(getattr(steps, "store_many", None)):
            self._store_grouped(encrypted, steps)
        elif workers > 1 and len(encrypted) > 1:
            self._store_parallel(encrypted, steps, workers)
        for job in current(JobState.ENCRYPTED):
            self._guarded([job], steps, self._store)
        for _ in range(self._retries + 1):
            if not current(JobState.STORED, JobState.APPEND_SENT):
                break
            self._guarded(current(JobState.APPEND_SENT), steps, self._confirm)
            unstored = current(JobState.PENDING, JobState.ENCRYPTED)
            batches = _append_batches(current(JobState.STORED), unstored, batch_size)
            presealed = _Presealed(
                steps, [j for b in batches for j in b] if len(batches) > 1 else []
            )
            try:
                for group in batches:
                    self._guarded(
                        group, steps, functools.partial(self._append, presealed=presealed)
                    )
            finally:
                presealed.close()
            self._guarded(current(JobState.APPEND_SENT), steps, self._confirm)
        left = current(JobState.PENDING, JobState.ENCRYPTED, JobState.STORED, JobState.APPEND_SENT)
        if left:
            raise JournalError(
                f"{len(left)} write(s) did not confirm after {self._retries + 1} attempts; "
                "they are safe in the journal: run `emrshare recover` later"
            )

    def _encrypt_all(self, jobs: Sequence[WriteJob], steps: WriteSteps) -> None:
        """Encrypt ``jobs`` one by one, committing them as ``encrypted`` in groups.

        A job counts as encrypted only once its group is committed, and every group is
        committed before this returns or raises, so nothing is stored before its
        ciphertext is safe in the journal.
        """
        done: list[tuple[WriteJob, bytes, bytes | None, Path | None]] = []

        def one(group: Sequence[WriteJob], steps: WriteSteps) -> None:
            done.append(self._encrypt_one(group[0], steps))

        try:
            for job in jobs:
                self._guarded([job], steps, one)
                if len(done) >= _ENCRYPT_GROUP:
                    self._commit_encrypted(done)
        finally:
            self._commit_encrypted(done)

    def _encrypt_one(
        self, job: WriteJob, steps: WriteSteps
    ) -> tuple[WriteJob, bytes, bytes | None, Path | None]:
        spool = _Spool(self._spool_dir / f"{job.record_id.hex()}.bin", self._inline_max)
        sink = io.BufferedWriter(_SinkAdapter(spool))
        try:
            secret = steps.encrypt(job, sink)
            sink.flush()
            inline, path = spool.finish()
        except BaseException:
            spool.discard()
            raise
        return job, secret, inline, path

    def _commit_encrypted(
        self, done: list[tuple[WriteJob, bytes, bytes | None, Path | None]]
    ) -> None:
        if not done:
            return
        with self._tx():
            for job, secret, inline, path in done:
                self._set_state(
                    job,
                    JobState.ENCRYPTED,
                    secret=secret,
                    ciphertext=inline,
                    spool=str(path) if path is not None else None,
                )
        done.clear()

    def _encrypt(self, group: Sequence[WriteJob], steps: WriteSteps) -> None:
        done = [self._encrypt_one(group[0], steps)]
        self._commit_encrypted(done)

    def _store(self, group: Sequence[WriteJob], steps: WriteSteps) -> None:
        (job,) = group
        with self._ciphertext(job.record_id) as ciphertext:
            cid = steps.store(job, ciphertext)
        self._set_state(job, JobState.STORED, cid=str(cid))

    def _store_parallel(self, jobs: Sequence[WriteJob], steps: WriteSteps, workers: int) -> None:
        """Store many blobs concurrently (a store's fsyncs overlap); the journal itself is
        only touched from this thread. Failures are left for the sequential pass, which
        reports them."""
        from concurrent.futures import ThreadPoolExecutor

        def put(job: WriteJob, data: bytes | None) -> Cid:
            if data is not None:
                return steps.store(job, io.BytesIO(data))
            with self._spool_file(job.record_id) as fh:
                return steps.store(job, fh)

        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(jobs), 4 * workers):
                chunk = jobs[start : start + 4 * workers]
                futures = [(j, pool.submit(put, j, self._inline(j.record_id))) for j in chunk]
                with self._tx():
                    for job, fut in futures:
                        try:
                            cid = fut.result()
                        except Exception:  # noqa: S112 - retried and reported below
                            continue
                        self._set_state(job, JobState.STORED, cid=str(cid))

    def _store_grouped(self, jobs: Sequence[WriteJob], steps: Any) -> None:
        """Store blobs in groups through the steps' optional ``store_many`` (one
        durability round per group). A group is marked ``stored`` only after
        ``store_many`` returned, i.e. once its blobs are durable. Failures are left for
        the sequential pass, which retries and reports them."""
        for start in range(0, len(jobs), _STORE_GROUP):
            group = jobs[start : start + _STORE_GROUP]
            inline = self._inline_many([j.record_id for j in group])
            with contextlib.ExitStack() as files:
                sources: list[IO[bytes]] = []
                for job in group:
                    data = inline.get(bytes(job.record_id))
                    if data is not None:
                        sources.append(io.BytesIO(data))
                    else:
                        sources.append(files.enter_context(self._ciphertext(job.record_id)))
                try:
                    cids = list(steps.store_many(group, sources))
                except Exception:  # noqa: S112 - retried and reported below
                    continue
            with self._tx():
                for job, cid in zip(group, cids, strict=True):
                    self._set_state(job, JobState.STORED, cid=str(cid))

    def _inline_many(self, record_ids: Sequence[RecordId]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for start in range(0, len(record_ids), _QUERY_CHUNK):
            chunk = [bytes(r) for r in record_ids[start : start + _QUERY_CHUNK]]
            marks = ", ".join("?" * len(chunk))
            for rid, data in self._db.execute(
                f"SELECT record_id, ciphertext FROM writes WHERE record_id IN ({marks})"  # noqa: S608
                " AND ciphertext IS NOT NULL",
                chunk,
            ):
                out[bytes(rid)] = bytes(data)
        return out

    def _inline(self, record_id: RecordId) -> bytes | None:
        row = self._db.execute(
            "SELECT ciphertext FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def _spool_file(self, record_id: RecordId) -> IO[bytes]:
        path = self._spool_dir / f"{record_id.hex()}.bin"
        return path.open("rb")

    def _append(
        self,
        group: Sequence[WriteJob],
        steps: WriteSteps,
        *,
        presealed: _Presealed | None = None,
    ) -> None:
        # The guard that makes appends exactly-once: an earlier attempt may have been mined
        # after we lost track of it (crash between send and the journal commit).
        maybe_sent = [j for j in group if bytes(j.record_id) not in self._unsent]
        done = steps.appended(maybe_sent) if maybe_sent else set()
        with self._tx():
            for j in group:
                if j.record_id in done:
                    self._set_state(j, JobState.CONFIRMED)
                    self._drop_spool(j.record_id)
        todo = [j for j in group if j.record_id not in done]
        if not todo:
            return
        sealed = []
        for j in todo:
            if j.cid is None or j.secret is None:
                raise JournalError(f"record 0x{j.record_id.hex()} has no CID or secret")
            ahead = presealed.take(j) if presealed is not None else None
            sealed.append(ahead if ahead is not None else steps.seal(j, j.cid, j.secret))
        self._unsent.difference_update(bytes(j.record_id) for j in todo)
        tx_hash = steps.send_append(todo, sealed)
        # Steps whose send waits for a successful receipt let us skip the confirm round.
        mined = bool(getattr(steps, "confirms_on_send", False))
        with self._tx():
            for j in todo:
                state = JobState.CONFIRMED if mined else JobState.APPEND_SENT
                self._set_state(j, state, tx_hash=bytes(tx_hash))
                if mined:
                    self._drop_spool(j.record_id)

    def _confirm(self, sent: Sequence[WriteJob], steps: WriteSteps) -> None:
        if not sent:
            return
        by_tx: dict[bytes, list[WriteJob]] = {}
        for j in sent:
            by_tx.setdefault(j.tx_hash or b"", []).append(j)
        for tx_hash, group in by_tx.items():
            status = steps.receipt(tx_hash) if tx_hash else "failed"
            if status == "unknown":
                raise JournalError(f"transaction 0x{tx_hash.hex()} is not mined yet")
            done = steps.appended(group)
            with self._tx():
                for j in group:
                    if j.record_id in done:
                        self._set_state(j, JobState.CONFIRMED)
                        self._drop_spool(j.record_id)
                    else:
                        # Failed or dropped and not in the index: send it again.
                        self._set_state(j, JobState.STORED, tx_hash=None)


class _Presealed:
    """Index entries sealed ahead of their appends by the steps' optional
    ``seal_many(jobs) -> Iterator[bytes | None]`` (in job order, e.g. on other cores
    while this thread sends the previous batch).

    :meth:`take` answers ``None`` whenever no sealed entry is ready for a job (no
    ``seal_many``, a job it skipped or failed on, the iterator ended): the caller then
    seals that job itself with ``steps.seal``, so errors surface exactly as without it.
    """

    def __init__(self, steps: WriteSteps, jobs: Sequence[WriteJob]) -> None:
        seal_many = getattr(steps, "seal_many", None)
        ready = [j for j in jobs if j.cid is not None and j.secret is not None]
        self._ids = iter([bytes(j.record_id) for j in ready])
        self._it: Iterator[bytes | None] | None = (
            iter(seal_many(ready)) if callable(seal_many) and ready else None
        )

    def take(self, job: WriteJob) -> bytes | None:
        want = bytes(job.record_id)
        while self._it is not None:
            rid = next(self._ids, None)
            try:
                sealed = next(self._it) if rid is not None else None
            except Exception:  # the caller's own seal reports it
                sealed = None
                rid = None
            if rid is None:
                self.close()
                return None
            if rid == want:
                return sealed
        return None

    def close(self) -> None:
        it, self._it = self._it, None
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _append_batches(
    stored: Sequence[WriteJob], unstored: Sequence[WriteJob], batch_size: int
) -> list[list[WriteJob]]:
    """Split stored jobs into appendable batches: one stream, consecutive slots, in order.

    A stream's jobs after a slot that is not stored yet wait: the contract would refuse
    them (slots are filled strictly in order).
    """
    blocked: dict[str, int] = {}
    for job in unstored:
        blocked[job.stream] = min(blocked.get(job.stream, job.sequence), job.sequence)
    batches: list[list[WriteJob]] = []
    for job in sorted(stored, key=lambda j: (j.stream, j.sequence)):
        if job.sequence > blocked.get(job.stream, job.sequence):
            continue
        last = batches[-1] if batches else None
        if (
            last is not None
            and last[-1].stream == job.stream
            and last[-1].sequence + 1 == job.sequence
            and len(last) < batch_size
        ):
            last.append(job)
        else:
            batches.append([job])
    return batches
