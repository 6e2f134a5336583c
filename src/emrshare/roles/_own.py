"""A patient's own index: verified entries, opened with the patient's keys (split from
the patient facade)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from emrshare.chain import EntryAppended
from emrshare.crypto import IndexEntry, PatientKeys, SealedEntry, open_entry
from emrshare.errors import ConfigurationError
from emrshare.network import Network
from emrshare.roles._common import (
    MembershipCache,
    RecordInfo,
    check_entry,
    check_output_path,
    checksum,
    id32,
    read_record,
    read_record_to,
    verified_entries,
)
from emrshare.types import CategoryTag, RecordId

__all__ = ["OwnIndex"]


class OwnIndex:
    """The patient's index, verified once per new block range and kept in memory.

    ``tags`` maps every tag the patient can name to its (category, epoch).
    """

    def __init__(self, network: Network, keys: PatientKeys, members: MembershipCache) -> None:
        self.network = network
        self.keys = keys
        self.address = keys.address
        self._members = members
        self._verified: tuple[bytes, int, int] | None = None
        self._chain: list[EntryAppended] = []

    def entries(self) -> list[EntryAppended]:
        """Every entry of this patient's index up to the newest confirmed block, verified
        to be the whole hash chain there (count and head equal the contract's at that
        block, so a withheld tail is an :class:`IndexIntegrityError`)."""
        block = self.network.chain.safe_block()
        new, self._verified = verified_entries(
            self.network.contracts.index, self.address, block, after=self._verified
        )
        self._chain.extend(new)
        return list(self._chain)

    def records(
        self, tags: Mapping[bytes, tuple[str, int]], category: str | None = None
    ) -> list[RecordInfo]:
        """This patient's records (optionally of one category), opened and verified."""
        out = []
        for ev in self.entries():
            named = tags.get(bytes(ev.tag))
            if named is None or (category is not None and named[0] != category):
                continue
            entry = self.open(ev, named)
            out.append(
                RecordInfo(
                    record_id=RecordId(bytes(ev.record_id)),
                    patient=self.address,
                    author=checksum(ev.author),
                    category=named[0],
                    epoch=named[1],
                    tag=CategoryTag(bytes(ev.tag)),
                    block_number=ev.block_number,
                    media_type=entry.media_type,
                    size=entry.size,
                    created_at=entry.created_at,
                )
            )
        return out

    def open(self, ev: EntryAppended, named: tuple[str, int]) -> IndexEntry:
        entry = open_entry(SealedEntry.from_bytes(bytes(ev.entry)), self.keys, *named)
        return check_entry(entry, ev, self.address, named[1], self._members)

    def find(
        self, record: RecordId | bytes | str, tags: Mapping[bytes, tuple[str, int]]
    ) -> tuple[EntryAppended, tuple[str, int]]:
        rid = id32(record)
        for ev in self.entries():
            if bytes(ev.record_id) == rid:
                named = tags.get(bytes(ev.tag))
                if named is None:
                    raise ConfigurationError(
                        f"record 0x{rid.hex()} is under a category this machine does not "
                        "know; pass known_categories"
                    )
                return ev, named
        raise ConfigurationError(f"no record 0x{rid.hex()} in this patient's index")

    def read(self, record: RecordId | bytes | str, tags: Mapping[bytes, tuple[str, int]]) -> bytes:
        """The plaintext of one of the patient's own records (fully verified)."""
        ev, named = self.find(record, tags)
        return read_record(self.network.store, self.open(ev, named))

    def read_to(
        self, record: RecordId | bytes | str, path: Path, tags: Mapping[bytes, tuple[str, int]]
    ) -> int:
        """Write one record to ``path`` (only once verified); returns its size."""
        path = check_output_path(path)
        ev, named = self.find(record, tags)
        return read_record_to(self.network.store, self.open(ev, named), path)
