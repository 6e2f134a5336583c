"""Disk primitives of :class:`~emrshare.storage.local.LocalStore`: flushing, small
atomic files, the format marker and the store's temp files.

Temp files. Every block and pin is written to ``tmp/`` first and renamed into place once
durable, so a writer that is killed (or interrupted: Ctrl-C) mid-put leaves temp files
behind, never half a block. Each temp file's name carries its writer's pid
(``<name>.<pid>.<thread>-<space>.<n>.tmp``): :func:`reclaim_stale` deletes those whose process is
no longer alive, and leaves a live writer's alone, whichever process it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import threading
from pathlib import Path

from emrshare._files import loads_json
from emrshare._process import pid_alive
from emrshare.errors import UnsupportedVersion, WireFormatError

__all__ = [
    "RECLAIM_LIMIT",
    "atomic_write",
    "check_marker",
    "fsync_path",
    "reclaim_stale",
    "tmp_name",
]

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


def atomic_write(tmp_dir: Path, target: Path, data: bytes) -> None:
    """Small metadata files (pins, marker): temp + fsync + rename + fsync of the dir."""
    tmp = tmp_name(tmp_dir, target.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_path(target.parent)


def check_marker(path: Path, tmp_dir: Path, fmt: str, version: tuple[int, int]) -> None:
    """Create the store marker, or check that ``path`` holds a store of format ``fmt``
    this release reads: major ``version[0]``, or 1 (its loose blocks and pins are read
    as they are; the marker then says ``version``)."""
    marker = path / "emrshare-store.json"
    current = json.dumps({"format": fmt, "version": list(version)}).encode()
    if not marker.exists():
        atomic_write(tmp_dir, marker, current)
        return
    try:
        meta = loads_json(marker.read_text())
        found, (major, _minor) = meta["format"], meta["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WireFormatError(
            f"{marker} is not an emrshare store marker; is this the right directory?"
        ) from exc
    if found != fmt:
        raise WireFormatError(f"{path} holds a {found!r}, not an emrshare block store")
    if major == 1 and version[0] > 1:
        atomic_write(tmp_dir, marker, current)
    elif major != version[0]:
        raise UnsupportedVersion(
            f"store {path} has format version {major}; "
            f"this release reads {version[0]}: upgrade emrshare"
        )


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
