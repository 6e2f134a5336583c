"""``LocalStore``: the embedded, daemon-less block store whose CIDs equal Kubo's.

On-disk layout under the data directory::

    emrshare-store.json          format brand and version
    store.lock                   flock: writers share it, gc takes it exclusively
    blocks/<xy>/<key>.data       one file per block, key = base32 multihash, xy = key[-3:-1]
    packs/<name>.pack, .idx      many blocks in one file, and where each is (big writes)
    pins/<key>                   one file per pinned root, holding the CID string
    pinsets/<name>.set           many pinned roots in one file (big writes)
    tmp/                         files being written; renamed into place when complete
                                 (named after their writer's pid: a dead writer's are
                                 reclaimed at open, see ``storage._disk``)

Why this shape: a small write (a record, up to :data:`_SMALL_BATCH` blocks) is a file per
block and per pin, each atomic (temp + fsync + rename), and several processes share a
store without a database; the flock keeps gc from deleting blocks another process has
written but not pinned yet. A big write (a bulk import, a large blob, a CAR) puts the
rest of its blocks in one pack and its pins in one pin set (``storage._packs``): creating
a file per block cost more than writing the bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

from emrshare.errors import BlobNotFound, StorageError
from emrshare.storage._disk import atomic_write, check_marker, reclaim_stale, tmp_name
from emrshare.storage._disk import fsync_path as _fsync_path
from emrshare.storage._packs import PackFile, PackIndex, PinSets, collect_packs
from emrshare.storage.base import BlobSource, BlobStat, GcResult, unpin_orphans
from emrshare.storage.cid import DAG_PB, CidInfo
from emrshare.storage.unixfs import (
    DEFAULT_PROFILE,
    DagBuilder,
    UnixfsProfile,
    child_links,
    file_size_of_root,
    iter_chunks,
    iter_file,
)
from emrshare.types import Cid

__all__ = ["LocalStore"]

_FORMAT = "emrshare-blockstore"
#: Version 2 added packs and pin sets (a version-1 reader would miss their blocks); a
#: version-1 store is read as it is and marked version 2 when opened (``_disk``).
_MAJOR, _MINOR = 2, 0


@contextlib.contextmanager
def _disk_errors(path: Path, what: str) -> Iterator[None]:
    """Re-raise an OS error while doing ``what`` in the store at ``path`` as StorageError."""
    try:
        yield
    except OSError as exc:
        raise StorageError(
            f"could not {what} in the store at {path} ({exc.strerror or exc}); "
            "check free space, permissions and that nothing else is in the way"
        ) from exc


#: Bytes written before they are flushed and made visible (a pack is at most this big).
_BATCH_BYTES = 64 * 1024 * 1024
#: A write's first blocks (and a bulk write's pins), up to this many, are a file each;
#: the rest go into a pack (pin set).
_SMALL_BATCH = 16


class _BlockWriter:
    """Crash-safe batched block writes: temp files → flush → rename → flush.

    A block becomes visible (renamed into place, or its pack's index is) only after its
    bytes are durable, so a crash leaves whole blocks or nothing. The first
    :data:`_SMALL_BATCH` blocks are loose files; after them the writer streams blocks into
    a pack, one file and one flush for up to :data:`_BATCH_BYTES`.
    """

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._pending: dict[str, tuple[Path, Path]] = {}
        self._pack: PackFile | None = None
        self._big = False  # this write outgrew loose files: the rest go into packs
        self._bytes = 0

    def add(self, cid: CidInfo, parts: Sequence[bytes]) -> None:
        key = cid.key
        store = self._store
        if key in self._pending or (self._pack is not None and key in self._pack):
            return
        if key in store._packs:
            return
        final = store._blocks / key[-3:-1] / f"{key}.data"
        if final.exists():
            return
        if self._big or len(self._pending) >= _SMALL_BATCH:
            self._big = True
            if self._pack is None:
                self._pack = PackFile(store._packs.dir, store._tmp)
            self._bytes += self._pack.add(key, parts)
            if self._bytes >= _BATCH_BYTES:
                self.flush()
            return
        tmp = store._tmp_name(final.name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            total = sum(len(p) for p in parts)
            if os.writev(fd, parts) != total:  # short write: retry the simple way
                os.lseek(fd, 0, os.SEEK_SET)
                view = memoryview(b"".join(parts))
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._pending[key] = (tmp, final)
        self._bytes += total
        if self._bytes >= _BATCH_BYTES:
            self.flush()

    def discard(self) -> None:
        """Delete the temp files not made visible yet (a failed or interrupted put)."""
        for tmp, _ in self._pending.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        if self._pack is not None:
            self._pack.discard()
            self._pack = None
        self._pending.clear()
        self._bytes = 0

    def flush(self) -> None:
        """Make everything added so far durable and visible (each loose file was flushed
        when written; a pack is flushed, then published by renaming its index)."""
        if self._pack is not None:
            self._pack.seal()
            self._pack = None
            self._store._packs.refresh()
        dirs: set[Path] = set()
        for tmp, final in self._pending.values():
            self._store._ensure_dir(final.parent)
            os.replace(tmp, final)
            dirs.add(final.parent)
        for d in dirs:
            _fsync_path(d)
        self._pending.clear()
        self._bytes = 0


class LocalStore:
    """An on-disk block store with Kubo-identical CIDs (the default backend).

    >>> store = LocalStore(tmp_path / "ipfs")            # doctest: +SKIP
    >>> cid = store.put(b"hello")                        # doctest: +SKIP
    >>> b"".join(store.get(cid))                         # doctest: +SKIP
    b'hello'

    ``profile`` picks how bytes become a DAG (:data:`DEFAULT_PROFILE` is ``ipfs add``'s
    defaults). Several processes may open the same directory at once.
    """

    def __init__(
        self, path: str | os.PathLike[str], profile: UnixfsProfile = DEFAULT_PROFILE
    ) -> None:
        self.path = Path(path)
        self.profile = profile
        self._blocks = self.path / "blocks"
        self._pins = self.path / "pins"
        self._tmp = self.path / "tmp"
        self._dirs: set[Path] = set()
        self._lock_path = self.path / "store.lock"
        self._packs = PackIndex(self.path / "packs")
        self._pinsets = PinSets(self.path / "pinsets", self._tmp, self.path / "pinsets.lock")
        with _disk_errors(self.path, "open or create the directories"):
            dirs = (self.path, self._blocks, self._pins, self._tmp)
            for d in (*dirs, self._packs.dir, self._pinsets.dir):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_marker(self.path, self._tmp, _FORMAT, (_MAJOR, _MINOR))
            self._lock_path.touch(mode=0o600, exist_ok=True)
            reclaim_stale(self._tmp)  # a killed or interrupted writer's (see _disk)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r}, profile={self.profile.name!r})"

    # -- format and locking -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with open(self._lock_path, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _tmp_name(self, name: str) -> Path:
        return tmp_name(self._tmp, name)

    def reclaim_temp_files(self) -> int:
        """Delete the temp files of writers that died mid-put (never a live writer's, in
        any process); bounded work, also done when the store is opened. How many."""
        with _disk_errors(self.path, "reclaim stale temp files"):
            return reclaim_stale(self._tmp)

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._dirs:
            path.mkdir(mode=0o700, exist_ok=True)
            self._dirs.add(path)

    # -- blocks -------------------------------------------------------------------------

    def _block_path(self, cid: CidInfo) -> Path:
        key = cid.key
        return self._blocks / key[-3:-1] / f"{key}.data"

    def has_block(self, cid: CidInfo) -> bool:
        """Whether the block is on disk (not verified)."""
        with _disk_errors(self.path, "look for a block"):
            if cid.key in self._packs or self._block_path(cid).exists():
                return True
            self._packs.refresh()  # another process may have packed it since
            return cid.key in self._packs

    def _raw_block(self, cid: CidInfo) -> bytes | None:
        """A block's bytes as stored (not verified), or ``None`` if it is not here."""
        packed = self._packs.read(cid.key) if cid.key in self._packs else None
        if packed is not None:
            return packed
        with contextlib.suppress(FileNotFoundError):  # (or the index was stale: gc ran)
            return self._block_path(cid).read_bytes()
        return self._packs.read(cid.key)  # packed by another process since: refreshes

    def block_keys(self) -> list[str]:
        """Every stored block's key (base32 multihash, :attr:`CidInfo.key`), sorted."""
        with _disk_errors(self.path, "list the blocks"):
            loose = {p.name.removesuffix(".data") for p in self._blocks.glob("*/*.data")}
            return sorted(loose.union(self._packs.keys()))

    def _read_block(self, cid: CidInfo) -> bytes:
        try:
            block = self._raw_block(cid)
        except OSError as exc:
            raise StorageError(
                f"could not read block {cid} in the store at {self.path} "
                f"({exc.strerror or exc}); check the file's permissions"
            ) from exc
        if block is None:
            raise BlobNotFound(
                str(cid),
                f"block {cid} is not in the store at {self.path}; "
                "fetch it from a replica or import a CAR that holds it",
            )
        return block

    def get_block(self, cid: CidInfo) -> bytes:
        """A block's bytes, verified against its CID."""
        block = self._read_block(cid)
        cid.verify(block)
        return block

    def put_block(self, cid: CidInfo, block: bytes, writer: _BlockWriter | None = None) -> None:
        """Store a block after checking it hashes to ``cid`` (idempotent).

        Inside :meth:`writing`, pass its writer to batch the flushes.
        """
        cid.verify(block)
        if writer is not None:
            writer.add(cid, (block,))
            return
        with self.writing() as own:
            own.add(cid, (block,))

    def walk_blocks(self, root: CidInfo) -> Iterator[tuple[CidInfo, bytes]]:
        """Every block of the DAG under ``root``, depth first, verified, each once."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid.digest in seen:
                continue
            seen.add(cid.digest)
            block = self.get_block(cid)
            yield cid, block
            stack.extend(reversed(child_links(cid, block)))

    @contextlib.contextmanager
    def writing(self) -> Iterator[_BlockWriter]:
        """Hold the writer lock and batch block writes; everything is durable on exit.

        Callers that store many blocks (CAR import) use this so gc cannot run between
        writing the blocks and pinning the root.
        """
        with self._locked(exclusive=False):
            # What a gc in another process removed before we got the lock is gone from
            # the index now, and no gc runs until we let go: a block the index names is
            # there, so skipping its write is safe.
            self._packs.refresh()
            writer = _BlockWriter(self)
            try:
                yield writer
                writer.flush()
            except BaseException:  # Ctrl-C too: this writer's temp files are garbage
                writer.discard()
                raise

    # -- BlobStore ----------------------------------------------------------------------

    def put(self, data: BlobSource, *, pin: bool = True) -> Cid:
        """Chunk, hash and store ``data`` (streamed, bounded memory); return the root CID."""
        (cid,) = self.put_many([data], pin=pin)
        return cid

    def put_many(self, items: Iterable[BlobSource], *, pin: bool = True) -> list[Cid]:
        """:meth:`put` for many blobs with one durability round for all of them.

        The blocks of every blob are written and flushed together (one ``syncfs`` on
        Linux), then the pins likewise; nothing is returned, and no pin exists, before the
        bytes it covers are durable. A crash midway leaves whole blocks or none, and at
        worst unpinned blocks that gc removes. This makes the store a
        :class:`~emrshare.storage.BulkBlobStore`; callers of a plain :class:`BlobStore`
        fall back to ``put``.
        """
        roots: list[CidInfo] = []
        try:
            with self.writing() as writer:
                for data in items:
                    builder = DagBuilder(self.profile, writer.add)
                    for chunk in iter_chunks(data, self.profile.chunk_size):
                        builder.add_chunk(chunk)
                    roots.append(builder.finish())
                writer.flush()
                if pin:
                    self._write_pins(roots)
        except OSError as exc:
            raise StorageError(
                f"could not write to the store at {self.path} ({exc.strerror or exc}); "
                "check free space and permissions"
            ) from exc
        return [r.cid for r in roots]

    def _write_pins(self, roots: Sequence[CidInfo]) -> None:
        """Pin many roots: a file each for a few, one pin set (one file) for many."""
        unique = list({r.key: r for r in roots}.values())
        if len(unique) <= _SMALL_BATCH:
            for root in unique:
                self._write_pin(root)
            return
        self._pinsets.write((r.key, str(r)) for r in unique)

    def get(self, cid: Cid) -> Iterator[bytes]:
        """Stream the blob; every block is verified before its bytes are yielded."""
        return iter_file(CidInfo.parse(cid), self._read_block)

    def has(self, cid: Cid) -> bool:
        """Whether the root block is on disk."""
        return self.has_block(CidInfo.parse(cid))

    def _pin_path(self, cid: CidInfo) -> Path:
        return self._pins / cid.key

    def _write_pin(self, cid: CidInfo) -> None:
        path = self._pin_path(cid)
        atomic_write(self._tmp, path, str(cid).encode())

    def pin(self, cid: Cid) -> None:
        """Pin after checking the whole DAG is present and intact."""
        with _disk_errors(self.path, f"pin {cid}"), self._locked(exclusive=False):
            self.pin_unlocked(CidInfo.parse(cid))

    def pin_unlocked(self, info: CidInfo) -> None:
        """Pin for callers already inside :meth:`writing` (checks the DAG is complete)."""
        for _ in self.walk_blocks(info):
            pass
        self._write_pin(info)

    def unpin(self, cid: Cid) -> None:
        """Remove the pin (no error if it was not pinned)."""
        info = CidInfo.parse(cid)
        with _disk_errors(self.path, f"unpin {cid}"):
            with contextlib.suppress(FileNotFoundError):
                self._pin_path(info).unlink()
            with self._locked(exclusive=False):  # no gc while a pin set is rewritten
                self._pinsets.remove(info.key)

    def pins(self) -> list[Cid]:
        """The pinned roots, as they were pinned (each once)."""
        out: dict[str, Cid] = {}
        with _disk_errors(self.path, "list the pins"):
            for p in sorted(self._pins.iterdir()):
                with contextlib.suppress(FileNotFoundError):
                    out.setdefault(p.name, Cid(p.read_text().strip()))
            for text in self._pinsets.roots():
                out.setdefault(CidInfo.parse(text).key, Cid(text))
        return list(out.values())

    def is_pinned(self, cid: Cid) -> bool:
        """Whether ``cid`` (v0 or v1 form) is a pinned root."""
        info = CidInfo.parse(cid)
        with _disk_errors(self.path, "read the pins"):
            return self._pin_path(info).exists() or self._pinsets.contains(info.key)

    def stat(self, cid: Cid) -> BlobStat:
        """File size (from the verified root block) and pin state."""
        info = CidInfo.parse(cid)
        return BlobStat(
            Cid(cid), file_size_of_root(info, self.get_block(info)), self.is_pinned(cid)
        )

    def gc(self) -> GcResult:
        """Delete blocks no pin reaches; waits for writers in any process to finish.

        A corrupt node in a pinned DAG raises :class:`IntegrityError` before anything is
        deleted: restore the block (from a replica or a CAR) and run gc again.
        """
        with _disk_errors(self.path, "collect garbage"), self._locked(exclusive=True):
            self._packs.check_whole()
            self._pinsets.check_whole()
            live: set[str] = set()
            for cid in self.pins():
                stack = [CidInfo.parse(cid)]
                while stack:
                    node = stack.pop()
                    if node.key in live:
                        continue
                    live.add(node.key)
                    stack.extend(self._links_only(node))
            removed, freed = _sweep_files(self._blocks, live)
            packed = collect_packs(self._packs, self._tmp, live)
            for stale in self._tmp.iterdir():  # nobody writes while we hold the lock
                stale.unlink()
        return GcResult(removed + packed[0], freed + packed[1])

    def _links_only(self, cid: CidInfo) -> list[CidInfo]:
        # Raw leaves have no links and are never read. dag-pb blocks are read and
        # verified: trusting a corrupt node's links could sweep away the blocks under
        # it, so a corrupt pinned DAG stops gc with IntegrityError instead.
        if cid.codec != DAG_PB:
            return []
        block = self._raw_block(cid)
        if block is None:
            return []  # a pinned DAG missing a block: gc keeps what exists
        cid.verify(block)
        return child_links(cid, block)

    def unpin_orphans(
        self, referenced: Collection[Cid], candidates: Iterable[Cid] | None = None
    ) -> list[Cid]:
        """Unpin pinned blobs that are not in ``referenced`` (see :class:`BlobStore`)."""
        return unpin_orphans(self, referenced, candidates)


def _sweep_files(blocks: Path, live: set[str]) -> tuple[int, int]:
    """gc of the block files: delete those no pin reaches; how many, and their bytes."""
    removed = freed = 0
    for shard in blocks.iterdir():
        for path in shard.iterdir():
            if path.name.removesuffix(".data") not in live:
                freed += path.stat().st_size
                path.unlink()
                removed += 1
    return removed, freed
