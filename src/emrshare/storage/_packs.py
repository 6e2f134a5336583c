"""Pack files and pin sets of :class:`~emrshare.storage.local.LocalStore`: many blocks in
one file, many pins in one file, for big writes.

A file per block costs an inode, a directory entry and a journal commit each: a bulk
write of thousands of small records, or one big blob of thousands of 256 KiB blocks,
spent most of its time creating files. A big write therefore streams its blocks into one
*pack* and its pins into one *pin set*::

    packs/<name>.pack     the blocks, back to back
    packs/<name>.idx      what is where: per block its key, offset and length
    pinsets/<name>.set    pinned roots, one CID string per line

Crash safety is the same as for loose blocks: a pack and its index are written under
``tmp/``, flushed, and renamed into place, the index last. A block is in the store once
the index naming it is, and by then its bytes are durable; a crash before leaves temp
files (reclaimed at open) or, between the two renames, a pack without an index, which gc
deletes. Nothing read from a pack is trusted: every block is verified against its CID by
the caller, so a damaged pack or index yields :class:`~emrshare.errors.IntegrityError`
or :class:`~emrshare.errors.BlobNotFound`, never wrong bytes.

Several processes share a store: each writer makes packs of its own under fresh names,
and readers load an index they have not seen when a block is missing (see
:meth:`PackIndex.refresh`). Only gc, holding the store's exclusive lock, removes or
rewrites packs; a reader whose pack vanished under it refreshes and reads again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from emrshare.errors import StorageError
from emrshare.storage._disk import atomic_write, fsync_path, tmp_name
from emrshare.storage.cid import CidInfo

__all__ = ["Location", "PackFile", "PackIndex", "PinSets", "collect_packs", "pack_name"]

_IDX_MAGIC = b"emrshare-pack-index-1\n"
_IDX_ENTRY = struct.Struct(">QI")  # offset, length; each after a u8 key length and the key
_SET_MAGIC = "emrshare-pin-set-1"
#: Entries past these are not ours (a block is at most a few MiB): the index is damaged.
_MAX_OFFSET = 2**62
_MAX_BLOCK = 16 * 1024 * 1024


def pack_name() -> str:
    """A fresh, unique name for a pack or pin set (time, pid and 64 random bits)."""
    return f"{time.time_ns():x}-{os.getpid()}-{secrets.token_hex(8)}"


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a packed block is: the pack's name, the block's offset and length."""

    pack: str
    offset: int
    length: int


def _parse_index(raw: bytes) -> list[tuple[str, int, int]] | None:
    """An index file's entries, or ``None`` if it is not a whole, well-formed index."""
    if not raw.startswith(_IDX_MAGIC):
        return None
    out: list[tuple[str, int, int]] = []
    pos, end = len(_IDX_MAGIC), len(raw)
    while pos < end:
        n = raw[pos]
        pos += 1
        if pos + n + _IDX_ENTRY.size > end:
            return None
        try:
            key = raw[pos : pos + n].decode("ascii")
        except UnicodeDecodeError:
            return None
        pos += n
        offset, length = _IDX_ENTRY.unpack_from(raw, pos)
        pos += _IDX_ENTRY.size
        if offset >= _MAX_OFFSET or length > _MAX_BLOCK:
            return None
        out.append((key, offset, length))
    return out


class PackIndex:
    """The blocks in ``packs/``: key → :class:`Location`, loaded index by index."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._where: dict[str, Location] = {}
        self._loaded: dict[str, list[tuple[str, Location]]] = {}  # pack name → its blocks
        #: Index files that could not be parsed (damaged): gc refuses to run over them.
        self.damaged: set[str] = set()

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def refresh(self, _again: bool = True) -> None:
        """Load the index files written since the last call and forget removed ones."""
        vanished = False
        try:
            names = {n[:-4] for n in os.listdir(self.dir) if n.endswith(".idx")}
        except FileNotFoundError:
            names = set()
        for gone in self._loaded.keys() - names:
            for key, _ in self._loaded.pop(gone):
                if (loc := self._where.get(key)) is not None and loc.pack == gone:
                    del self._where[key]
        self.damaged &= names
        for name in sorted(names - self._loaded.keys() - self.damaged):
            try:
                entries = _parse_index((self.dir / f"{name}.idx").read_bytes())
            except FileNotFoundError:
                vanished = True  # gc rewrote it since the listing: list again
                continue
            if entries is None:
                self.damaged.add(name)
                continue
            blocks = [(k, Location(name, o, n)) for k, o, n in entries]
            self._loaded[name] = blocks
            for key, loc in blocks:
                self._where.setdefault(key, loc)
        if vanished and _again:
            self.refresh(_again=False)

    def check_whole(self) -> None:
        """Refresh, and raise :class:`StorageError` if an index is damaged (gc could not
        tell which of its pack's blocks are live)."""
        self.refresh()
        if self.damaged:
            raise StorageError(
                f"pack index {sorted(self.damaged)[0]}.idx in {self.dir} is damaged, so gc "
                "cannot tell which blocks are live; move the pack and its index aside "
                "(restore them from a backup) and run gc again"
            )
        lost = sorted(n for n in self._loaded if not (self.dir / f"{n}.pack").exists())
        if lost:
            raise StorageError(
                f"pack {lost[0]}.pack in {self.dir} is missing but its index is there; "
                "restore the pack from a backup, or move the index aside, and run gc again"
            )

    def locate(self, key: str) -> Location | None:
        return self._where.get(key)

    def read(self, key: str) -> bytes | None:
        """A packed block's bytes (not verified), or ``None`` if no known pack has it."""
        for attempt in range(3):
            loc = self._where.get(key)
            if loc is None:
                if attempt == 2:
                    return None
                self.refresh()
                continue
            try:
                return _pread(self.dir / f"{loc.pack}.pack", loc)
            except FileNotFoundError:
                self.refresh()  # gc rewrote the pack: the block may be in another
        return None

    def packs(self) -> dict[str, list[tuple[str, Location]]]:
        """Every loaded pack's blocks (after a refresh)."""
        self.refresh()
        return dict(self._loaded)

    def keys(self) -> Iterator[str]:
        self.refresh()
        return iter(list(self._where))


#: Blocks at least this big are written by the pack's writer thread (hashing the next
#: chunk overlaps with writing this one: ``hashlib`` and ``os.pwritev`` release the GIL).
_THREADED_BLOCK = 64 * 1024
#: Blocks queued for the writer thread at most (bounded memory: 8 × 256 KiB).
_QUEUE_BLOCKS = 8


def _pwrite_all(fd: int, parts: Sequence[bytes], offset: int) -> None:
    total = sum(len(p) for p in parts)
    written = os.pwritev(fd, parts, offset)
    if written != total:  # short write: the rest the simple way
        view = memoryview(b"".join(parts))[written:]
        offset += written
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n


class _Writer:
    """A thread that writes big blocks at their offsets while the caller hashes the next.
    An error is kept and raised to the caller at its next :meth:`put` or :meth:`join`."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: queue.Queue[tuple[Sequence[bytes], int] | None] = queue.Queue(_QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emrshare-pack", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    _pwrite_all(self._fd, *item)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def put(self, parts: Sequence[bytes], offset: int) -> None:
        self._raise()
        self._queue.put((parts, offset))

    def join(self) -> None:
        """Wait for every queued block to be written; raise what a write raised."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


class PackFile:
    """One pack being written: blocks appended to a temp file, then :meth:`seal`."""

    def __init__(self, packs: Path, tmp: Path) -> None:
        self.name = pack_name()
        self._packs = packs
        self.tmp_pack = tmp_name(tmp, f"{self.name}.pack")
        self.tmp_idx = tmp_name(tmp, f"{self.name}.idx")
        self._fd: int | None = os.open(self.tmp_pack, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._index = bytearray(_IDX_MAGIC)
        self._keys: set[str] = set()
        self._writer: _Writer | None = None
        self.size = 0

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, parts: Sequence[bytes]) -> int:
        """Append one block; its length."""
        assert self._fd is not None
        total = sum(len(p) for p in parts)
        if total >= _THREADED_BLOCK:
            if self._writer is None:
                self._writer = _Writer(self._fd)
            self._writer.put(parts, self.size)
        else:
            _pwrite_all(self._fd, parts, self.size)
        raw = key.encode("ascii")
        self._index += bytes((len(raw),)) + raw + _IDX_ENTRY.pack(self.size, total)
        self._keys.add(key)
        self.size += total
        return total

    def seal(self) -> None:
        """Make the pack durable and visible: flush pack and index, rename the pack, then
        the index (which publishes the blocks), then flush the directory."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            self._stop_writer()
            os.fdatasync(fd)
        finally:
            os.close(fd)
        ifd = os.open(self.tmp_idx, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(ifd, self._index)
            os.fsync(ifd)
        finally:
            os.close(ifd)
        os.replace(self.tmp_pack, self._packs / f"{self.name}.pack")
        os.replace(self.tmp_idx, self._packs / f"{self.name}.idx")
        fsync_path(self._packs)

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()

    def discard(self) -> None:
        """Drop an unfinished pack's temp files."""
        if self._fd is not None:
            with contextlib.suppress(BaseException):
                self._stop_writer()
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        for path in (self.tmp_pack, self.tmp_idx):
            with contextlib.suppress(OSError):
                path.unlink()


class PinSets:
    """Pinned roots kept many to a file (``pinsets/<name>.set``), for big writes."""

    def __init__(self, directory: Path, tmp: Path, lock: Path) -> None:
        self.dir, self._tmp, self._lock = directory, tmp, lock
        self._where: dict[str, str] = {}  # root key → set name
        self._loaded: dict[str, dict[str, str]] = {}  # set name → key → CID string
        #: Sets that could not be read whole (damaged): gc refuses to run over them.
        self.damaged: set[str] = set()

    def refresh(self) -> None:
        try:
            names = {n[:-4] for n in os.listdir(self.dir) if n.endswith(".set")}
        except FileNotFoundError:
            names = set()
        for gone in self._loaded.keys() - names:
            for key in self._loaded.pop(gone):
                if self._where.get(key) == gone:
                    del self._where[key]
        self.damaged &= names
        for name in sorted(names - self._loaded.keys() - self.damaged):
            try:
                roots = self._read(name)
            except FileNotFoundError:
                continue  # unpinned from since the listing (unpin and gc exclude each other)
            if roots is None:
                self.damaged.add(name)
                continue
            self._loaded[name] = roots
            for key in roots:
                self._where.setdefault(key, name)

    def _read(self, name: str) -> dict[str, str] | None:
        """A set's roots, or ``None`` if it is not a whole, well-formed set (damaged)."""
        try:
            lines = (self.dir / f"{name}.set").read_text(encoding="ascii").split("\n")
        except UnicodeDecodeError:
            return None
        if len(lines) < 2 or lines[0] != _SET_MAGIC or lines[-1] != "":
            return None
        out: dict[str, str] = {}
        for line in lines[1:-1]:
            try:
                out[CidInfo.parse(line).key] = line
            except Exception:  # one root that does not parse: the set is damaged
                return None
        return out

    def check_whole(self) -> None:
        """Refresh, and raise :class:`StorageError` if a pin set is damaged (gc would
        delete what its roots reach)."""
        self.refresh()
        if self.damaged:
            raise StorageError(
                f"pin set {sorted(self.damaged)[0]}.set in {self.dir} is damaged, so gc "
                "cannot tell which blobs are pinned; restore it from a backup (or move it "
                "aside and pin its blobs again) and run gc again"
            )

    def contains(self, key: str) -> bool:
        self.refresh()  # another process may have pinned or unpinned it since
        return key in self._where

    def roots(self) -> list[str]:
        """Every CID string in a pin set."""
        self.refresh()
        return [cid for roots in self._loaded.values() for cid in roots.values()]

    def write(self, roots: Iterable[tuple[str, str]]) -> None:
        """Pin ``(key, CID string)`` pairs in one new set: temp, flush, rename, flush dir."""
        body = "\n".join([_SET_MAGIC, *(cid for _, cid in roots)]) + "\n"
        atomic_write(self._tmp, self.dir / f"{pack_name()}.set", body.encode("ascii"))

    def remove(self, key: str) -> None:
        """Unpin ``key`` from every set holding it (a set is rewritten without it, under a
        lock so two processes unpinning from one set never bring a pin back)."""
        if not self.contains(key):
            return
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        with open(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self.refresh()
                for name in [n for n, roots in self._loaded.items() if key in roots]:
                    try:
                        roots = self._read(name)  # the file's own state, under the lock
                    except FileNotFoundError:
                        continue
                    if roots is None or key not in roots:
                        continue
                    del roots[key]
                    if roots:
                        self.write(roots.items())
                    (self.dir / f"{name}.set").unlink()
                    fsync_path(self.dir)
                self.refresh()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def collect_packs(index: PackIndex, tmp: Path, live: set[str]) -> tuple[int, int]:
    """gc of the packs (the caller holds the store's exclusive lock): a pack with no live
    block is deleted, one with some is rewritten with only those, and a pack left without
    an index by a crash is deleted. Returns the blocks removed and the bytes freed."""
    removed = freed = 0
    for name, blocks in index.packs().items():
        dead = [loc for key, loc in blocks if key not in live]
        if not dead:
            continue
        keep = [(key, loc) for key, loc in blocks if key in live]
        if keep:
            fresh = PackFile(index.dir, tmp)
            try:
                for key, loc in keep:
                    if key not in fresh:
                        fresh.add(key, (_pread(index.dir / f"{name}.pack", loc),))
                fresh.seal()
            except BaseException:
                fresh.discard()
                raise
        (index.dir / f"{name}.idx").unlink()
        (index.dir / f"{name}.pack").unlink(missing_ok=True)
        removed += len(dead)
        freed += sum(loc.length for loc in dead)
    indexed = {n[:-4] for n in os.listdir(index.dir) if n.endswith(".idx")}
    for entry in os.listdir(index.dir):
        if entry.endswith(".pack") and entry[:-5] not in indexed:
            path = index.dir / entry
            freed += path.stat().st_size
            path.unlink()
    fsync_path(index.dir)
    index.refresh()
    return removed, freed


def _pread(path: Path, loc: Location) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, loc.length, loc.offset)
    finally:
        os.close(fd)
