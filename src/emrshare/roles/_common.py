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

from eth_utils.crypto import keccak
from web3 import Web3

from emrshare.chain import (
    ConsortiumRegistry,
    EntryAppended,
    GrantStatus,
    MemberAdmitted,
    Role,
)
from emrshare.crypto import IndexEntry, decrypt_stream
from emrshare.errors import ConfigurationError, DecryptionError, VerificationError
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
    """A member's request for one category of a patient's records."""

    request_id: int
    patient: Address
    requester: Address
    category: str | None
    category_ref: bytes
    purpose: str
    status: str
    policy_id: PolicyId | None
    block_number: int


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access a proxy served and logged on chain (the patient's audit trail).

    ``record_ids`` is filled when the logged records hash matches records the patient
    knows; with M-of-N proxies one read is logged by each proxy that served it.
    """

    policy_id: PolicyId
    requester: Address
    proxy: Address
    count: int
    records_hash: bytes
    evaluated_at_block: int
    block_number: int
    timestamp: int
    category: str | None
    record_ids: tuple[RecordId, ...] | None


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


def check_entry(
    entry: IndexEntry, event: EntryAppended, patient: str, registry: ConsortiumRegistry
) -> IndexEntry:
    """An opened entry must be the one the chain event says it is, signed by its author,
    and the author must be the patient or a consortium member in the registry."""
    if (
        bytes(entry.record_id) != bytes(event.record_id)
        or entry.epoch != event.epoch
        or checksum(entry.author) != checksum(event.author)
    ):
        raise VerificationError(
            f"index entry 0x{bytes(event.record_id).hex()} does not match its chain event "
            "(record id, epoch or author differ); do not trust this record"
        )
    entry.verify_author(checksum(patient))
    author = checksum(entry.author)
    if (
        author != checksum(patient)
        and registry.role_of(author) is Role.NONE
        # A member removed since keeps its past records valid: it was admitted once.
        and not any(registry.events(MemberAdmitted, account=author))
    ):
        raise VerificationError(
            f"record 0x{bytes(event.record_id).hex()} was written by {author}, which was "
            "never a consortium member; do not trust this record"
        )
    return entry


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


def category_ref(patient: str, category: str) -> bytes:
    """The opaque 32-byte category reference an access request carries.

    keccak256 of a domain, the patient address and the name: it is not the category name,
    but a category name is guessable from a short list, so requests reveal which common
    category was asked for to someone who tries them (see docs/threat-model.md).
    """
    return bytes(
        keccak(
            b"emrshare/access-request-category/v1" + bytes.fromhex(patient[2:]) + category.encode()
        )
    )


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
