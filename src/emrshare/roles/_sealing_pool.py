"""Sealing a bulk write's index entries: the :class:`Sealer` protocol the record writer
takes, sealing in this process (:class:`InProcessSealer`) or on forked worker processes
(:class:`PoolSealer`; signing and Umbral encryption are most of a bulk write's CPU)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from typing import Protocol

import umbral_pre

from emrshare._process import set_parent_death_signal
from emrshare.crypto import DataKey, IndexEntry, SealedEntry, seal_entry
from emrshare.types import Address, Cid, RecordId

__all__ = ["InProcessSealer", "PoolSealer", "SealInput", "Sealer"]


@dataclass(frozen=True, slots=True)
class SealInput:
    """Everything one index entry is built from (picklable: sent to worker processes).

    **Warning:** holds the record's data key.
    """

    patient: Address
    record_id: RecordId
    cid: Cid
    data_key: bytes
    plaintext_sha256: bytes
    size: int
    media_type: str
    category: str
    epoch: int
    created_at: int
    category_public_key: bytes  # compressed Umbral public key of (category, epoch)

    def __repr__(self) -> str:
        return f"SealInput(record_id=0x{bytes(self.record_id).hex()})"


_keys: dict[bytes, umbral_pre.PublicKey] = {}


def seal_one(author_key: bytes, item: SealInput) -> bytes:
    """Build, sign (with the author's Ethereum key) and seal one index entry."""
    public = _keys.get(item.category_public_key)
    if public is None:
        public = _keys[item.category_public_key] = umbral_pre.PublicKey.from_compressed_bytes(
            item.category_public_key
        )
    entry = IndexEntry.create(
        patient=item.patient,
        record_id=item.record_id,
        cid=item.cid,
        data_key=DataKey(item.data_key),
        plaintext_sha256=item.plaintext_sha256,
        size=item.size,
        media_type=item.media_type,
        category=item.category,
        epoch=item.epoch,
        created_at=item.created_at,
        author_key=author_key,
    )
    return bytes(seal_entry(entry, public))


class Sealer(Protocol):
    """Seals index entries for one author."""

    def seal(self, item: SealInput) -> bytes:
        """One sealed entry (raises what building or sealing it raises)."""
        ...

    def seal_many(self, items: Sequence[SealInput | None]) -> Iterator[bytes | None]:
        """Sealed entries for a bulk write, in order, ahead of their appends. It may stop
        early or answer ``None`` (an item it could not seal, or ``None`` in): the writer
        then seals that one with :meth:`seal`, which raises the real error."""
        ...


class InProcessSealer:
    """Seals every entry in this process, as the journal reaches it."""

    def __init__(self, author_key: bytes) -> None:
        self._key = author_key

    def __repr__(self) -> str:
        return "InProcessSealer()"

    def seal(self, item: SealInput) -> bytes:
        return seal_one(self._key, item)

    def seal_many(self, items: Sequence[SealInput | None]) -> Iterator[bytes | None]:
        return iter(())  # nothing ahead of time: each entry is sealed when appended


#: Entries per task sent to a sealing worker process.
_SEAL_CHUNK = 25
#: Seconds to wait for one chunk from a sealing worker before giving the workers up (a
#: chunk takes well under a second; a forked worker can deadlock on a lock that another
#: thread of the writer held at fork time, and must not hang the bulk write).
_SEAL_WAIT = 60.0


def _worker_init(parent: int) -> None:
    """Worker process start: die with the writer. A worker holds the writer's Ethereum
    key and data keys, and a killed writer (SIGKILL, OOM) runs no cleanup: without a
    parent-death signal its workers lived on as orphans, blocked on their task queue.
    (The signal follows the thread that forked: the one driving the bulk write, which
    outlives the pool.)"""
    set_parent_death_signal()
    if os.getppid() != parent:  # the writer died before the signal was armed
        os._exit(1)


#: A worker's answer for one chunk: ``(record id, sealed entry)`` or ``None`` per item.
_Answers = list[tuple[bytes, bytes] | None]


def _seal_chunk(author_key: bytes, items: Sequence[SealInput | None]) -> _Answers:
    """Worker process: seal index entries, each answered as ``(record id, sealed entry)``
    so the parent can check what it is for (``None`` where one fails)."""
    out: _Answers = []
    for item in items:
        try:
            out.append(
                None if item is None else (bytes(item.record_id), seal_one(author_key, item))
            )
        except Exception:
            out.append(None)
    return out


def _checked(item: SealInput | None, got: object) -> bytes | None:
    """A worker's sealed entry for ``item``, or ``None`` (sealed in-process then) unless it
    names the item's record and has a sealed entry's layout: a misplaced answer would put
    one record's entry in another's slot for good. (The worker is this process, forked:
    its capsule is not parsed again, which would cost the parent more than the seal.)"""
    if item is None or not isinstance(got, tuple) or len(got) != 2:
        return None
    rid, sealed = got
    if rid != bytes(item.record_id) or not isinstance(sealed, bytes):
        return None
    return sealed if SealedEntry.raw_capsule(sealed) is not None else None


class PoolSealer(InProcessSealer):
    """Seals bulk writes of at least ``min_batch`` entries on ``processes`` forked worker
    processes (capped at the CPU count; below 2 it seals in-process), the rest in-process.

    The workers are a :class:`multiprocessing.pool.Pool` started per bulk write: they die
    with the writer (parent-death signal), and a stuck one is ended with
    :meth:`~multiprocessing.pool.Pool.terminate` after ``_SEAL_WAIT`` seconds.
    """

    def __init__(self, author_key: bytes, *, processes: int = 2, min_batch: int = 200) -> None:
        super().__init__(author_key)
        self.processes = processes
        self.min_batch = min_batch

    def __repr__(self) -> str:
        return f"PoolSealer(processes={self.processes}, min_batch={self.min_batch})"

    def seal_many(self, items: Sequence[SealInput | None]) -> Iterator[bytes | None]:
        workers = min(self.processes, os.cpu_count() or 1)
        if workers < 2 or len(items) < self.min_batch:
            return iter(())
        return self._pooled(items, workers)

    def _pooled(self, items: Sequence[SealInput | None], workers: int) -> Iterator[bytes | None]:
        # Sliced lazily: ``items`` may prepare each input on access (the writer's do).
        chunks = (items[i : i + _SEAL_CHUNK] for i in range(0, len(items), _SEAL_CHUNK))
        # fork: workers start in milliseconds and inherit the loaded modules.
        pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_worker_init, initargs=(os.getpid(),)
        )
        try:
            inflight: list[tuple[Sequence[SealInput | None], AsyncResult[_Answers]]] = []
            todo = chunks
            for chunk in todo:
                inflight.append((chunk, pool.apply_async(_seal_chunk, (self._key, chunk))))
                if len(inflight) >= 2 * workers:
                    break
            while inflight:
                chunk, done = inflight.pop(0)
                nxt = next(todo, None)
                if nxt is not None:
                    inflight.append((nxt, pool.apply_async(_seal_chunk, (self._key, nxt))))
                try:
                    results = done.get(timeout=_SEAL_WAIT)
                except Exception:  # a failed or stuck worker: the writer seals the rest
                    return
                if not isinstance(results, list) or len(results) != len(chunk):
                    return  # not an answer for this chunk: the writer seals the rest
                yield from (_checked(i, got) for i, got in zip(chunk, results, strict=True))
            pool.close()
        finally:
            # Ends the workers, stuck ones too (a clean close() above let them finish).
            pool.terminate()
            pool.join()
