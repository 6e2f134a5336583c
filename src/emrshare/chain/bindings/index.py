"""The RecordIndex binding: per-patient append-only index of sealed entries, writer
authorizations, and the fast bulk append."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import EntryAppended, WriterAuthorized, WriterRevoked
from emrshare.chain.ids import record_ids
from emrshare.chain.values import Appended, IndexHead
from emrshare.errors import ConfigurationError, ContractRevert
from emrshare.types import CategoryTag

__all__ = ["RecordIndex"]


class RecordIndex(Binding):
    """Per-patient append-only index of sealed entries, with writer authorizations."""

    NAME = "RecordIndex"
    EVENTS = (EntryAppended, WriterAuthorized, WriterRevoked)

    # reads (each at ``block``, default latest)
    def next_sequence(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> int:
        """The sequence the next append by ``writer`` under (patient, tag) must name."""
        return int(self._call("nextSequence", patient, tag, writer, block=block)[0])

    def is_writer(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> bool:
        """Whether ``writer`` may append under (patient, tag) now (authorized and an
        active Provider, or the patient itself)."""
        return bool(self._call("isWriter", patient, tag, writer, block=block)[0])

    def is_authorized(
        self, patient: str, tag: CategoryTag, writer: str, *, block: int | None = None
    ) -> bool:
        """Whether ``writer`` holds an authorization for (patient, tag), membership aside."""
        return bool(self._call("isAuthorized", patient, tag, writer, block=block)[0])

    def head(self, patient: str, *, block: int | None = None) -> IndexHead:
        """The patient's hash-chain head and entry count (at ``block``)."""
        (c,) = self._call("chainOf", patient, block=block)
        return IndexHead(c[0], c[1])

    def entries(
        self, patient: str, tag: CategoryTag | Sequence[CategoryTag] | None = None, **kw: Any
    ) -> Iterator[EntryAppended]:
        """The patient's entries (optionally of one or several tags), in index order."""
        return self.events(EntryAppended, patient=patient, tag=tag, **kw)

    # transactions
    def authorize_writer(self, tag: CategoryTag, writer: str, sealed_payload: bytes) -> Receipt:
        """Let ``writer`` (an active Provider) append under the sender's ``tag``."""
        return self._send("authorizeWriter", tag, writer, sealed_payload)

    def revoke_writer(self, tag: CategoryTag, writer: str) -> Receipt:
        """Withdraw ``writer``'s authorization for the sender's ``tag``."""
        return self._send("revokeWriter", tag, writer)

    def revoke_writers(self, tag: CategoryTag, writers: Sequence[str]) -> Receipt:
        """Withdraw several writers of the sender's ``tag`` (each must be authorized)."""
        return self._send("revokeWriters", tag, list(writers))

    def rekey_writers(
        self,
        old_tag: CategoryTag,
        new_tag: CategoryTag,
        writers: Sequence[str],
        sealed_payloads: Sequence[bytes],
    ) -> Receipt:
        """Move writers from ``old_tag`` to ``new_tag`` (a new epoch) in one transaction."""
        return self._send("rekeyWriters", old_tag, new_tag, list(writers), list(sealed_payloads))

    def append(self, patient: str, tag: CategoryTag, sequence: int, entry: bytes) -> Receipt:
        """Append one entry; ``sequence`` must equal :meth:`next_sequence` (exactly-once)."""
        return self._send("append", patient, tag, sequence, entry)

    def append_batch(
        self, patient: str, tag: CategoryTag, first_sequence: int, entries: Sequence[bytes]
    ) -> Receipt:
        """Append entries under one tag; entry ``i`` gets ``first_sequence + i``."""
        return self._send("appendBatch", patient, tag, first_sequence, list(entries))

    def append_entries(
        self,
        patient: str,
        tag: CategoryTag,
        first_sequence: int,
        sealed: Sequence[bytes],
        *,
        gas: int | None = None,
    ) -> Receipt:
        """Append ``sealed`` entries (``append`` for one, ``appendBatch`` for more), fast.

        The bulk write path: the receipt carries no logs and no decoded events (a batch
        emits hundreds, and decoding them costs more than the round trip). ``gas`` skips
        the estimate. A wrong sequence still raises ``RecordIndex_WrongSequence``.
        """
        if not sealed:
            raise ValueError("append_entries needs at least one entry")
        if len(sealed) == 1:
            data = self._encode("append", (patient, tag, first_sequence, sealed[0]))
        else:
            data = self._encode("appendBatch", (patient, tag, first_sequence, list(sealed)))
        return self.client.send(self.address, data, gas=gas, with_logs=False)

    def writer_events(
        self, patient: str, writer: str, from_block: int, to_block: int
    ) -> list[WriterAuthorized | WriterRevoked]:
        """``writer``'s authorizations and revocations by ``patient`` (every tag) in
        ``[from_block, to_block]``, in chain order, in one paged ``eth_getLogs``."""
        found = self._events_of_kinds(
            (WriterAuthorized, WriterRevoked), from_block, to_block, patient=patient, writer=writer
        )
        return [ev for ev in found if isinstance(ev, WriterAuthorized | WriterRevoked)]

    def append_once(
        self, patient: str, tag: CategoryTag, first_sequence: int, entries: Sequence[bytes]
    ) -> Appended:
        """Append ``entries`` at ``first_sequence`` exactly once, safe to call again.

        A writer records ``first_sequence`` (its :meth:`next_sequence`) before sending, and
        after a crash or timeout simply calls this again with the same arguments: if the
        earlier transaction landed, the contract answers ``RecordIndex_WrongSequence`` with
        ``expected`` past this batch and the result says ``already=True``. Any other
        sequence mismatch is re-raised (another process is writing as the same writer).
        """
        sender = self.client.address
        if sender is None:
            raise ConfigurationError("a read-only ChainClient cannot append")
        of = record_ids(patient, tag, sender)
        ids = tuple(of(first_sequence + i) for i in range(len(entries)))
        try:
            if len(entries) == 1:
                receipt = self.append(patient, tag, first_sequence, entries[0])
            else:
                receipt = self.append_batch(patient, tag, first_sequence, entries)
        except ContractRevert as exc:
            expected = exc.args_by_name.get("expected")
            if (
                exc.name == "RecordIndex_WrongSequence"
                and isinstance(expected, int)
                and expected >= first_sequence + len(entries)
                and first_sequence == exc.args_by_name.get("given")
            ):
                return Appended(ids, None, already=True)
            raise
        return Appended(ids, receipt, already=False)
