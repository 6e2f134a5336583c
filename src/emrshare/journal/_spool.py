"""Where a write's ciphertext waits between ``encrypted`` and ``confirmed``.

Small ciphertexts are kept inline in the journal database (a bulk import of small records
then costs one SQLite commit per batch); larger ones go to a private file in ``spool/``
next to it, fsynced before the job is committed as ``encrypted``. Either is dropped once
the write is confirmed or rolled back.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emrshare._files import open_private_write, private_dir
from emrshare.errors import JournalError
from emrshare.journal._db import Writes
from emrshare.journal.steps import WriteJob, WriteSteps
from emrshare.types import RecordId

#: Ciphertexts up to this size are spooled inside the journal database; larger ones go to
#: a file next to it (bulk imports of small records then cost one SQLite commit per batch).
INLINE_MAX = 256 * 1024


@dataclass(frozen=True, slots=True)
class Spooled:
    """A job's freshly written ciphertext, not yet committed to the journal."""

    job: WriteJob
    inline: bytes | None
    path: Path | None
    secret: bytes = field(repr=False)


class Spools:
    """The spooled ciphertexts of one journal (``directory`` holds the spool files)."""

    def __init__(self, directory: Path, writes: Writes, inline_max: int) -> None:
        self._directory = directory
        self._writes = writes
        self._inline_max = inline_max

    def file(self, record_id: RecordId) -> Path:
        """The spool file a job's ciphertext goes to if it is too large to keep inline."""
        return self._directory / f"{record_id.hex()}.bin"

    def encrypt(self, job: WriteJob, steps: WriteSteps) -> Spooled:
        """Have ``steps`` encrypt ``job`` into a new spool (durable when this returns)."""
        spool = _Spool(self.file(job.record_id), self._inline_max)
        sink = io.BufferedWriter(_SinkAdapter(spool))
        try:
            secret = steps.encrypt(job, sink)
            sink.flush()
            inline, path = spool.finish()
        except BaseException:
            spool.discard()
            raise
        return Spooled(job, inline, path, secret)

    def open(self, record_id: RecordId) -> IO[bytes]:
        """The spooled ciphertext of a job, for reading."""
        kept = self._writes.spooled(record_id)
        if kept is None or kept == (None, None):
            raise JournalError(f"the spooled ciphertext of record 0x{record_id.hex()} is missing")
        inline, path = kept
        if inline is not None:
            return io.BytesIO(inline)
        assert path is not None
        try:
            return Path(path).open("rb")
        except FileNotFoundError as exc:
            raise JournalError(
                f"the spool file {path} of record 0x{record_id.hex()} is missing"
            ) from exc

    def drop(self, record_id: RecordId) -> None:
        """Delete a job's ciphertext and secret (its write is finished)."""
        kept = self._writes.spooled(record_id)
        if kept is not None and kept[1]:
            with contextlib.suppress(FileNotFoundError):
                Path(kept[1]).unlink()
        self._writes.update(record_id, ciphertext=None, spool=None, secret=None)


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
