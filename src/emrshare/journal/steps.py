"""What the journal asks of its caller: the work behind each transition of a write.

The journal never touches crypto, storage or the chain itself. A :class:`WriteSteps`
object does that work (the facades build one from the crypto core, a ``BlobStore`` and the
chain bindings); the journal records which step each write has reached and calls the next
one (the states and transitions are drawn in :mod:`emrshare.journal._driver`).

Bulk writes go faster with a few optional capabilities, each a small protocol of its
own: :class:`ConfirmsOnSend`, :class:`StoresConcurrently`, :class:`StoresMany` and
:class:`SealsMany`. :class:`BulkWriteSteps` is steps with all of them; the journal uses
whichever of them a steps object offers and falls back to the plain :class:`WriteSteps`
methods for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, Protocol, runtime_checkable

from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    ContractRevert,
    CryptoError,
    WireFormatError,
)
from emrshare.types import Cid, RecordId

__all__ = [
    "BulkWriteSteps",
    "ConfirmsOnSend",
    "JobState",
    "ReceiptStatus",
    "SealsMany",
    "StoreMany",
    "StoresConcurrently",
    "StoresMany",
    "WriteJob",
    "WriteSteps",
    "is_permanent",
]

ReceiptStatus = Literal["confirmed", "failed", "unknown"]


class JobState(StrEnum):
    """Where a journaled write stands (see :mod:`emrshare.journal._driver`)."""

    PENDING = "pending"
    ENCRYPTED = "encrypted"
    STORED = "stored"
    APPEND_SENT = "append_sent"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"

    @property
    def finished(self) -> bool:
        return self in (JobState.CONFIRMED, JobState.ROLLED_BACK)


@dataclass(frozen=True, slots=True)
class WriteJob:
    """One journaled write, as last committed."""

    record_id: RecordId
    stream: str
    sequence: int
    patient: str
    category: str
    state: JobState
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    cid: Cid | None = None
    tx_hash: bytes | None = None
    attempts: int = 0
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # The opaque secret (e.g. the data key sealed to the writer) never appears in a repr.
    secret: bytes | None = field(default=None, repr=False)


class WriteSteps(Protocol):
    """The work behind each journal transition, supplied by the caller.

    Every method must be safe to call again after a crash (storing the same ciphertext
    twice yields the same CID; appends are guarded by :meth:`appended`).
    """

    def encrypt(self, job: WriteJob, sink: IO[bytes]) -> bytes:
        """Write the record's ciphertext to ``sink``; return the opaque secret to keep."""

    def store(self, job: WriteJob, ciphertext: IO[bytes]) -> Cid:
        """Put and pin the ciphertext; return its CID."""

    def seal(self, job: WriteJob, cid: Cid, secret: bytes) -> bytes:
        """Build and seal the index entry for ``job`` (its blob is stored under ``cid``)."""

    def appended(self, jobs: Sequence[WriteJob]) -> set[RecordId]:
        """Which of these record ids are already in the on-chain index."""

    def send_append(self, jobs: Sequence[WriteJob], sealed: Sequence[bytes]) -> bytes:
        """Send one (batch) append transaction for ``jobs``; return its hash.

        Steps that are :class:`ConfirmsOnSend` return only once the transaction was mined
        successfully (and raise otherwise).
        """

    def receipt(self, tx_hash: bytes) -> ReceiptStatus:
        """Wait for the transaction: mined and successful, failed/dropped, or still unknown."""

    def unpin(self, cid: Cid) -> None:
        """Unpin an orphaned blob (its entry never reached the index)."""


#: Stores a group of ciphertexts at once, one per job, and returns their CIDs in order.
StoreMany = Callable[[Sequence[WriteJob], Sequence[IO[bytes]]], list[Cid]]


@runtime_checkable
class ConfirmsOnSend(Protocol):
    """Steps whose :meth:`~WriteSteps.send_append` may wait for the receipt."""

    @property
    def confirms_on_send(self) -> bool:
        """True if ``send_append`` returns only once the append was mined successfully
        (and raises otherwise): the journal then skips :meth:`~WriteSteps.receipt`."""


@runtime_checkable
class StoresConcurrently(Protocol):
    """Steps whose :meth:`~WriteSteps.store` is thread-safe."""

    @property
    def store_concurrency(self) -> int:
        """How many threads a bulk write may call ``store`` from at once (1: one)."""


@runtime_checkable
class StoresMany(Protocol):
    """Steps that can store a group of blobs in one durability round."""

    @property
    def store_many(self) -> StoreMany | None:
        """The group store, or ``None`` if it is unavailable (say the blob store has no
        ``put_many``). It returns only when every blob of the group is durable; bulk
        writes prefer it to :class:`StoresConcurrently`."""


@runtime_checkable
class SealsMany(Protocol):
    """Steps that can seal a bulk write's index entries ahead of their appends."""

    def seal_many(self, jobs: Sequence[WriteJob]) -> Iterator[bytes | None]:
        """The sealed entries of ``jobs``, in job order (e.g. sealed on other cores while
        the journal sends the previous batch). ``None`` for a job, or an iterator that
        ends or raises early, makes the journal call :meth:`~WriteSteps.seal` for it."""


@runtime_checkable
class BulkWriteSteps(
    WriteSteps, ConfirmsOnSend, StoresConcurrently, StoresMany, SealsMany, Protocol
):
    """Write steps with every bulk capability (the facades' record writer is one)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: the write must be rolled back and the error reported.

    Contract reverts, refusals, crypto and format errors and bad configuration are
    permanent; storage and chain outages, timeouts and crashes are not.
    """
    return isinstance(
        exc, ContractRevert | AccessDenied | CryptoError | WireFormatError | ConfigurationError
    )
