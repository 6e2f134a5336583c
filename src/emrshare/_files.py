"""Crash-safe file replacement shared by the layers that keep small files (keystores,
event cursors, deployment files)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600: unique temp file, fsync, rename, dir fsync.

    A crash (even a power loss) leaves the old content or the new one, never a torn file,
    and two processes writing at once cannot interleave inside one temp file. The parent
    directory must exist; OS errors propagate for the caller to put in its own terms.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
