"""Disk primitives of :class:`~emrshare.storage.local.LocalStore`: flushing (``fsync``,
Linux ``syncfs``) and the store's temp files.

Temp files. Every block and pin is written to ``tmp/`` first and renamed into place once
durable, so a writer that is killed (or interrupted: Ctrl-C) mid-put leaves temp files
behind, never half a block. Each temp file's name carries its writer's pid
(``<name>.<pid>.<thread>-<space>.<n>.tmp``): :func:`reclaim_stale` deletes those whose process is
no longer alive, and leaves a live writer's alone, whichever process it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

from emrshare._process import pid_alive

__all__ = ["SYNCFS", "RECLAIM_LIMIT", "fsync_path", "reclaim_stale", "syncfs_at", "tmp_name"]

#: Temp-file names one :func:`reclaim_stale` call looks at (bounded work at store open).
RECLAIM_LIMIT = 10_000
_counter = itertools.count()
#: Above any pid (Linux's pid_max is at most 2**22).
_PID_LIMIT = 2**31


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux ``syncfs(2)``: flush one file system in a single call (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast("Callable[[int], int]", fn)


SYNCFS = _load_syncfs()


def syncfs_at(path: Path) -> None:
    """Flush the file system holding ``path`` (Linux only; callers check ``SYNCFS``)."""
    assert SYNCFS is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        if SYNCFS(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
    finally:
        os.close(fd)


def _pid_space() -> str:
    """A short tag of the pid numbering this process lives in (host name and Linux pid
    namespace): a pid says whether its writer is alive only in the space it came from.
    A store shared with a container or another host sees their pids too, which are dead
    or unrelated processes here."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{ns}".encode()).hexdigest()[:8]


_SPACE = _pid_space()


def tmp_name(tmp_dir: Path, name: str) -> Path:
    """A fresh temp-file path for ``name`` in ``tmp_dir``, naming this process and thread
    (and the pid space, :func:`_pid_space`, the pid belongs to)."""
    ident = f"{threading.get_ident()}-{_SPACE}"
    return tmp_dir / f"{name}.{os.getpid()}.{ident}.{next(_counter)}.tmp"


def writer_pid(path: Path) -> int | None:
    """The pid in a temp file's name (``None`` if the name is not one of ours)."""
    parts = path.name.rsplit(".", 4)
    if len(parts) != 5 or parts[4] != "tmp" or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    return pid if 0 < pid < _PID_LIMIT else None  # not a pid: kill(2) would overflow


def _foreign(path: Path) -> bool:
    """Whether a temp file was named in another pid space (a container or host sharing
    the store): its pid means nothing here. (Names without a space tag are older ones.)"""
    _, sep, space = path.name.rsplit(".", 4)[2].rpartition("-")
    return bool(sep) and space != _SPACE


def reclaim_stale(tmp_dir: Path, *, limit: int = RECLAIM_LIMIT) -> int:
    """Delete the temp files in ``tmp_dir`` whose writer process is dead; return how many.

    At most ``limit`` names are looked at (the rest wait for the next call). Files whose
    name carries no pid, or a pid of another pid space (a container or host sharing the
    store), are left for ``gc``, which holds the store's exclusive lock.
    A pid reused by an unrelated live process keeps its files until then too: only a
    dead pid's files are deleted, so a live writer never loses one.
    """
    alive: dict[int, bool] = {}
    removed = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(tmp_dir) as entries:
        for entry in itertools.islice(entries, limit):
            pid = writer_pid(Path(entry.name))
            if pid is None or _foreign(Path(entry.name)):
                continue
            if pid not in alive:
                alive[pid] = pid == os.getpid() or pid_alive(pid)
            if not alive[pid]:
                # Gone already, or not a file we can delete (a directory): left alone.
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
