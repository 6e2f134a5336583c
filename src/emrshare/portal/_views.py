"""What each portal page shows, read from the chain through the patient's facade (every
read verified there: the index's hash chain against the contract's head, entry and author
signatures, grant and request state) and shaped for the templates."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from emrshare._files import read_private, write_atomically
from emrshare._time import utc_text
from emrshare.errors import EmrShareError
from emrshare.roles import GrantInfo, Patient

__all__ = [
    "EXPIRY_CHOICES",
    "Names",
    "Notice",
    "Overview",
    "mark_seen",
    "overview",
    "seen_block",
    "when",
]

#: The expiries the portal offers when a request is approved (label, duration).
EXPIRY_CHOICES: dict[str, tuple[str, timedelta]] = {
    "1d": ("1 day", timedelta(days=1)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
    "90d": ("90 days", timedelta(days=90)),
    "1y": ("1 year", timedelta(days=365)),
}


def when(seconds: int | None) -> str:
    """Unix seconds as ``2026-12-07 14:05 UTC`` (``—`` for none)."""
    if not seconds:
        return "—"
    return utc_text(seconds, "%Y-%m-%d %H:%M UTC")


class Names:
    """Display names of addresses: the local profile's name where there is one, else the
    short address (``0x1234…abcd``)."""

    def __init__(self, known: Mapping[str, str]) -> None:
        self.known = {a.lower(): n for a, n in known.items()}
        self.by_checksum = dict(known)

    def __call__(self, address: str | None) -> str:
        if not address:
            return "—"
        return self.known.get(address.lower()) or f"{address[:6]}…{address[-4:]}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One line of the overview's notifications (``new``: after the last "mark as read")."""

    kind: str  # emergency, recall, guardian
    text: str
    block: int
    new: bool = True


#: The block up to which the patient marked the notifications read (in the state dir).
SEEN_FILE = "portal_seen.json"


def seen_block(state_dir: Path) -> int:
    """The block the notifications were last marked read up to (0: never)."""
    try:
        value = json.loads(read_private(state_dir / SEEN_FILE, "the portal's read marker"))
    except (FileNotFoundError, ValueError):
        return 0
    return value.get("block", 0) if isinstance(value, dict) else 0


def mark_seen(state_dir: Path, block: int) -> None:
    """Mark every notification up to ``block`` read."""
    write_atomically(state_dir / SEEN_FILE, json.dumps({"block": int(block)}))


@dataclass(slots=True)
class Overview:
    counts: list[tuple[str, int]]
    active: list[GrantInfo]
    pending: int
    notices: list[Notice]
    #: What could not be read (a feature's contract missing on this deployment, …).
    unavailable: list[str] = field(default_factory=list)


def _gather(label: str, read: Callable[[], list[Any]], missing: list[str]) -> list[Any]:
    """``read()``; a typed failure is listed under ``label`` instead of failing the page."""
    try:
        return read()
    except EmrShareError as exc:
        missing.append(f"{label}: {exc}")
        return []


def overview(patient: Patient, names: Names) -> Overview:
    """Record counts per category, active grants, pending requests and notifications."""
    records = patient.records()
    per = Counter(r.category or "unknown category" for r in records)
    counts = [(c, per.get(c, 0)) for c in sorted(set(patient.categories()) | set(per))]
    missing: list[str] = []
    notices: list[Notice] = []
    for n in _gather("emergency declarations", patient.emergency.notifications, missing):
        notices.append(
            Notice(
                "emergency",
                f"{names(n.clinician)} declared an emergency ({n.status.name.lower()}, "
                f"{len(n.accesses)} serves logged; ends {when(n.ends_at)})",
                n.block_number,
            )
        )
    for r in _gather("recall notices", patient.drugs.recall_notices, missing):
        notices.append(
            Notice(
                "recall",
                f"a medicine dispensed to you was recalled (batch {bytes(r.batch_id).hex()[:12]})",
                r.block_number,
            )
        )
    for a in _gather("guardian actions", patient.guardians.actions, missing):
        notices.append(
            Notice("guardian", f"guardian {names(a.guardian)} ran “{a.action}”", a.block_number)
        )
    seen = seen_block(patient.state_dir)
    notices = [dataclasses.replace(n, new=n.block > seen) for n in notices]
    notices.sort(key=lambda n: n.block, reverse=True)
    active = [g for g in patient.grants() if g.active]
    pending = len(patient.requests(pending_only=True))
    return Overview(counts, active, pending, notices, missing)


def grantees(grants: Sequence[GrantInfo]) -> list[str]:
    """Every grantee of ``grants``, once, in first-grant order (the timeline's filter)."""
    return list(dict.fromkeys(g.grantee for g in grants))
