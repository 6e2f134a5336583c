"""The parts of a bulk write: which capabilities the steps offer, entries sealed ahead,
and appendable batches."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from emrshare.journal.steps import (
    ConfirmsOnSend,
    SealsMany,
    StoreMany,
    StoresConcurrently,
    StoresMany,
    WriteJob,
    WriteSteps,
)

SealMany = Callable[[Sequence[WriteJob]], Iterator[bytes | None]]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The bulk capabilities a steps object offers (see :mod:`emrshare.journal.steps`);
    what it does not offer is done with the plain :class:`WriteSteps` methods."""

    confirms_on_send: bool = False
    store_concurrency: int = 1
    store_many: StoreMany | None = None
    seal_many: SealMany | None = None

    @classmethod
    def of(cls, steps: WriteSteps) -> Capabilities:
        return cls(
            confirms_on_send=isinstance(steps, ConfirmsOnSend) and bool(steps.confirms_on_send),
            store_concurrency=(
                int(steps.store_concurrency) if isinstance(steps, StoresConcurrently) else 1
            ),
            store_many=steps.store_many if isinstance(steps, StoresMany) else None,
            seal_many=steps.seal_many if isinstance(steps, SealsMany) else None,
        )


class Presealed:
    """Index entries sealed ahead of their appends by ``seal_many`` (in job order, e.g. on
    other cores while this thread sends the previous batch).

    :meth:`take` answers ``None`` whenever no sealed entry is ready for a job (no
    ``seal_many``, a job it skipped or failed on, the iterator ended): the caller then
    seals that job itself with ``steps.seal``, so errors surface exactly as without it.
    """

    def __init__(self, seal_many: SealMany | None, jobs: Sequence[WriteJob]) -> None:
        ready = [j for j in jobs if j.cid is not None and j.secret is not None]
        self._ids = iter([bytes(j.record_id) for j in ready])
        self._it: Iterator[bytes | None] | None = (
            iter(seal_many(ready)) if seal_many is not None and ready else None
        )

    def take(self, job: WriteJob) -> bytes | None:
        want = bytes(job.record_id)
        while self._it is not None:
            rid = next(self._ids, None)
            try:
                sealed = next(self._it) if rid is not None else None
            except Exception:  # the caller's own seal reports it
                sealed = None
                rid = None
            if rid is None:
                self.close()
                return None
            if rid == want:
                return sealed
        return None

    def close(self) -> None:
        """Stop sealing ahead (a generator is closed: its cleanup runs now)."""
        it, self._it = self._it, None
        if isinstance(it, Generator):
            it.close()


def append_batches(
    stored: Sequence[WriteJob], unstored: Sequence[WriteJob], batch_size: int
) -> list[list[WriteJob]]:
    """Split stored jobs into appendable batches: one stream, consecutive slots, in order.

    A stream's jobs after a slot that is not stored yet wait: the contract would refuse
    them (slots are filled strictly in order).
    """
    blocked: dict[str, int] = {}
    for job in unstored:
        blocked[job.stream] = min(blocked.get(job.stream, job.sequence), job.sequence)
    batches: list[list[WriteJob]] = []
    for job in sorted(stored, key=lambda j: (j.stream, j.sequence)):
        if job.sequence > blocked.get(job.stream, job.sequence):
            continue
        last = batches[-1] if batches else None
        if (
            last is not None
            and last[-1].stream == job.stream
            and last[-1].sequence + 1 == job.sequence
            and len(last) < batch_size
        ):
            last.append(job)
        else:
            batches.append([job])
    return batches
