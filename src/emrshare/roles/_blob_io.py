"""A verified record body: fetched by CID, decrypted chunk by chunk, checked against its
index entry, and written to a file only once it verified."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from emrshare.crypto import IndexEntry, decrypt_stream
from emrshare.errors import DecryptionError, InvalidInput
from emrshare.storage import BlobStore
from emrshare.types import Cid

__all__ = ["check_output_path", "read_record", "read_record_to", "stream_record"]


def stream_record(store: BlobStore, entry: IndexEntry, sink: IO[bytes] | Any) -> int:
    """Fetch, verify and decrypt one record into ``sink``; return the plaintext size.

    The store verifies every block against the CID, the envelope authenticates every
    chunk (bound to the record id), and the plaintext SHA-256 and size must match the
    entry. **Warning:** on failure ``sink`` holds unauthenticated partial data; callers
    write to a temporary place and discard it (as :func:`read_record` does).
    """
    hasher = hashlib.sha256()
    size = 0
    for piece in decrypt_stream(store.get(Cid(entry.cid)), entry.data_key, entry.record_id):
        hasher.update(piece)
        size += len(piece)
        sink.write(piece)
    if hasher.digest() != entry.plaintext_sha256 or size != entry.size:
        raise DecryptionError()
    return size


def read_record(store: BlobStore, entry: IndexEntry) -> bytes:
    buf = io.BytesIO()
    stream_record(store, entry, buf)
    return buf.getvalue()


def check_output_path(path: Path) -> Path:
    """``path`` as a file a record can be written to, or a :class:`InvalidInput`.

    Checked before any work is done, so a bad path does not cost a proxy round trip.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(
            f"{path} is a directory; give a file path to write the record to, "
            f"e.g. {path / 'record.bin'}"
        )
    if not path.parent.is_dir():
        raise InvalidInput(
            f"cannot write {path}: the directory {path.parent} does not exist; create it first"
        )
    return path


def read_record_to(store: BlobStore, entry: IndexEntry, path: Path) -> int:
    """Decrypt into a temporary file next to ``path`` and rename it only when verified.

    A path that cannot be written (a directory, a missing or unwritable directory) is a
    :class:`InvalidInput`; no partial file is left behind on any failure.
    """
    path = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InvalidInput(
            f"cannot write into {path.parent} ({exc.strerror}); choose a writable directory"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            size = stream_record(store, entry, fh)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise InvalidInput(
                f"cannot write {path} ({exc.strerror}); choose another file path"
            ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size
