"""Exactly-once record writes: a local SQLite journal of the steps of ``add_record``.

A write moves ``pending → encrypted → stored → append_sent → confirmed`` (or
``rolled_back``), and each transition is committed before the next step starts; the
states and transitions are drawn in one place, :mod:`emrshare.journal._driver`.

Slots. The index contract numbers each writer's entries per (patient, tag) *stream* and
accepts sequence ``n`` only right after ``n - 1``; the record id is derived from the slot.
The journal hands out the slots (:meth:`Journal.begin`), so a record keeps its id across
retries, "is it appended?" is "is the chain's next slot past it?", and appends go out in
slot order, batched over consecutive slots.

The journal never touches crypto, storage or the chain itself: the work is done by a
:class:`WriteSteps` object (the facades build one from the crypto core, a ``BlobStore``
and the chain bindings), optionally with the bulk capabilities of
:class:`BulkWriteSteps`. A crash or a chain/storage failure leaves the job in its last
committed state; :meth:`Journal.run` (called again by the next write) or
:meth:`Journal.recover` resumes it. A permanent failure (the contract refuses the writer,
say) rolls the job back and unpins its orphaned blob.

Modules: :mod:`~emrshare.journal.steps` (the protocols), ``_journal`` (:class:`Journal`),
``_driver`` (the state machine), ``_bulk`` (bulk capabilities and batches), ``_db`` (the
SQLite table), ``_spool`` (ciphertexts kept between steps), ``_claims`` (which process
drives a job).
"""

from emrshare.journal._driver import RecoveryReport
from emrshare.journal._journal import Journal
from emrshare.journal._spool import INLINE_MAX
from emrshare.journal.steps import (
    BulkWriteSteps,
    JobState,
    ReceiptStatus,
    WriteJob,
    WriteSteps,
    is_permanent,
)

__all__ = [
    "INLINE_MAX",
    "BulkWriteSteps",
    "JobState",
    "Journal",
    "ReceiptStatus",
    "RecoveryReport",
    "WriteJob",
    "WriteSteps",
    "is_permanent",
]
