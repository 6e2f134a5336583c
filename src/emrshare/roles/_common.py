"""Value types the facades return, and the checks every read shares."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from web3 import Web3

from emrshare.chain import (
    ZERO_HEAD,
    ConsortiumRegistry,
    EntryAppended,
    GrantStatus,
    RecordIndex,
    Role,
    verify_chain,
)
from emrshare.crypto import IndexEntry, decrypt_stream
from emrshare.errors import (
    ConfigurationError,
    DecryptionError,
    IndexIntegrityError,
    VerificationError,
)
from emrshare.storage import BlobStore
from emrshare.types import Address, CategoryTag, Cid, PolicyId, RecordId

__all__ = [
    "AccessEvent",
    "AccessRequestInfo",
    "GrantInfo",
    "Progress",
    "RecordInfo",
    "parse_duration",
    "parse_role",
]

#: ``progress(done_bytes, total_bytes_or_None)``, called while a record is encrypted or read.
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """One record in a patient's index, as a reader sees it.

    ``category`` is ``None`` when the reader cannot name it (a tag it holds no key or grant
    for). ``media_type``, ``size`` and ``created_at`` are known once the entry was opened.
    """

    record_id: RecordId
    patient: Address
    author: Address
    category: str | None
    epoch: int
    tag: CategoryTag
    block_number: int
    media_type: str | None = None
    size: int | None = None
    created_at: int | None = None


@dataclass(frozen=True, slots=True)
class GrantInfo:
    """A grant of one category (at one epoch) to one grantee, with its current status."""

    policy_id: PolicyId
    patient: Address
    grantee: Address
    category: str | None
    epoch: int
    tag: CategoryTag
    expiry: int
    threshold: int
    proxies: tuple[Address, ...]
    status: str
    block_number: int

    @property
    def active(self) -> bool:
        return self.status == GrantStatus.ACTIVE.name.lower()

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiry, UTC)


@dataclass(frozen=True, slots=True)
class AccessRequestInfo:
    """A member's request for one category of a patient's records.

    The request and its answer are sealed on chain (see :mod:`emrshare.crypto.requests`):
    the patient opens the request (``category``, ``purpose``, ``reason``), the requester
    opens the answer (``status``, ``policy_ids``). A field the reader cannot open is
    ``None`` (the requester reads back its own request from its local copy only).
    ``status`` is ``pending``, ``approved`` or ``denied``.
    """

    request_id: int
    patient: Address
    requester: Address
    category: str | None
    purpose: str | None
    reason: str | None
    status: str
    policy_ids: tuple[PolicyId, ...]
    block_number: int

    @property
    def policy_id(self) -> PolicyId | None:
        """The grant of the category's current epoch (the first one), if approved."""
        return self.policy_ids[0] if self.policy_ids else None


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access a proxy served and logged on chain (the patient's audit trail).

    ``capsule_hashes`` are the capsules the grantee's signed request named;
    ``record_ids`` the patient's records they belong to (aligned). ``evaluated_time`` is
    the chain time of block ``evaluated_at_block`` (checked by the reader: the contract
    cannot). With M-of-N proxies one read is logged by each proxy that served it.
    ``anomaly`` is empty for an access :meth:`Patient.audit` shows, and says what failed
    for one :meth:`Patient.audit_anomalies` returns.
    """

    policy_id: PolicyId
    requester: Address
    proxy: Address
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    evaluated_at_block: int
    evaluated_time: int
    block_number: int
    timestamp: int
    category: str | None
    record_ids: tuple[RecordId, ...] | None
    anomaly: str = ""

    @property
    def count(self) -> int:
        """How many records (capsules) the access served."""
        return len(self.capsule_hashes)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse ``"30d"``, ``"12h"``, ``"1d12h"``, ``"90m"``, ``"2w"`` or plain seconds."""
    value = text.strip().lower()
    if value.isdigit():
        return timedelta(seconds=int(value))
    parts = _DURATION.findall(value)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != value.replace(" ", ""):
        raise ConfigurationError(
            f"cannot read {text!r} as a duration: use e.g. 30d, 12h, 1d12h, 90m, 2w or seconds"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigurationError("a duration must be positive")
    return timedelta(seconds=seconds)


def parse_role(text: str) -> Role:
    """A consortium role by name (``provider``, ``proxy``, ``insurer``, …)."""
    try:
        role = Role[text.strip().upper()]
    except KeyError:
        names = ", ".join(r.name.lower() for r in Role if r is not Role.NONE)
        raise ConfigurationError(f"unknown role {text!r}: use one of {names}") from None
    if role is Role.NONE:
        raise ConfigurationError("role 'none' cannot be granted")
    return role


# Cached: the EIP-55 hash is costly and a bulk write checksums the same addresses for
# every record. Invalid input raises and is never cached.
@functools.lru_cache(maxsize=4096)
def checksum(address: str) -> Address:
    return Address(Web3.to_checksum_address(address))


class MembershipCache:
    """Whether an account was an active Provider member at a block, read from the
    registry at that block and cached per (account, block)."""

    def __init__(self, registry: ConsortiumRegistry) -> None:
        self.registry = registry
        self._known: dict[tuple[str, int], bool] = {}

    def provider_at(self, account: str, block: int) -> bool:
        key = (checksum(account), block)
        if key not in self._known:
            self._known[key] = self.registry.has_role(key[0], Role.PROVIDER, block=block)
        return self._known[key]


def check_entry(
    entry: IndexEntry,
    event: EntryAppended,
    patient: str,
    epoch: int,
    members: MembershipCache,
) -> IndexEntry:
    """An opened entry must be the one the chain event says it is (record id, author, the
    epoch its tag stands for), signed by its author, and the author must be the patient
    or an active Provider member at the block the entry was appended in.

    A member suspended or removed later keeps its earlier records valid; a record
    appended while it was not an active Provider is refused (the contract refuses such
    appends too; a reader does not rely on that).
    """
    if (
        bytes(entry.record_id) != bytes(event.record_id)
        or entry.epoch != epoch
        or checksum(entry.author) != checksum(event.author)
    ):
        raise VerificationError(
            f"index entry 0x{bytes(event.record_id).hex()} does not match its chain event "
            "(record id, epoch or author differ); do not trust this record"
        )
    entry.verify_author(checksum(patient))
    author = checksum(entry.author)
    if author != checksum(patient) and not members.provider_at(author, event.block_number):
        raise VerificationError(
            f"record 0x{bytes(event.record_id).hex()} was written by {author}, which was not "
            f"an active Provider member at block {event.block_number}; do not trust this record"
        )
    return entry


def verified_entries(
    index: RecordIndex,
    patient: str,
    block: int,
    *,
    after: tuple[bytes, int, int] | None = None,
) -> tuple[list[EntryAppended], tuple[bytes, int, int]]:
    """The patient's index entries up to ``block``, checked to be the whole chain.

    ``after`` is ``(head, count, last_block)`` of entries already verified (an incremental
    refresh reads only the blocks after ``last_block``). The events must extend the hash
    chain, and the resulting head **and** count must equal the contract's at ``block``:
    a node that drops, reorders or forges events (also the last ones) is caught.
    Returns the new entries and the new ``(head, count, block)``. Raises
    :class:`IndexIntegrityError`.
    """
    head, count, last = after if after is not None else (ZERO_HEAD, 0, index.start_block - 1)
    if block <= last:
        return [], (head, count, last)
    new = list(index.entries(patient, from_block=last + 1, to_block=block))
    head, n = verify_chain(new, head=head)
    count += n
    chain = index.head(patient, block=block)
    if chain.count != count or bytes(chain.head) != head:
        raise IndexIntegrityError(
            f"the index events of patient {checksum(patient)} up to block {block} do not "
            f"match the chain's head ({count} events read, {chain.count} on chain): a node "
            "withheld or altered events; query another node"
        )
    return new, (head, count, block)


def stream_record(store: BlobStore, entry: IndexEntry, sink: IO[bytes] | Any) -> int:
    """Fetch, verify and decrypt one record into ``sink``; return the plaintext size.

    The store verifies every block against the CID, the envelope authenticates every
    chunk (bound to the record id), and the plaintext SHA-256 and size must match the
    entry. **Warning:** on failure ``sink`` holds unauthenticated partial data; callers
    write to a temporary place and discard it (as :func:`read_record` does).
    """
    hasher = hashlib.sha256()
    size = 0
    for piece in decrypt_stream(store.get(Cid(entry.cid)), entry.data_key, entry.record_id):
        hasher.update(piece)
        size += len(piece)
        sink.write(piece)
    if hasher.digest() != entry.plaintext_sha256 or size != entry.size:
        raise DecryptionError()
    return size


def read_record(store: BlobStore, entry: IndexEntry) -> bytes:
    buf = io.BytesIO()
    stream_record(store, entry, buf)
    return buf.getvalue()


def check_output_path(path: Path) -> Path:
    """``path`` as a file a record can be written to, or a :class:`ConfigurationError`.

    Checked before any work is done, so a bad path does not cost a proxy round trip.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(
            f"{path} is a directory; give a file path to write the record to, "
            f"e.g. {path / 'record.bin'}"
        )
    if not path.parent.is_dir():
        raise ConfigurationError(
            f"cannot write {path}: the directory {path.parent} does not exist; create it first"
        )
    return path


def read_record_to(store: BlobStore, entry: IndexEntry, path: Path) -> int:
    """Decrypt into a temporary file next to ``path`` and rename it only when verified.

    A path that cannot be written (a directory, a missing or unwritable directory) is a
    :class:`ConfigurationError`; no partial file is left behind on any failure.
    """
    path = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write into {path.parent} ({exc.strerror}); choose a writable directory"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            size = stream_record(store, entry, fh)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write {path} ({exc.strerror}); choose another file path"
            ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def iter_file(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    with Path(path).open("rb") as fh:
        while piece := fh.read(chunk):
            yield piece


def id32(value: bytes | str) -> bytes:
    """A 32-byte id (record or policy) from bytes or ``0x``-prefixed hex, checked."""
    if isinstance(value, bytes):
        raw = value
    else:
        text = value[2:] if value.startswith("0x") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"{value!r} is not a 32-byte id (0x followed by 64 hex digits)")
    return raw
