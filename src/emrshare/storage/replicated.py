"""``ReplicatedStore``: write to n backends, succeed when at least k pinned; read from any."""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from emrshare.errors import (
    BlobNotFound,
    ConfigurationError,
    IntegrityError,
    ReplicationError,
    StorageError,
    StoreUnavailable,
    WireFormatError,
)
from emrshare.storage.base import BlobSource, BlobStat, BlobStore, GcResult
from emrshare.storage.cid import CidInfo
from emrshare.storage.unixfs import iter_chunks
from emrshare.types import Cid

__all__ = ["ReplicaReport", "ReplicatedStore"]

_SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """Where a blob landed: the replicas that stored it and why the others failed."""

    cid: Cid
    stored: tuple[str, ...]
    failures: dict[str, str] = field(default_factory=dict)


class ReplicatedStore:
    """A :class:`BlobStore` over ``n`` replicas: writes need ``min_pins`` successes.

    Replicas must share one profile so they agree on the CID (a replica answering a
    different CID counts as failed). Reads try replicas in order; a missing or corrupt
    replica is skipped, and a read that fails mid-stream resumes on the next replica
    after the bytes already delivered (all of them verified against the same CID).
    """

    def __init__(
        self,
        replicas: Sequence[BlobStore],
        *,
        min_pins: int,
        names: Sequence[str] | None = None,
    ) -> None:
        if not replicas:
            raise ConfigurationError("ReplicatedStore needs at least one replica")
        if not 1 <= min_pins <= len(replicas):
            raise ConfigurationError(
                f"min_pins must be between 1 and {len(replicas)} (the number of replicas)"
            )
        self.names = tuple(names) if names is not None else tuple(repr(r) for r in replicas)
        if len(self.names) != len(replicas) or len(set(self.names)) != len(self.names):
            raise ConfigurationError("give one distinct name per replica")
        self.replicas = tuple(replicas)
        self.min_pins = min_pins
        #: The first replica's profile (replicas are expected to share it).
        self.profile = getattr(replicas[0], "profile", None)
        self.last_report: ReplicaReport | None = None

    def __repr__(self) -> str:
        return f"ReplicatedStore({list(self.names)!r}, min_pins={self.min_pins})"

    def put(self, data: BlobSource, *, pin: bool = True) -> Cid:
        """Store on every replica; see :meth:`put_with_report` for who failed."""
        return self.put_with_report(data, pin=pin).cid

    def put_with_report(self, data: BlobSource, *, pin: bool = True) -> ReplicaReport:
        """Store on every replica; raise :class:`ReplicationError` below ``min_pins``."""
        # A stream can be read once: spool it (memory, then disk) and replay per replica.
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            if isinstance(data, bytes | bytearray | memoryview):
                spool.write(data)
            else:
                for piece in iter_chunks(data, 1024 * 1024):
                    spool.write(piece)
            stored: list[str] = []
            failures: dict[str, str] = {}
            cids: dict[str, Cid] = {}
            for name, replica in zip(self.names, self.replicas, strict=True):
                spool.seek(0)
                try:
                    cids[name] = replica.put(spool, pin=pin)
                except StorageError as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    continue
                stored.append(name)
        agreed = _majority_cid(cids)
        for name in list(stored):
            if CidInfo.parse(cids[name]).digest != CidInfo.parse(agreed).digest:
                stored.remove(name)
                failures[name] = f"answered CID {cids[name]}, others {agreed}: profile mismatch"
        report = ReplicaReport(agreed, tuple(stored), failures)
        self.last_report = report
        if len(stored) < self.min_pins:
            detail = "; ".join(f"{n}: {why}" for n, why in failures.items())
            raise ReplicationError(
                f"only {len(stored)} of {len(self.replicas)} replicas stored the blob, "
                f"{self.min_pins} required ({detail}); bring replicas back and retry",
                failures,
                needed=self.min_pins,
                got=len(stored),
            )
        return report

    def get(self, cid: Cid) -> Iterator[bytes]:
        """Read from the first replica that has the blob; every byte is verified."""
        CidInfo.parse(cid)
        return self._get(cid)

    def _get(self, cid: Cid) -> Iterator[bytes]:
        delivered = 0
        failures: dict[str, str] = {}
        for name, replica in zip(self.names, self.replicas, strict=True):
            skip = delivered
            try:
                for piece in replica.get(cid):
                    if skip >= len(piece):
                        skip -= len(piece)
                        continue
                    if skip:
                        piece, skip = piece[skip:], 0
                    yield piece
                    delivered += len(piece)
                return
            except (StorageError, WireFormatError) as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
        detail = "; ".join(f"{n}: {why}" for n, why in failures.items())
        if all(why.startswith("BlobNotFound") for why in failures.values()):
            raise BlobNotFound(cid, f"no replica holds {cid} ({detail})")
        if any(why.startswith("IntegrityError") for why in failures.values()):
            raise IntegrityError(cid, f"no intact copy of {cid} on any replica ({detail})")
        raise StoreUnavailable(f"no replica could serve {cid} ({detail})")

    def has(self, cid: Cid) -> bool:
        """Whether any reachable replica holds the root block."""
        for replica in self.replicas:
            try:
                if replica.has(cid):
                    return True
            except StoreUnavailable:
                continue
        return False

    def _each(self, what: str, action: str, cid: Cid, needed: int) -> None:
        failures: dict[str, str] = {}
        ok = 0
        for name, replica in zip(self.names, self.replicas, strict=True):
            try:
                getattr(replica, action)(cid)
                ok += 1
            except StorageError as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
        if ok < needed:
            raise ReplicationError(
                f"{what} {cid} succeeded on {ok} replicas, {needed} required", failures, needed, ok
            )

    def pin(self, cid: Cid) -> None:
        """Pin on every replica; at least ``min_pins`` must succeed."""
        self._each("pin", "pin", cid, self.min_pins)

    def unpin(self, cid: Cid) -> None:
        """Unpin everywhere; every replica must answer (a down one keeps its pin)."""
        self._each("unpin", "unpin", cid, len(self.replicas))

    def pins(self) -> list[Cid]:
        """Union of the replicas' pins (by block, first spelling kept)."""
        seen: dict[bytes, Cid] = {}
        for replica in self.replicas:
            for c in replica.pins():
                seen.setdefault(CidInfo.parse(c).digest, c)
        return list(seen.values())

    def stat(self, cid: Cid) -> BlobStat:
        """Size from the first replica that answers; pinned if any replica pins it."""
        stats: list[BlobStat] = []
        last: StorageError | None = None
        for replica in self.replicas:
            try:
                stats.append(replica.stat(cid))
            except StorageError as exc:
                last = exc
        if not stats:
            raise last or BlobNotFound(cid)
        return BlobStat(Cid(cid), stats[0].size, any(s.pinned for s in stats))

    def gc(self) -> GcResult:
        """Garbage-collect every replica; totals are summed."""
        results = [r.gc() for r in self.replicas]
        return GcResult(sum(r.removed_blocks for r in results), sum(r.freed_bytes for r in results))

    def unpin_orphans(
        self, referenced: Collection[Cid], candidates: Iterable[Cid] | None = None
    ) -> list[Cid]:
        """Unpin orphans on every replica; returns the union unpinned."""
        cand = list(candidates) if candidates is not None else None
        out: dict[bytes, Cid] = {}
        for replica in self.replicas:
            for c in replica.unpin_orphans(referenced, cand):
                out.setdefault(CidInfo.parse(c).digest, c)
        return list(out.values())


def _majority_cid(cids: dict[str, Cid]) -> Cid:
    if not cids:
        return Cid("")
    counts: dict[bytes, list[Cid]] = {}
    for c in cids.values():
        counts.setdefault(CidInfo.parse(c).digest, []).append(c)
    return max(counts.values(), key=len)[0]
