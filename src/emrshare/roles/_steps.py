"""The journal steps of a record write (see :class:`~emrshare.journal.WriteSteps`):
encrypt into the spool, store, seal the index entry and append it, over the crypto core,
the blob store and the index contract; index entries are sealed by a
:class:`~emrshare.roles._sealing_pool.Sealer`. :class:`~emrshare.roles._writer.RecordWriter`
adds the public operations."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, overload

import umbral_pre
from nacl.public import PrivateKey

from emrshare.chain import Contracts
from emrshare.crypto import DataKey, encrypt_file, open_sealed, seal
from emrshare.errors import (
    ContractRevert,
    JournalError,
    TransactionFailed,
    TransactionMinedFailed,
)
from emrshare.journal import ReceiptStatus, WriteJob
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._sealing_pool import InProcessSealer, Sealer, SealInput
from emrshare.storage import BulkBlobStore
from emrshare.types import Address, CategoryTag, Cid, RecordId

__all__ = ["OnStage", "WriteStage", "WriteTarget", "WriterSteps", "tell"]

#: What a patient's first append costs more than another (its head and entry count are
#: stored from zero: two 20,000-gas stores), with a margin.
_FIRST_APPEND_GAS = 50_000

# The journal keeps (data key, plaintext hash, size) between "encrypted" and "stored",
# sealed to the writer's own box key so the journal file never holds a data key in clear.
_SECRET_BRAND = b"EMJS"
#: Where one write stands, as ``on_stage(stage, record_id)`` reports it. First one of
#: ``journaled`` (a new write), ``resumed`` (an interrupted write of the same content is
#: finished instead) or ``existing`` (the same content is already on chain: nothing is
#: written); then, as each step starts, ``encrypt``, ``store``, ``append`` (the index
#: entry is built and sealed) and ``confirm`` (the append is sent and its receipt awaited).
WriteStage = Literal["journaled", "resumed", "existing", "encrypt", "store", "append", "confirm"]
OnStage = Callable[[WriteStage, RecordId], None]


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where a record goes: a patient's category at its current epoch."""

    patient: Address
    category: str
    epoch: int
    tag: CategoryTag
    category_public_key: umbral_pre.PublicKey


class _Counting:
    """Wraps a source and reports bytes read to a progress callback."""

    def __init__(self, source: Any, progress: Progress, total: int | None) -> None:
        self._it = _chunks(source)
        self._progress = progress
        self._total = total
        self.done = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> bytes:
        piece: bytes = next(self._it)
        self.done += len(piece)
        self._progress(self.done, self._total)
        return piece


def _chunks(source: Any, size: int = 1 << 20) -> Any:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        yield from (data[i : i + size] for i in range(0, len(data), size)) if data else [b""]
    elif hasattr(source, "read"):
        while piece := source.read(size):
            yield piece
    else:
        yield from source


class WriterSteps:
    """The :class:`~emrshare.journal.BulkWriteSteps` of one writer identity (Ethereum key
    + box key)."""

    #: ``send_append`` waits for the receipt and raises unless the append succeeded.
    confirms_on_send = True
    #: Bulk writes put this many blobs at once (the store's fsyncs overlap).
    store_concurrency = 8

    def __init__(
        self,
        network: Network,
        *,
        eth_key: bytes,
        box_key: PrivateKey,
        target_for_epoch: Callable[[str, str, int], WriteTarget],
        sealer: Sealer | None,
        contracts: Contracts | None = None,
    ) -> None:
        self.network = network
        self._eth_key = eth_key
        self._box = box_key
        self._target_for_epoch = target_for_epoch
        #: Seals the index entries (default: in this process).
        self.sealer: Sealer = sealer if sealer is not None else InProcessSealer(eth_key)
        # ``contracts``: what the appends are sent through (a patient's may be relayed);
        # default: sent with ``eth_key``.
        self._contracts: Contracts = contracts or network.contracts_for(eth_key)
        self.address: Address = checksum(str(self._contracts.index.client.address))
        # Per record being written now: (source, progress, total), and its stage callback.
        self._sources: dict[bytes, tuple[Any, Progress | None, int | None]] = {}
        self._stages: dict[bytes, OnStage] = {}
        # (stream, batch length) -> (calldata size, gas limit) of a mined batch append.
        self._batch_gas: dict[tuple[str, int], tuple[int, int]] = {}
        self._cover: dict[int, tuple[int, int]] = {}  # entries -> (bytes, gas) of one append

    def _stage(self, job: WriteJob, stage: WriteStage) -> None:
        tell(self._stages.get(bytes(job.record_id)), stage, job.record_id)

    def encrypt(self, job: WriteJob, sink: IO[bytes]) -> bytes:
        self._stage(job, "encrypt")
        entry = self._sources.get(bytes(job.record_id))
        if entry is None:
            if job.source is None:
                raise JournalError(
                    f"the content of record 0x{job.record_id.hex()} is no longer available"
                )
            entry = (job.source, None, None)
        source, progress, total = entry
        key = DataKey.generate()
        opened: IO[bytes] | None = None
        if isinstance(source, Path):
            opened = source.open("rb")
            source = opened
        try:
            src: Any = _Counting(source, progress, total) if progress is not None else source
            if isinstance(src, bytes | bytearray | memoryview):
                src = io.BytesIO(bytes(src))
            info = encrypt_file(src, sink, key, job.record_id)
        finally:
            if opened is not None:
                opened.close()
        assert info.plaintext_sha256 is not None
        self._check_content(job, info.plaintext_sha256)
        payload = bytes(key) + info.plaintext_sha256 + info.plaintext_size.to_bytes(8, "big")
        return bytes(seal(self._box.public_key, _SECRET_BRAND, payload))

    def _check_content(self, job: WriteJob, plaintext_sha256: bytes) -> None:
        """Raise if what was encrypted is not the content ``job`` was begun for (a writer
        that names contents overrides this; see ``RecordWriter``)."""

    def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
        self._stage(job, "store")
        return self.network.store.put(ciphertext)

    @property
    def store_many(self) -> Callable[[Sequence[WriteJob], Sequence[IO[bytes]]], list[Cid]] | None:
        """Bulk store when the store is a :class:`BulkBlobStore` (one durability round per
        group; ``LocalStore`` is one); ``None`` lets the journal fall back to ``store``."""
        store = self.network.store
        if not isinstance(store, BulkBlobStore):
            return None

        def store_many(jobs: Sequence[WriteJob], ciphertexts: Sequence[IO[bytes]]) -> list[Cid]:
            cids = list(store.put_many(ciphertexts))
            if len(cids) != len(jobs):
                raise JournalError(f"the store returned {len(cids)} CIDs for {len(jobs)} blobs")
            return cids

        return store_many

    def _seal_input(self, job: WriteJob, cid: Cid, secret: bytes) -> SealInput:
        payload = open_sealed(self._box, _SECRET_BRAND, secret, what="journal secret")
        target = self._target_for_epoch(job.patient, job.category, int(job.meta["epoch"]))
        return SealInput(
            patient=checksum(job.patient),
            record_id=job.record_id,
            cid=cid,
            data_key=payload[:32],
            plaintext_sha256=payload[32:64],
            size=int.from_bytes(payload[64:72], "big"),
            media_type=str(job.meta["media_type"]),
            category=job.category,
            epoch=target.epoch,
            created_at=int(job.meta["created_at"]),
            category_public_key=target.category_public_key.to_compressed_bytes(),
        )

    def seal(self, job: WriteJob, cid: Cid, secret: bytes) -> bytes:
        self._stage(job, "append")
        return self.sealer.seal(self._seal_input(job, cid, secret))

    def seal_many(self, jobs: Sequence[WriteJob]) -> Iterator[bytes | None]:
        """Seal the entries of a bulk write ahead of their appends, in job order, through
        the sealer (on worker processes for a :class:`PoolSealer`). ``None`` for a job
        whose input could not be prepared or whose sealing failed: the journal then calls
        :meth:`seal`, which raises the real error."""
        return self.sealer.seal_many(_Prepared(jobs, self._prepare))

    def _prepare(self, job: WriteJob) -> SealInput | None:
        try:
            assert job.cid is not None and job.secret is not None
            return self._seal_input(job, job.cid, job.secret)
        except Exception:
            return None  # seal() raises it properly

    def appended(self, jobs: Sequence[WriteJob]) -> set[RecordId]:
        done: set[RecordId] = set()
        nexts: dict[str, int] = {}
        for job in jobs:
            if job.stream not in nexts:
                tag = CategoryTag(bytes.fromhex(str(job.meta["tag"])[2:]))
                nexts[job.stream] = self.network.contracts.index.next_sequence(
                    job.patient, tag, self.address
                )
            if job.sequence < nexts[job.stream]:
                done.add(job.record_id)
        return done

    def send_append(self, jobs: Sequence[WriteJob], sealed: Sequence[bytes]) -> bytes:
        for job in jobs:
            self._stage(job, "confirm")
        first = jobs[0]
        tag = CategoryTag(bytes.fromhex(str(first.meta["tag"])[2:]))
        index = self._contracts.index
        # A bulk write sends many batches of one shape: the gas the first one used (the
        # dearest: it also creates the stream's counters), with the client's margin,
        # covers the rest, so they skip eth_estimateGas. A batch of another stream (an
        # import writes many) is covered by any figure of as many entries or more and as
        # many bytes or more, plus what a patient's first append costs (its head and count
        # go from zero). A revert still raises ContractRevert (the client replays a failed
        # transaction to decode it), and any failure forgets the figure so the retry
        # estimates again.
        shape = (first.stream, len(jobs))
        size = sum(len(s) for s in sealed)
        known = self._batch_gas.pop(shape, None)
        gas = (
            known[1] if known is not None and size <= known[0] else self._gas_cover(len(jobs), size)
        )
        try:
            try:
                receipt = index.append_entries(first.patient, tag, first.sequence, sealed, gas=gas)
            except TransactionMinedFailed:
                if gas is None:
                    raise
                # Mined and failed without a decodable revert: the reused figure was too
                # low for this batch (out of gas). Nothing was appended and the nonce was
                # consumed; send once more with a fresh estimate (a real revert raises).
                known = None
                self._cover.clear()
                receipt = index.append_entries(first.patient, tag, first.sequence, sealed)
        except ContractRevert as exc:
            if exc.name == "RecordIndex_WrongSequence":
                # Another write of this stream is ahead of or behind us; not a reason to
                # give the record up: the journal retries after checking the chain.
                raise TransactionFailed(
                    f"slot {first.sequence} is not the index's next slot ({exc}); retrying"
                ) from exc
            raise
        # NonceTooLow (another process sent with this key: a crashed writer, the CLI) is
        # a TransactionFailed: the client re-read the nonce, and the journal retries.
        measured = (size, int(receipt.gas_used * index.client.gas_multiplier) + 5_000)
        self._batch_gas[shape] = known or measured
        if size >= self._cover.get(len(jobs), (0, 0))[0]:
            self._cover[len(jobs)] = measured
        return receipt.tx_hash

    def _gas_cover(self, entries: int, size: int) -> int | None:
        """Gas enough for an append of ``entries`` entries of ``size`` bytes in all, from
        the figures of earlier appends (of any stream); ``None``: estimate it."""
        fits = [g for n, (s, g) in self._cover.items() if n >= entries and s >= size]
        return min(fits) + _FIRST_APPEND_GAS if fits else None

    def receipt(self, tx_hash: bytes) -> ReceiptStatus:
        # "failed" covers a transaction the node dropped (restart, replaced): send again.
        return self._contracts.index.client.transaction_state(tx_hash, timeout=10)

    def unpin(self, cid: Cid) -> None:
        self.network.store.unpin(cid)


def tell(on_stage: OnStage | None, stage: WriteStage, record_id: RecordId) -> None:
    if on_stage is not None:
        on_stage(stage, record_id)


class _Prepared(Sequence[SealInput | None]):
    """A bulk write's seal inputs, each prepared (its journal secret opened) only when
    the sealer takes it: the first chunks go to the workers before the rest is opened."""

    def __init__(
        self, jobs: Sequence[WriteJob], prepare: Callable[[WriteJob], SealInput | None]
    ) -> None:
        self._jobs = jobs
        self._prepare = prepare

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, i: int) -> SealInput | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[SealInput | None]: ...
    def __getitem__(self, i: int | slice) -> SealInput | list[SealInput | None] | None:
        if isinstance(i, slice):
            return [self._prepare(j) for j in self._jobs[i]]
        return self._prepare(self._jobs[i])
