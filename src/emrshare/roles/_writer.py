"""The record write path shared by ``Provider`` and ``Patient``: journaled, exactly-once
writes (see :mod:`emrshare.journal`) whose steps :class:`~emrshare.roles._steps.WriterSteps`
does, and the same-content rule (a record is not written twice by mistake)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypedDict, TypeVar

from nacl.public import PrivateKey

from emrshare.chain import Contracts, record_ids
from emrshare.errors import ChainError, InvalidInput, JournalError
from emrshare.journal import Journal, RecoveryReport, WriteJob
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._sealing_pool import Sealer
from emrshare.roles._steps import OnStage, WriterSteps, WriteStage, WriteTarget, tell
from emrshare.types import RecordId

__all__ = [
    "AddOptions",
    "OnStage",
    "RecordGroup",
    "RecordSource",
    "RecordWriter",
    "WriteStage",
    "WriteTarget",
]

#: Source of one record: bytes, a binary file object, an iterable of byte strings, a path.
RecordSource = bytes | IO[bytes] | Iterable[bytes] | Path


class AddOptions(TypedDict, total=False):
    """The keyword options of one record write (see :meth:`RecordWriter.add`)."""

    media_type: str
    progress: Progress | None
    created_at: int | None
    again: bool
    on_stage: OnStage | None


#: One group of a bulk write (:meth:`RecordWriter.add_groups`): category, media
#: type, sources, and their identities (or ``None``).
RecordGroup = tuple[str, str, Sequence[RecordSource], Sequence[str] | None]

#: How a journaled content name made from an identity (not from the bytes) begins.
_IDENTITY = "identity:"

P = ParamSpec("P")
R = TypeVar("R")


def _one_at_a_time(
    method: Callable[Concatenate[RecordWriter, P], R],
) -> Callable[Concatenate[RecordWriter, P], R]:
    """One write at a time per writer, from whichever thread calls: the journal's SQLite
    connection (opened in the first caller's thread) then serves every thread in turn."""

    @functools.wraps(method)
    def locked(self: RecordWriter, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


def _source_size(source: object) -> int | None:
    """The size of a file ``source`` (``None`` for a stream); a source that cannot be read
    is :class:`InvalidInput` before anything is journaled."""
    if isinstance(source, str):
        raise InvalidInput(
            "a record's content is bytes, a binary file, an iterable of bytes or a Path, "
            "not a str; encode text first (e.g. text.encode())"
        )
    if not isinstance(source, Path):
        return None
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the record file {source} ({exc.strerror or exc}); check the path"
        ) from exc
    if source.is_dir():
        raise InvalidInput(f"{source} is a directory; give the path of a file")
    return size


def _plaintext_sha256(source: object) -> bytes | None:
    """SHA-256 of a source that can be read before it is encrypted (bytes, a file);
    ``None`` for a stream, which can be read only once."""
    if isinstance(source, bytes | bytearray | memoryview):
        return hashlib.sha256(source).digest()
    if not isinstance(source, Path):
        return None
    digest = hashlib.sha256()
    try:
        with source.open("rb") as fh:
            while piece := fh.read(1 << 20):
                digest.update(piece)
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the record file {source} ({exc.strerror or exc}); check the path"
        ) from exc
    return digest.digest()


class _Tally:
    """A bulk write's ``progress(done, total)`` over its runs: records found on chain,
    then each run's confirmed records on top of those before it."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self._progress = progress
        self._total = total
        self._done = 0

    def add(self, n: int) -> None:
        self._done += n
        if self._progress is not None:
            self._progress(self._done, self._total)

    def run(self) -> Callable[[int, int], None] | None:
        if self._progress is None:
            return None
        progress, base, total = self._progress, self._done, self._total
        return lambda done, _: progress(base + done, total)


def _same_many(
    writer: RecordWriter,
    target: WriteTarget,
    sources: Sequence[RecordSource],
    contents: Sequence[str | None],
    out: list[RecordId | None],
    on_stage: OnStage | None,
) -> list[WriteJob]:
    """:meth:`RecordWriter._same` for a bulk write, filling ``out``: the confirmed writes
    are checked against the index with one query per stream, not one per record.
    Returns the interrupted writes found (``resumed``; their sources registered) for
    the caller to finish in one run."""
    named = [c for c in contents if c is not None]
    known = writer.journal.same_contents(target.patient, target.category, named)
    found = {
        i: known[content]
        for i, content in enumerate(contents)
        if content is not None and content in known
    }
    confirmed = writer.appended([j for j in found.values() if j.state.finished])
    for job in found.values():
        if not job.state.finished and not writer.journal.claimable(job.record_id):
            raise JournalError(
                f"record 0x{job.record_id.hex()} of the same content is being written by "
                "another process; wait for it to finish"
            )
    resumed: list[WriteJob] = []
    for i, job in found.items():
        if not job.state.finished:
            tell(on_stage, "resumed", job.record_id)
            writer._sources[bytes(job.record_id)] = (sources[i], None, None)
            resumed.append(job)
            out[i] = job.record_id
        elif job.record_id in confirmed:
            tell(on_stage, "existing", job.record_id)
            out[i] = job.record_id
    return resumed


class RecordWriter(WriterSteps):
    """Journaled, exactly-once writes of one writer identity (Ethereum key + box key)."""

    def __init__(
        self,
        network: Network,
        *,
        eth_key: bytes,
        box_key: PrivateKey,
        state_dir: Path,
        resolve: Callable[[str, Sequence[str]], list[WriteTarget]],
        target_for_epoch: Callable[[str, str, int], WriteTarget],
        sealer: Sealer | None = None,
        now: Callable[[], float] = time.time,
        contracts: Contracts | None = None,
    ) -> None:
        super().__init__(
            network,
            eth_key=eth_key,
            box_key=box_key,
            target_for_epoch=target_for_epoch,
            sealer=sealer,
            contracts=contracts,
        )
        self._lock = threading.RLock()
        self._resolve = resolve  # (patient, categories) → their targets, in one scan
        self._now = now
        self.journal = Journal(Path(state_dir) / "journal")
        self._content_key = hashlib.sha256(b"emrshare/content-id/v1\0" + bytes(box_key)).digest()

    @_one_at_a_time
    def close(self) -> None:
        self.journal.close()

    # -- public operations -----------------------------------------------------------------

    @_one_at_a_time
    def add(
        self,
        patient: str,
        category: str,
        source: RecordSource,
        *,
        media_type: str = "application/octet-stream",
        progress: Progress | None = None,
        created_at: int | None = None,
        again: bool = False,
        on_stage: OnStage | None = None,
    ) -> RecordId:
        """Write one record; returns its record id once its entry is on chain.

        Bytes and files are recognised by their content (see :meth:`content_id`): unless
        ``again``, a write of the same content, patient and category that this writer
        began before is finished (if interrupted) or reported (if on chain) instead of
        being written a second time. ``on_stage`` says which (see :data:`WriteStage`).
        """
        total = _source_size(source)
        (target,) = self._resolve(patient, [category])
        content = self.content_id(target, source)
        if content is not None and not again:
            same = self._same(target, content, source, progress, total, on_stage)
            if same is not None:
                return same
        self._resume()
        path = source if isinstance(source, Path) else None
        if isinstance(source, bytes | bytearray | memoryview):
            total = len(source)
        job = self.journal.begin(
            target.patient,
            target.category,
            stream=self._stream(target),
            next_sequence=self._next_sequence(target),
            record_id_of=record_ids(target.patient, target.tag, self.address),
            meta=self._meta(target, media_type, created_at, content),
            source=path.resolve() if path is not None else None,
            unique_content=not again,  # another process may have begun it since _same
        )
        tell(on_stage, "journaled", job.record_id)
        self._drive(job, path if path is not None else source, progress, total, on_stage)
        return job.record_id

    def _same(
        self,
        target: WriteTarget,
        content: str,
        source: RecordSource,
        progress: Progress | None,
        total: int | None,
        on_stage: OnStage | None,
    ) -> RecordId | None:
        """The record of ``content`` if this writer wrote or began it before: an open write
        is finished now, a confirmed one still in the index is reported; else ``None``."""
        job = self.journal.same_content(target.patient, target.category, content)
        if job is None:
            return None
        if job.state.finished:
            if job.record_id not in self.appended([job]):
                return None  # the chain was reset under the journal (a devnet)
            tell(on_stage, "existing", job.record_id)
            return job.record_id
        if not self.journal.claimable(job.record_id):
            raise JournalError(
                f"record 0x{job.record_id.hex()} of the same content is being written by "
                "another process; wait for it to finish"
            )
        tell(on_stage, "resumed", job.record_id)
        self._drive(job, source, progress, total, on_stage)
        return job.record_id

    def _drive(
        self,
        job: WriteJob,
        source: Any,
        progress: Progress | None,
        total: int | None,
        on_stage: OnStage | None,
    ) -> None:
        key = bytes(job.record_id)
        self._sources[key] = (source, progress, total)
        if on_stage is not None:
            self._stages[key] = on_stage
        try:
            self.journal.run([job], self)
        finally:
            self._sources.pop(key, None)
            self._stages.pop(key, None)

    def content_id(self, target: WriteTarget, source: object) -> str | None:
        """The writer's name for ``source``'s content in ``target``: an HMAC, under a key
        derived from the writer's box key, of patient, category and the plaintext's
        SHA-256 (``None`` for a stream, which cannot be read twice).

        It is kept only in the local journal (0600): never on chain or in storage, where
        an observer could confirm a guessed content. Keyed, so a copy of the journal does
        not confirm one either.
        """
        digest = _plaintext_sha256(source)
        if digest is None:
            return None
        return self._content_name(target.patient, target.category, digest)

    def _content_name(self, patient: str, category: str, plaintext_sha256: bytes) -> str:
        msg = f"{checksum(patient)}\n{category}\n".encode() + plaintext_sha256
        return hmac.new(self._content_key, msg, hashlib.sha256).hexdigest()

    def _check_content(self, job: WriteJob, plaintext_sha256: bytes) -> None:
        # A file re-read (a resumed or recovered write) or changing while it is read must
        # still be the content the journal names, or a later add of that content would
        # be told this record. InvalidInput is permanent: the write is rolled back.
        named = job.meta.get("content")
        if (
            named is not None
            and not named.startswith(_IDENTITY)
            and named != self._content_name(job.patient, job.category, plaintext_sha256)
        ):
            raise InvalidInput(
                f"the file of record 0x{job.record_id.hex()} changed after the write began; "
                "the write was undone: add the file again"
            )

    def identity_id(self, target: WriteTarget, identity: str) -> str:
        """The writer's name for a record that a caller names by ``identity`` (a FHIR
        resource's ``Type/id/_history/version``), keyed as :meth:`content_id` is and kept
        in the journal only: the same identity again is the same record whatever its
        bytes (an EHR re-exports a resource with other whitespace or key order)."""
        msg = f"{checksum(target.patient)}\n{target.category}\nidentity\n{identity}".encode()
        return _IDENTITY + hmac.new(self._content_key, msg, hashlib.sha256).hexdigest()

    @_one_at_a_time
    def add_groups(
        self,
        patient: str,
        groups: Sequence[RecordGroup],
        *,
        batch_size: int = 50,
        again: bool = False,
        on_stage: OnStage | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[RecordId]]:
        """Write many records, in groups (category, media type, sources, identities), in one
        journaled run: the records of every category are encrypted, stored and sealed
        together, then appended in one transaction per category (batches of
        ``batch_size``). Returns each group's record ids.

        Files (``Path`` sources) are recognised as in :meth:`add`: unless ``again``, a file
        whose content this writer wrote or began before for this patient and category is
        finished or reported, not written again. In-memory contents are written, unless
        the group's identities (one per source) name them: a source whose identity this
        writer wrote or began before is then finished or reported instead. ``on_stage``
        is told ``existing``, ``resumed`` or ``journaled`` for each record.
        ``progress(done, total)`` counts the records of all groups on chain: first the
        ones already there, then as each append batch is confirmed (never decreasing).
        """
        for _, _, sources, identities in groups:
            if identities is not None and len(identities) != len(sources):
                raise InvalidInput(
                    f"{len(identities)} identities for {len(sources)} records: give one per record"
                )
            for source in sources:
                _source_size(source)
        targets = self._resolve(patient, [g[0] for g in groups])
        prepared = []
        for target, (_, _, sources, identities) in zip(targets, groups, strict=True):
            contents = [
                self.identity_id(target, identities[i])
                if identities is not None
                else (self.content_id(target, s) if isinstance(s, Path) else None)
                for i, s in enumerate(sources)
            ]
            out: list[RecordId | None] = [None] * len(sources)
            prepared.append((target, contents, out))
        total = sum(len(g[2]) for g in groups)
        tally = _Tally(progress, total)
        if not again:
            resumed: list[WriteJob] = []
            for (target, contents, out), (_, _, sources, _) in zip(prepared, groups, strict=True):
                resumed.extend(_same_many(self, target, sources, contents, out, on_stage))
            tally.add(sum(r is not None for _, _, out in prepared for r in out) - len(resumed))
            # Interrupted writes of this call's contents are finished together, in
            # batches (not one transaction each), before any new one is begun.
            self._run(resumed, batch_size, tally)
        else:
            tally.add(0)
        self._resume()
        jobs: list[WriteJob] = []
        for (target, contents, out), (_, media_type, sources, _) in zip(
            prepared, groups, strict=True
        ):
            todo = [i for i in range(len(sources)) if out[i] is None]
            if not todo:
                continue
            begun = self.journal.begin_many(
                target.patient,
                target.category,
                [self._meta(target, media_type, None, contents[i]) for i in todo],
                stream=self._stream(target),
                next_sequence=self._next_sequence(target),
                record_id_of=record_ids(target.patient, target.tag, self.address),
                # Files can be re-read if the process dies before their ciphertext is spooled.
                sources=[
                    s.resolve() if isinstance(s, Path) else None for s in (sources[i] for i in todo)
                ],
                unique_content=not again,
            )
            for i, job in zip(todo, begun, strict=True):
                self._sources[bytes(job.record_id)] = (sources[i], None, None)
                out[i] = job.record_id
                tell(on_stage, "journaled", job.record_id)
            jobs.extend(begun)
        self._run(jobs, batch_size, tally)
        return [[r for r in out if r is not None] for _, _, out in prepared]

    def _run(self, jobs: Sequence[WriteJob], batch_size: int, tally: _Tally) -> None:
        """Drive the jobs of a bulk write (their sources are in ``_sources``)."""
        try:
            if jobs:
                self.journal.run(jobs, self, batch_size=batch_size, progress=tally.run())
                tally.add(len(jobs))
        finally:
            for job in jobs:
                self._sources.pop(bytes(job.record_id), None)

    @_one_at_a_time
    def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """Finish (or roll back) every write an earlier crash or outage interrupted."""
        return self.journal.recover(self, rollback=rollback)

    def _resume(self) -> None:
        # "Resumed by the next call": an earlier interrupted write is finished first. If
        # it still cannot finish (the outage goes on), the new write proceeds anyway.
        if self.journal.pending():
            with contextlib.suppress(JournalError, ChainError):
                self.journal.recover(self)

    def _stream(self, target: WriteTarget) -> str:
        return f"{target.patient}/0x{bytes(target.tag).hex()}/{self.address}"

    def _next_sequence(self, target: WriteTarget) -> int:
        return self.network.contracts.index.next_sequence(target.patient, target.tag, self.address)

    def _meta(
        self, target: WriteTarget, media_type: str, created_at: int | None, content: str | None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "epoch": target.epoch,
            "tag": "0x" + bytes(target.tag).hex(),
            "media_type": media_type,
            "created_at": int(created_at if created_at is not None else self._now()),
        }
        if content is not None:
            meta["content"] = content
        return meta

    # -- WriteSteps ---------------------------------------------------------------------------
