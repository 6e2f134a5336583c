"""How each value the library returns is shown: its JSON object for ``--json`` and its
row in a table, side by side so the two never drift apart.

A :class:`View` pairs the two for a value type; :meth:`View.show` prints a list of them
either way. Every string reaches the terminal through :func:`~emrshare.cli._context.table`
or :func:`~emrshare.cli._context.emit_json`, which neutralize control characters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from emrshare.cli._context import emit_json, table

if TYPE_CHECKING:
    from emrshare.chain import Member
    from emrshare.devnet import DevnetStatus, ProcessStatus
    from emrshare.journal import RecoveryReport
    from emrshare.roles import (
        AccessEvent,
        AccessRequestInfo,
        GrantInfo,
        OperationResult,
        Profile,
        RecordInfo,
    )

T = TypeVar("T")


def when(ts: int | None) -> str:
    """A chain timestamp as UTC ``YYYY-MM-DD HH:MM:SSZ`` (``-`` for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def hex_id(b: bytes | None) -> str:
    """An id (record, policy, hash) as ``0x…`` hex (``-`` for none)."""
    return "-" if b is None else "0x" + bytes(b).hex()


def short_id(b: bytes) -> str:
    """An id shortened for a table cell: ``0x`` + 10 hex digits … last 6."""
    h = bytes(b).hex()
    return f"0x{h[:10]}…{h[-6:]}"


def label(value: object) -> str:
    """A status or role as its lower-case word, whether the library gives a word or an
    enum member."""
    return value.name.lower() if isinstance(value, Enum) else str(value)


@dataclass(frozen=True, slots=True)
class View(Generic[T]):
    """How one value type is shown: a table (``title``, ``columns``, ``row``) or JSON."""

    title: str
    columns: tuple[str, ...]
    row: Callable[[T], tuple[Any, ...]]
    json: Callable[[T], dict[str, Any]]

    def show(self, items: Sequence[T], as_json: bool) -> None:
        """Print ``items`` as a JSON list or as a table."""
        if as_json:
            emit_json([self.json(i) for i in items])
        else:
            table(self.title, self.columns, [self.row(i) for i in items])


def _record_json(r: RecordInfo) -> dict[str, Any]:
    return {
        "record_id": hex_id(r.record_id),
        "category": r.category,
        "epoch": r.epoch,
        "author": r.author,
        "media_type": r.media_type,
        "size": r.size,
        "created_at": when(r.created_at) if r.created_at else None,
        "block": r.block_number,
    }


RECORDS: View[RecordInfo] = View(
    "records",
    ("record id", "category", "epoch", "author", "type", "size", "block"),
    lambda r: (
        hex_id(r.record_id),
        r.category,
        r.epoch,
        r.author,
        r.media_type,
        r.size,
        r.block_number,
    ),
    _record_json,
)


def _grant_json(g: GrantInfo) -> dict[str, Any]:
    return {
        "policy_id": hex_id(g.policy_id),
        "patient": g.patient,
        "grantee": g.grantee,
        "category": g.category,
        "epoch": g.epoch,
        "expires": when(g.expiry),
        "threshold": g.threshold,
        "proxies": list(g.proxies),
        "status": label(g.status),
    }


GRANTS: View[GrantInfo] = View(
    "grants",
    ("policy id", "grantee", "category", "epoch", "expires", "status"),
    lambda g: (
        hex_id(g.policy_id),
        g.grantee,
        g.category,
        g.epoch,
        when(g.expiry),
        label(g.status),
    ),
    _grant_json,
)


def _access_json(e: AccessEvent) -> dict[str, Any]:
    return {
        "requester": e.requester,
        "proxy": e.proxy,
        "policy_id": hex_id(e.policy_id),
        "category": e.category,
        "records": [hex_id(r) for r in e.record_ids] if e.record_ids else None,
        "count": e.count,
        "nonce": e.nonce,
        "evaluated_at_block": e.evaluated_at_block,
        "block": e.block_number,
        "time": when(e.timestamp),
    }


ACCESSES: View[AccessEvent] = View(
    "access trail",
    ("time", "requester", "category", "records", "proxy", "block"),
    lambda e: (
        when(e.timestamp),
        e.requester,
        e.category,
        ", ".join(short_id(r) for r in e.record_ids) if e.record_ids else f"{e.count}",
        e.proxy,
        e.block_number,
    ),
    _access_json,
)


def _request_json(r: AccessRequestInfo) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "patient": r.patient,
        "requester": r.requester,
        "category": r.category,
        "purpose": r.purpose,
        "reason": r.reason,
        "status": label(r.status),
        "policy_id": hex_id(r.policy_id) if r.policy_id else None,
        "policy_ids": [hex_id(p) for p in r.policy_ids],
    }


REQUESTS: View[AccessRequestInfo] = View(
    "access requests",
    ("#", "requester", "patient", "category", "purpose", "reason", "status"),
    lambda r: (
        r.request_id,
        r.requester,
        r.patient,
        r.category,
        r.purpose,
        r.reason,
        label(r.status),
    ),
    _request_json,
)

MEMBERS: View[Member] = View(
    "members",
    ("address", "role", "endpoint"),
    lambda m: (m.account, label(m.role), m.endpoint or "-"),
    lambda m: {"address": m.account, "role": label(m.role), "endpoint": m.endpoint},
)


def _process_json(p: ProcessStatus) -> dict[str, Any]:
    return {"name": p.name, "pid": p.pid, "alive": p.alive, "healthy": p.healthy, "url": p.url}


PROCESSES: View[ProcessStatus] = View(
    "devnet",
    ("process", "pid", "alive", "healthy", "url"),
    lambda p: (p.name, p.pid, p.alive, p.healthy, p.url),
    _process_json,
)


def devnet_json(status: DevnetStatus) -> dict[str, Any]:
    """``devnet status --json``."""
    return {
        "running": status.running,
        "node": status.node,
        "rpc_url": status.rpc_url,
        "chain_id": status.chain_id,
        "block": status.block,
        "processes": [_process_json(p) for p in status.processes],
        "profiles": status.profiles,
    }


def profile_json(profile: Profile, data_dir: object, network: object | None) -> dict[str, Any]:
    """``whoami``: the profile, the data dir and the network file (``None`` if absent)."""
    return {
        "profile": profile.name,
        "kind": profile.kind,
        "address": profile.address,
        "role": profile.role,
        "data_dir": str(data_dir),
        "network": str(network) if network is not None else None,
    }


def operation_json(o: OperationResult) -> dict[str, Any]:
    """One patient operation ``recover`` finished."""
    return {"id": o.op_id, "kind": o.kind, "steps": o.steps, "sent": o.sent}


def recovery_json(report: RecoveryReport, ops: Sequence[OperationResult]) -> dict[str, Any]:
    """``recover --json``: the journal's report and the patient's finished operations."""
    return {
        "confirmed": [hex_id(r) for r in report.confirmed],
        "rolled_back": [hex_id(r) for r in report.rolled_back],
        "failed": {hex_id(k): v for k, v in report.failed.items()},
        "operations": [operation_json(o) for o in ops],
    }
