"""The ``BlobStore`` protocol every storage backend implements, and its small value types."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from emrshare.errors import StorageError
from emrshare.storage.cid import CidInfo
from emrshare.types import Cid

__all__ = [
    "BlobSource",
    "BlobStat",
    "BlobStore",
    "BulkBlobStore",
    "GcResult",
    "read_all",
    "select_orphans",
    "unpin_orphans",
]

#: What ``put`` accepts: bytes, a binary file object, or an iterable of byte strings.
BlobSource = bytes | BinaryIO | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class BlobStat:
    """What a store knows about one blob: its CID, file size and whether it is pinned."""

    cid: Cid
    size: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class GcResult:
    """Outcome of a garbage collection: blocks removed and bytes freed (when known)."""

    removed_blocks: int
    freed_bytes: int


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage (an embedded store, Kubo, IPFS Cluster, replicas).

    Every read is verified against the CID before any byte is returned; a mismatch is
    :class:`~emrshare.errors.IntegrityError`, a missing blob
    :class:`~emrshare.errors.BlobNotFound`, an unreachable backend
    :class:`~emrshare.errors.StoreUnavailable`.
    """

    def put(self, data: BlobSource, *, pin: bool = True) -> Cid:
        """Store ``data`` (streamed) and return its CID under the store's profile."""
        ...

    def get(self, cid: Cid) -> Iterator[bytes]:
        """Stream the blob's bytes; each piece is verified before it is yielded."""
        ...

    def has(self, cid: Cid) -> bool:
        """Whether the blob's root block is held locally (no network fetch)."""
        ...

    def pin(self, cid: Cid) -> None:
        """Protect the blob (its whole DAG) from garbage collection."""
        ...

    def unpin(self, cid: Cid) -> None:
        """Drop the pin; the blocks go at the next :meth:`gc`. Unpinning twice is fine."""
        ...

    def pins(self) -> list[Cid]:
        """The pinned root CIDs."""
        ...

    def stat(self, cid: Cid) -> BlobStat:
        """Size and pin state of a stored blob."""
        ...

    def gc(self) -> GcResult:
        """Delete every block no pin reaches."""
        ...

    def unpin_orphans(
        self, referenced: Collection[Cid], candidates: Iterable[Cid] | None = None
    ) -> list[Cid]:
        """Unpin blobs nothing references (an index entry that never reached the chain).

        ``candidates`` limits the sweep (the journal passes the CIDs it wrote); ``None``
        considers every pin — only safe when no other writer is mid-way between ``put``
        and its chain append. Returns the CIDs unpinned.
        """
        ...


@runtime_checkable
class BulkBlobStore(BlobStore, Protocol):
    """A :class:`BlobStore` that stores many blobs in one durability round (the embedded
    store: one fsync pass for the group instead of one per blob). Bulk writers use it
    when the store offers it (``isinstance(store, BulkBlobStore)``)."""

    def put_many(self, items: Iterable[BlobSource], *, pin: bool = True) -> list[Cid]:
        """Store every item; the CIDs in order. Returns only when all are durable."""
        ...


def select_orphans(
    pinned: Iterable[Cid], referenced: Collection[Cid], candidates: Iterable[Cid] | None
) -> list[Cid]:
    """Pins that are candidates and not referenced, comparing CIDs by block (v0 = v1)."""
    keep = {CidInfo.parse(c).digest for c in referenced}
    pinned_list = list(pinned)
    if candidates is not None:
        wanted = {CidInfo.parse(c).digest for c in candidates}
        pinned_list = [c for c in pinned_list if CidInfo.parse(c).digest in wanted]
    return [c for c in pinned_list if CidInfo.parse(c).digest not in keep]


def unpin_orphans(
    store: BlobStore, referenced: Collection[Cid], candidates: Iterable[Cid] | None = None
) -> list[Cid]:
    """Unpin ``store``'s pins that are candidates and not referenced; the unpinned CIDs.
    The stores' ``unpin_orphans`` methods are this."""
    orphans = select_orphans(store.pins(), referenced, candidates)
    for cid in orphans:
        store.unpin(cid)
    return orphans


def read_all(store: BlobStore, cid: Cid, *, max_size: int = 64 * 1024 * 1024) -> bytes:
    """Read a whole (small) blob into memory; refuses blobs over ``max_size`` bytes."""
    out = bytearray()
    for piece in store.get(cid):
        out += piece
        if len(out) > max_size:
            raise StorageError(
                f"blob {cid} is larger than {max_size} bytes; stream it with get() instead"
            )
    return bytes(out)
