"""The journal's SQLite database: the ``writes`` table, its connection and row access.

One row per write. The schema is that of the first release; existing journals open
unchanged (the writer's keyed digest of a record's content lives in ``meta``: see
:meth:`Writes.same_content`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from emrshare._files import connect_sqlite
from emrshare.errors import JournalError
from emrshare.journal.steps import JobState, WriteJob
from emrshare.types import Cid, RecordId

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS writes_content ON writes(json_extract(meta, '$.content'), patient,
    category);
"""

_COLUMNS = (
    "record_id, stream, sequence, patient, category, state, meta, source, secret, cid, "
    "tx_hash, attempts, last_error, created_at, updated_at"
)

#: Ids per ``IN (...)`` query (well under SQLite's bound-parameter limit).
_QUERY_CHUNK = 500


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the journal database ``path`` in autocommit mode: every
    transaction is an explicit :meth:`Writes.tx`."""
    # Any thread may use it (a facade's writes move between threads), one at a time: the
    # record writer serializes them.
    db = connect_sqlite(
        path,
        "write journal",
        SCHEMA,
        timeout=30.0,
        isolation_level=None,
        check_same_thread=False,
    )
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: every commit survives the process being killed; a power cut
    # may lose the newest transitions, which recovery re-derives from the chain and
    # the store (the sources of truth once a write got that far). FULL would add an
    # fsync per transition, five per record.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class Writes:
    """Reads and updates of the ``writes`` table over one connection (one thread)."""

    def __init__(self, db: sqlite3.Connection, now: Callable[[], float]) -> None:
        self._db = db
        self._now = now

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """One SQLite transaction, taken with the write lock held from the start."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- jobs -------------------------------------------------------------------------

    def get(self, record_id: RecordId) -> WriteJob:
        """The committed state of one job."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM writes WHERE record_id = ?",  # noqa: S608 - fixed columns
            (bytes(record_id),),
        ).fetchone()
        if row is None:
            raise JournalError(f"no journaled write for record 0x{bytes(record_id).hex()}")
        return _job(row)

    def get_many(self, record_ids: Sequence[RecordId]) -> list[WriteJob]:
        """:meth:`get` for many ids, a few queries instead of one per id (same order)."""
        found = {bytes(row[0]): _job(row) for row in self._rows(_COLUMNS, record_ids)}
        _check_found(record_ids, found)
        return [found[bytes(r)] for r in record_ids]

    def states(self, record_ids: Sequence[RecordId]) -> list[tuple[RecordId, str]]:
        """The committed state of each id, in order (cheaper than whole rows)."""
        found = {bytes(rid): state for rid, state in self._rows("record_id, state", record_ids)}
        _check_found(record_ids, found)
        return [(r, found[bytes(r)]) for r in record_ids]

    def all(self, *, open_only: bool = False) -> list[WriteJob]:
        """All jobs (or only unfinished ones), by stream and slot."""
        where = "WHERE state NOT IN ('confirmed', 'rolled_back')" if open_only else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM writes {where} ORDER BY stream, sequence"  # noqa: S608
        ).fetchall()
        return [_job(r) for r in rows]

    def same_content(self, patient: str, category: str, content: str) -> WriteJob | None:
        """The newest write, not rolled back, of ``content`` (an opaque digest the caller
        keeps in ``meta["content"]``) for ``patient`` and ``category``; ``None`` if none."""
        return self.same_contents(patient, category, [content]).get(content)

    def same_contents(
        self, patient: str, category: str, contents: Sequence[str]
    ) -> dict[str, WriteJob]:
        """:meth:`same_content` of many contents at once (one indexed query per chunk)."""
        out: dict[str, WriteJob] = {}
        for i in range(0, len(contents), _QUERY_CHUNK):
            chunk = list(contents[i : i + _QUERY_CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, json_extract(meta, '$.content') FROM writes"  # noqa: S608
                f" WHERE json_extract(meta, '$.content') IN ({marks})"
                " AND patient = ? AND category = ? AND state != 'rolled_back'"
                " ORDER BY created_at, sequence",
                (*chunk, patient, category),
            ).fetchall()
            for row in rows:  # the newest last: it wins
                out[str(row[-1])] = _job(row[:-1])
        return out

    def _refuse_open_same(self, patient: str, category: str, content: str) -> None:
        row = self._db.execute(
            "SELECT record_id FROM writes WHERE json_extract(meta, '$.content') = ?"
            " AND patient = ? AND category = ? AND state NOT IN ('confirmed', 'rolled_back')",
            (content, patient, category),
        ).fetchone()
        if row is not None:
            raise JournalError(
                f"record 0x{bytes(row[0]).hex()} of the same content is being written by "
                "another process; wait for it to finish"
            )

    def insert_pending(
        self,
        patient: str,
        category: str,
        metas: Sequence[Mapping[str, Any]],
        sources: Sequence[Path | None],
        *,
        stream: str,
        next_sequence: int,
        record_id_of: Callable[[int], RecordId],
        owner: int,
        unique_content: bool = False,
    ) -> list[RecordId]:
        """Add one ``pending`` row per meta on consecutive free slots of ``stream``, in one
        transaction; return their record ids (see :meth:`Journal.begin`)."""
        now = self._now()
        ids: list[RecordId] = []
        with self.tx():
            # Confirmed slots are already counted in the chain's ``next_sequence``; only
            # slots handed to unfinished writes are ahead of it.
            (last,) = self._db.execute(
                "SELECT MAX(sequence) FROM writes WHERE stream = ?"
                " AND state NOT IN ('rolled_back', 'confirmed')",
                (stream,),
            ).fetchone()
            first = max(next_sequence, last + 1 if last is not None else 0)
            # Against the writes begun before this call only: files of one batch that
            # happen to be identical are each written, as they were asked for together.
            for meta in metas if unique_content else ():
                if meta.get("content") is not None:
                    self._refuse_open_same(patient, category, str(meta["content"]))
            for i, (meta, source) in enumerate(zip(metas, sources, strict=True)):
                record_id = record_id_of(first + i)
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
                            owner,
                            now,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise JournalError(
                        f"record 0x{bytes(record_id).hex()} is already in the journal; "
                        "recover() finishes it"
                    ) from exc
                ids.append(record_id)
        return ids

    def update(self, record_id: RecordId, **values: Any) -> None:
        """Set columns of one row (``updated_at`` too); the caller holds a :meth:`tx`
        when several updates must land together."""
        values["updated_at"] = self._now()
        cols = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(
            f"UPDATE writes SET {cols} WHERE record_id = ?",  # noqa: S608 - fixed keys
            (*values.values(), bytes(record_id)),
        )

    def set_state(self, job: WriteJob, state: JobState, **values: Any) -> None:
        """Move one job to ``state`` (clearing its last error), with other columns."""
        self.update(job.record_id, state=state.value, last_error=None, **values)

    def fail(self, jobs: Sequence[WriteJob], exc: BaseException) -> None:
        """Count a failed attempt on each job and keep the error, in one transaction."""
        with self.tx():
            for job in jobs:
                self._db.execute(
                    "UPDATE writes SET attempts = attempts + 1, last_error = ?, updated_at = ?"
                    " WHERE record_id = ?",
                    (f"{type(exc).__name__}: {exc}", self._now(), bytes(job.record_id)),
                )

    # -- spooled ciphertexts ----------------------------------------------------------

    def spooled(self, record_id: RecordId) -> tuple[bytes | None, str | None] | None:
        """Where a job's ciphertext is kept: ``(inline bytes, spool file path)``, either
        possibly ``None``; ``None`` if there is no such job."""
        row = self._db.execute(
            "SELECT ciphertext, spool FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        if row is None:
            return None
        return (bytes(row[0]) if row[0] is not None else None), row[1]

    def inline_many(self, record_ids: Sequence[RecordId]) -> dict[bytes, bytes]:
        """The ciphertexts kept inside the database, by record id (spooled ones absent)."""
        out: dict[bytes, bytes] = {}
        for rid, data in self._rows("record_id, ciphertext", record_ids):
            if data is not None:
                out[bytes(rid)] = bytes(data)
        return out

    # -- owners -----------------------------------------------------------------------

    def owner(self, record_id: RecordId) -> int | None:
        """The pid recorded as driving a job, if any."""
        row = self._db.execute(
            "SELECT owner FROM writes WHERE record_id = ?", (bytes(record_id),)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def set_owner(self, record_id: RecordId, pid: int) -> None:
        self._db.execute("UPDATE writes SET owner = ? WHERE record_id = ?", (pid, bytes(record_id)))

    def clear_owner(self, record_id: RecordId, pid: int) -> None:
        """Forget the owner of a job if it is still ``pid``."""
        self._db.execute(
            "UPDATE writes SET owner = NULL WHERE record_id = ? AND owner = ?",
            (bytes(record_id), pid),
        )

    def _rows(self, columns: str, record_ids: Sequence[RecordId]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(record_ids), _QUERY_CHUNK):
            chunk = [bytes(r) for r in record_ids[start : start + _QUERY_CHUNK]]
            marks = ", ".join("?" * len(chunk))
            rows += self._db.execute(
                f"SELECT {columns} FROM writes WHERE record_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
        return rows


def _check_found(record_ids: Sequence[RecordId], found: Mapping[bytes, object]) -> None:
    missing = [r for r in record_ids if bytes(r) not in found]
    if missing:
        raise JournalError(f"no journaled write for record 0x{bytes(missing[0]).hex()}")


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
