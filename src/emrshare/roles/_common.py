"""Value types the facades return, and the small argument helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from emrshare._addresses import checksum
from emrshare.chain import GrantStatus
from emrshare.errors import InvalidInput
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = [
    "AccessEvent",
    "AccessRequestInfo",
    "AccessRequestStatus",
    "GrantInfo",
    "Progress",
    "RecordInfo",
    "checksum",
    "id32",
]

#: ``progress(done_bytes, total_bytes_or_None)``, called while a record is encrypted or read.
Progress = Callable[[int, int | None], None]
#: Where an access request stands, as its reader sees it.
AccessRequestStatus = Literal["pending", "approved", "denied", "answered"]


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
    """A grant of one category (at one epoch) to one grantee, with its status on chain
    time (a :class:`~emrshare.chain.GrantStatus`, a ``StrEnum``: ``== "active"`` holds)."""

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


def id32(value: bytes | str) -> bytes:
    """A 32-byte id (record or policy) from bytes or ``0x``-prefixed hex, checked."""
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
