"""A patient's own index: verified entries opened with the patient's keys, the records
the patient writes itself, and the writers it authorizes (split from the patient facade)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from emrshare._ids import resolve_id
from emrshare.chain import Contracts, EntryAppended, ProfileRegistered
from emrshare.crypto import (
    IndexEntry,
    PatientKeys,
    SealedEntry,
    open_entry,
    seal_writer_authorization,
)
from emrshare.errors import InvalidInput, RecordNotFound
from emrshare.network import Network
from emrshare.roles._blob_io import check_output_path, read_record, read_record_to
from emrshare.roles._common import RecordInfo, checksum
from emrshare.roles._oplog import EpochState
from emrshare.roles._ops import authorized_writers, member_keys
from emrshare.roles._reads import MembershipCache, check_entry, verified_entries
from emrshare.roles._sealing_pool import PoolSealer
from emrshare.roles._writer import RecordWriter, WriteTarget
from emrshare.types import Address, CategoryTag, RecordId

__all__ = ["OwnIndex", "OwnWrites"]


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
        self._refresh(self.network.chain.safe_block())
        return list(self._chain)

    def verify(self) -> int:
        """Verify the index up to the newest confirmed block (only the blocks not yet
        checked); returns that block's number."""
        block = self.network.chain.safe_block()
        self._refresh(block)
        return block

    def _refresh(self, block: int) -> None:
        new, self._verified = verified_entries(
            self.network.contracts.index, self.address, block, after=self._verified
        )
        self._chain.extend(new)

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
                    author_signature=entry.author_signature,
                )
            )
        return out

    def open(self, ev: EntryAppended, named: tuple[str, int]) -> IndexEntry:
        entry = open_entry(SealedEntry.from_bytes(bytes(ev.entry)), self.keys, *named, origin=ev)
        return check_entry(entry, ev, self.address, named[1], self._members)

    def find(
        self, record: RecordId | bytes | str, tags: Mapping[bytes, tuple[str, int]]
    ) -> tuple[EntryAppended, tuple[str, int]]:
        def listed() -> list[bytes]:
            return [bytes(ev.record_id) for ev in self.entries() if bytes(ev.tag) in tags]

        rid = resolve_id(record, listed, where="in this patient's index")
        for ev in self.entries():
            if bytes(ev.record_id) == rid:
                named = tags.get(bytes(ev.tag))
                if named is None:
                    raise RecordNotFound(
                        "0x" + rid.hex(),
                        f"record 0x{rid.hex()} is under a category this machine does not "
                        "know; pass its name in known_categories",
                    )
                return ev, named
        raise RecordNotFound("0x" + rid.hex(), f"no record 0x{rid.hex()} in this patient's index")

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


class OwnWrites:
    """What a patient writes to its own index: its records (journaled, as a provider's)
    and the writer authorizations of each category.

    ``signed`` are the contracts with the patient's key; ``epochs`` the patient's epochs.
    Callers hold the operation log's lock (a pending revocation first moves the epoch).
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        signed: Contracts,
        epochs: EpochState,
        state_dir: Path,
    ) -> None:
        self.network = network
        self.keys = keys
        self.address = keys.address
        self.signed = signed
        self.epochs = epochs
        self.state_dir = state_dir
        self._writer: RecordWriter | None = None

    def target(self, patient: str, category: str, epoch: int | None = None) -> WriteTarget:
        if checksum(patient) != self.address:
            raise InvalidInput("a patient writes only to its own index")
        e = self.epochs.remember(category) if epoch is None else epoch
        return WriteTarget(
            self.address,
            category,
            e,
            self.keys.tag(category, e),
            self.keys.category_public_key(category, e),
        )

    @property
    def writer(self) -> RecordWriter:
        """The patient's journaled write path (opened on first use)."""
        if self._writer is None:
            self._writer = RecordWriter(
                self.network,
                eth_key=self.keys.ethereum_key,
                box_key=self.keys.box_private_key,
                state_dir=self.state_dir,
                resolve=lambda p, cats: [self.target(p, c) for c in cats],
                target_for_epoch=lambda p, c, e: self.target(p, c, e),
                sealer=PoolSealer(self.keys.ethereum_key),
                contracts=self.signed,  # relayed when the patient's writes are
            )
        return self._writer

    def register(self) -> bool:
        """Publish the patient's public keys (once); True if it sent a transaction."""
        if self.is_registered():
            return False
        pub = self.keys.public_keys()
        self.signed.profiles.register(pub.verifying_key_bytes, pub.box_key_bytes)
        return True

    def is_registered(self) -> bool:
        profiles = self.network.contracts.profiles
        return any(profiles.events(ProfileRegistered, patient=self.address))

    def authorize(self, writer: str, category: str) -> None:
        """Authorize ``writer`` (an admitted Provider) for the category's current epoch."""
        pub = member_keys(self.network, checksum(writer), "provider")
        epoch = self.epochs.remember(category)
        sealed = seal_writer_authorization(self.keys, pub, category, epoch)
        self.signed.index.authorize_writer(self.keys.tag(category, epoch), pub.address, sealed)

    def deauthorize(self, writer: str, category: str) -> None:
        """Withdraw ``writer``'s authorizations of every epoch of ``category``."""
        writer = checksum(writer)
        index = self.network.contracts.index
        for e in range(self.epochs.get(category) + 1):
            tag = self.keys.tag(category, e)
            # The raw authorization: a suspended member's still stands (it would write
            # again once reinstated), so it is withdrawn too.
            if index.is_authorized(self.address, tag, writer):
                self.signed.index.revoke_writer(tag, writer)

    def writers(self, category: str) -> list[Address]:
        """Authorized writers of the current epoch that are active Providers now."""
        tag = self.keys.tag(category, self.epochs.get(category))
        index = self.network.contracts.index
        writers = authorized_writers(self.network, self.address, tag)
        return [w for w in writers if index.is_writer(self.address, tag, w)]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
