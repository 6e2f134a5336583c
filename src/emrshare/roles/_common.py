"""Value types the facades return, and the small argument helpers they share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal, TypeVar

from emrshare._addresses import checksum
from emrshare._ids import resolve_id, short_hex
from emrshare.chain import GrantStatus
from emrshare.errors import ConfigurationError, InvalidInput
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessEvent",
    "AccessRequestInfo",
    "AccessRequestStatus",
    "GrantInfo",
    "Progress",
    "ReadEvent",
    "RecordInfo",
    "checksum",
    "id32",
    "readable_repr",
    "run_blocking",
]

#: ``progress(done_bytes, total_bytes_or_None)``, called while a record is encrypted or read.
Progress = Callable[[int, int | None], None]
#: Where an access request stands, as its reader sees it.
AccessRequestStatus = Literal["pending", "approved", "denied", "answered"]


def _show(value: Any) -> str:
    # Ids and hashes short (``0x`` + 8 hex, a prefix the facades accept back, then "…"),
    # enums as their word, containers element by element: never ``b'\\x..'`` in a repr.
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return short_hex(raw) + ("…" if len(raw) > 4 else "")
    if isinstance(value, Enum):
        return repr(value.value) if isinstance(value.value, str) else value.name.lower()
    if isinstance(value, tuple | list):
        inner = ", ".join(_show(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' * (len(value) == 1)})"
    return repr(value)


def readable_repr(self: Any) -> str:
    """The ``__repr__`` of the value types: every field, ids and hashes as short hex
    (``0x`` + 8 digits), addresses in full, no raw ``bytes``; fields declared
    ``repr=False`` are left out."""
    shown = ", ".join(f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self) if f.repr)
    return f"{type(self).__name__}({shown})"


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """One record in a patient's index, as a reader sees it.

    ``category`` is ``None`` when the reader cannot name it (a tag it holds no key or grant
    for). ``media_type``, ``size``, ``created_at`` and ``author_signature`` (65 bytes, the
    author's signature the reader verified) are known once the entry was opened.
    """

    __repr__ = readable_repr

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
    author_signature: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class GrantInfo:
    """A grant of one category (at one epoch) to one grantee, with its status on chain
    time (a :class:`~emrshare.chain.GrantStatus`, a ``StrEnum``: ``== "active"`` holds).
    ``by`` is the guardian that made it in the patient's name (``None``: the patient)."""

    __repr__ = readable_repr

    policy_id: PolicyId
    patient: Address
    grantee: Address
    category: str | None
    epoch: int
    tag: CategoryTag
    expiry: int
    threshold: int
    proxies: tuple[Address, ...]
    status: GrantStatus
    block_number: int
    by: Address | None = None
    #: The records the grant is scoped to (ascending); empty: the whole category.
    records: tuple[RecordId, ...] = ()

    @property
    def active(self) -> bool:
        """Whether proxies serve the grant now (on chain time)."""
        return self.status is GrantStatus.ACTIVE

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
    ``status`` is ``pending``, ``approved`` or ``denied`` (``answered``: an answer this
    reader cannot open).
    """

    __repr__ = readable_repr

    request_id: int
    patient: Address
    requester: Address
    category: str | None
    purpose: str | None
    reason: str | None
    status: AccessRequestStatus
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

    __repr__ = readable_repr

    policy_id: PolicyId
    requester: Address
    proxy: Address
    capsule_hashes: tuple[bytes, ...]
    nonce: int = field(repr=False)  # 256 random bits: noise in a repr
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


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """One read a grantee was served: the per-proxy log entries of one signed request,
    grouped (the patient's audit trail, :meth:`Patient.audit`).

    A grantee asks every proxy of the grant with one nonce per read (each request names
    its proxy and is signed by the grantee), so the entries that share (policy,
    requester, nonce, capsules) are one read; ``proxies`` are those that logged it, in log order.
    Fewer than ``threshold`` of them means a serving proxy has not logged (yet: proxies
    log in batches) or never will. ``evaluated_time`` is the earliest evaluation (chain
    time), ``block_number`` the block of the first log entry; ``accesses`` are the
    per-proxy entries (:meth:`Patient.audit_by_proxy`).
    """

    __repr__ = readable_repr

    policy_id: PolicyId
    requester: Address
    category: str | None
    record_ids: tuple[RecordId, ...]
    proxies: tuple[Address, ...]
    threshold: int
    nonce: int = field(repr=False)  # 256 random bits: noise in a repr
    evaluated_at_block: int
    evaluated_time: int
    block_number: int
    timestamp: int
    accesses: tuple[AccessEvent, ...] = field(repr=False)

    @property
    def count(self) -> int:
        """How many records the read was served."""
        return len(self.record_ids)

    @property
    def complete(self) -> bool:
        """Whether at least ``threshold`` proxies logged the read (as a served read needs)."""
        return len(self.proxies) >= self.threshold


def id32(value: bytes | str, known: Callable[[], Sequence[bytes]] | None = None) -> bytes:
    """A 32-byte id (record or policy) from bytes or ``0x``-prefixed hex, checked; with
    ``known`` (the grant ids the caller can list), a unique prefix of 8 or more hex
    digits too (:func:`emrshare._ids.resolve_id`)."""
    if known is not None and isinstance(value, str) and len(value.removeprefix("0x")) != 64:
        return resolve_id(value, known(), where="among this patient's grants", what="grant")
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not an id: give 32 bytes or 0x followed by 64 hex digits")
    else:
        text = value[2:] if value.startswith("0x") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
    if len(raw) != 32:
        raise InvalidInput(f"{value!r} is not a 32-byte id (0x followed by 64 hex digits)")
    return raw


_T = TypeVar("_T")


def run_blocking(coro: Coroutine[Any, Any, _T], what: str) -> _T:
    """Run a read's coroutine to the end for a sync caller; refused inside an event loop,
    where it would block every other task (the async facades are for that)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ConfigurationError(
        f"{what} blocks, and this thread runs an event loop (FastAPI, Jupyter, asyncio): "
        "use AsyncRequester or AsyncProvider there"
    )
