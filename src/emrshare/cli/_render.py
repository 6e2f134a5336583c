"""How each value the library returns is shown: its JSON object for ``--json`` and its
row in a table, side by side so the two never drift apart.

A :class:`View` pairs the two for a value type; :meth:`View.show` prints a list of them
either way. Every string reaches the terminal through :func:`~emrshare.cli._context.table`
or :func:`~emrshare.cli._context.emit_json`, which neutralize control characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from emrshare._addresses import checksum
from emrshare._ids import short_forms, short_hex
from emrshare._time import utc_text
from emrshare.cli._context import emit_json, known_names, table

if TYPE_CHECKING:
    from emrshare.chain import Member
    from emrshare.devnet import DevnetStatus, ProcessStatus
    from emrshare.journal import RecoveryReport
    from emrshare.roles import (
        AccessEvent,
        AccessRequestInfo,
        GrantInfo,
        GuardianAction,
        GuardianInfo,
        OperationResult,
        Profile,
        ReadEvent,
        RecordInfo,
    )

T = TypeVar("T")


def when(ts: int | None) -> str:
    """A chain timestamp as UTC ``YYYY-MM-DD HH:MM:SSZ`` (``-`` for none)."""
    if ts is None:
        return "-"
    return utc_text(ts)


def hex_id(b: bytes | None) -> str:
    """An id (record, policy, hash) as ``0x…`` hex (``-`` for none)."""
    return "-" if b is None else "0x" + bytes(b).hex()


@dataclass(frozen=True, slots=True)
class _Cells:
    """What the rows of one table share: the short form of each id in it (unique in the
    table) and the local profile name of each address."""

    ids: Mapping[bytes, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)


_PLAIN = _Cells()
_cells: ContextVar[_Cells | None] = ContextVar("emrshare_cells", default=None)


def _current() -> _Cells:
    return _cells.get() or _PLAIN


@contextmanager
def _table_cells(ids: Iterable[bytes]) -> Iterator[None]:
    token = _cells.set(_Cells(short_forms(ids), known_names()))
    try:
        yield
    finally:
        _cells.reset(token)


def short_id(b: bytes) -> str:
    """An id for a table cell: ``0x`` and 8 hex digits, more where two ids of the table
    being printed share them. Any such prefix is accepted back (``record get 0x1a2b3c4d``)."""
    return _current().ids.get(bytes(b)) or short_hex(bytes(b))


def short_address(address: str) -> str:
    """An address for a table cell: ``0x90F7…b906``."""
    a = checksum(address)
    return f"{a[:6]}…{a[-4:]}"


def who(address: str | None) -> str:
    """An address for a table cell, with the local profile name that holds it, if any:
    ``hospital-b 0x15d3…6A65`` (``-`` for none). ``--json`` gives full addresses."""
    if not address:
        return "-"
    name = _current().names.get(checksum(address))
    return f"{name} {short_address(address)}" if name else short_address(address)


def name_of(address: str) -> str:
    """The local profile name that holds ``address`` (``-`` for none)."""
    return _current().names.get(checksum(address), "-")


def _ids_list(ids: Sequence[bytes], most: int = 3) -> str:
    shown = ", ".join(short_id(r) for r in ids[:most])
    return shown + (f" +{len(ids) - most}" if len(ids) > most else "")


def label(value: object) -> str:
    """A status or role as its lower-case word, whether the library gives a word or an
    enum member."""
    return value.name.lower() if isinstance(value, Enum) else str(value)


def _no_ids(_: Any) -> tuple[bytes, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class View(Generic[T]):
    """How one value type is shown: a table (``title``, ``columns``, ``row``) or JSON.

    In a table, ids are short (:func:`short_id`, unique among the ``ids`` of the rows)
    and addresses carry their profile names (:func:`who`); JSON has the full values.
    """

    title: str
    columns: tuple[str, ...]
    row: Callable[[T], tuple[Any, ...]]
    json: Callable[[T], dict[str, Any]]
    ids: Callable[[T], Iterable[bytes]] = _no_ids

    def show(self, items: Sequence[T], as_json: bool) -> None:
        """Print ``items`` as a JSON list or as a table."""
        if as_json:
            emit_json([self.json(i) for i in items])
            return
        with _table_cells(b for i in items for b in self.ids(i)):
            rows = [self.row(i) for i in items]
        table(self.title, self.columns, rows)


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
        short_id(r.record_id),
        r.category,
        r.epoch,
        who(r.author),
        r.media_type,
        r.size,
        r.block_number,
    ),
    _record_json,
    lambda r: (r.record_id,),
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
        "by": g.by,
        "records": [hex_id(r) for r in g.records],
    }


def by_guardian(address: str | None) -> str:
    """The "by guardian" cell: ``-`` for the patient, else the guardian as :func:`who`
    shows it (``mum 0x90F7…b906``)."""
    return who(address) if address else "-"


GRANTS: View[GrantInfo] = View(
    "grants",
    ("policy id", "grantee", "category", "epoch", "expires", "status", "by guardian"),
    lambda g: (
        short_id(g.policy_id),
        who(g.grantee),
        f"{g.category} ({len(g.records)} record{'s' * (len(g.records) != 1)})"
        if g.records
        else g.category,
        g.epoch,
        when(g.expiry),
        label(g.status),
        by_guardian(g.by),
    ),
    _grant_json,
    lambda g: (g.policy_id,),
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


#: ``audit --by-proxy``: one row per proxy's log entry.
ACCESSES: View[AccessEvent] = View(
    "access trail, by proxy",
    ("time", "requester", "category", "records", "proxy", "block"),
    lambda e: (
        when(e.timestamp),
        who(e.requester),
        e.category,
        _ids_list(e.record_ids) if e.record_ids else f"{e.count}",
        who(e.proxy),
        e.block_number,
    ),
    _access_json,
    lambda e: e.record_ids or (),
)


def _read_json(e: ReadEvent) -> dict[str, Any]:
    return {
        "requester": e.requester,
        "policy_id": hex_id(e.policy_id),
        "category": e.category,
        "records": [hex_id(r) for r in e.record_ids],
        "count": e.count,
        "proxies": list(e.proxies),
        "threshold": e.threshold,
        "complete": e.complete,
        "nonce": e.nonce,
        "evaluated_at_block": e.evaluated_at_block,
        "block": e.block_number,
        "time": when(e.timestamp),
    }


def _proxies(e: ReadEvent) -> str:
    shown = ", ".join(who(p) for p in e.proxies)
    return shown if e.complete else f"{shown} ({len(e.proxies)} of {e.threshold} logged)"


#: ``audit``: one row per served read, listing the proxies that logged it.
READS: View[ReadEvent] = View(
    "access trail",
    ("time", "requester", "category", "records", "proxies"),
    lambda e: (
        when(e.timestamp),
        who(e.requester),
        e.category,
        _ids_list(e.record_ids),
        _proxies(e),
    ),
    _read_json,
    lambda e: e.record_ids,
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
        who(r.requester),
        who(r.patient),
        r.category,
        r.purpose,
        r.reason,
        label(r.status),
    ),
    _request_json,
)

GUARDIANS: View[GuardianInfo] = View(
    "guardians",
    ("guardian", "until", "named at block", "status"),
    lambda g: (who(g.guardian), when(g.until), g.named_at_block, g.status),
    lambda g: {
        "guardian": g.guardian,
        "until": when(g.until),
        "named_at_block": g.named_at_block,
        "status": g.status,
    },
)

#: ``guardian actions``: what a guardian did in the patient's name.
GUARDIAN_ACTIONS: View[GuardianAction] = View(
    "guardian actions",
    ("block", "by guardian", "action", "policies", "request"),
    lambda a: (
        a.block_number,
        by_guardian(a.guardian),
        a.action,
        _ids_list(a.policy_ids),
        "-" if a.request_id is None else f"#{a.request_id}",
    ),
    lambda a: {
        "guardian": a.guardian,
        "action": a.action,
        "policy_ids": [hex_id(p) for p in a.policy_ids],
        "request_id": a.request_id,
        "nonce": a.nonce,
        "block": a.block_number,
        "tx_hash": hex_id(a.tx_hash),
    },
    lambda a: a.policy_ids,
)

MEMBERS: View[Member] = View(
    "members",
    ("address", "profile", "role", "endpoint"),
    lambda m: (checksum(m.account), name_of(m.account), label(m.role), m.endpoint or "-"),
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


def recovery_lines(report: RecoveryReport) -> list[str]:
    """``recover``: the counts, then one line per record finished or rolled back (full
    ids, for ``record get``; the failures go to stderr with their reasons)."""
    lines = [
        f"finished {len(report.confirmed)}, rolled back {len(report.rolled_back)}, "
        f"still failing {len(report.failed)}"
    ]
    lines += [f"  finished    {hex_id(r)}" for r in report.confirmed]
    lines += [f"  rolled back {hex_id(r)}" for r in report.rolled_back]
    return lines


def recovery_json(report: RecoveryReport, ops: Sequence[OperationResult]) -> dict[str, Any]:
    """``recover --json``: the journal's report and the patient's finished operations."""
    return {
        "confirmed": [hex_id(r) for r in report.confirmed],
        "rolled_back": [hex_id(r) for r in report.rolled_back],
        "failed": {hex_id(k): v for k, v in report.failed.items()},
        "operations": [operation_json(o) for o in ops],
    }
