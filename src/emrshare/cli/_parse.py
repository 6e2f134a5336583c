"""What the CLI reads from its arguments: durations and expiries, roles, profile kinds.

Ids, categories, media types and addresses are validated by the library that takes them
(its :class:`~emrshare.errors.InvalidInput` is printed as one line); these are the
parsers of words only a command line has: ``30d`` rather than a ``timedelta``,
``pharmacy`` rather than a :class:`~emrshare.chain.Role`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from emrshare.categories import normalize_purpose
from emrshare.errors import InvalidInput

if TYPE_CHECKING:  # imported when used: `emrshare --help` need not load web3
    from emrshare.chain import Capability, Role
    from emrshare.fhir import CategoryMapping
    from emrshare.roles.profiles import Kind

__all__ = [
    "option",
    "output_file",
    "parse_duration",
    "parse_expires",
    "parse_kind",
    "parse_purpose",
    "parse_role",
]

_DAY = 86400
#: Unit words and their seconds. A month is 30 days and a year 365 (calendar months and
#: years differ in length; a grant's end is shown as a date, so the user sees the result).
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7 * _DAY),
    **dict.fromkeys(("mo", "month", "months"), 30 * _DAY),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * _DAY),
}
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_FORMS = "e.g. 30d, 12h, 1d12h, 2w, 18mo, 1y, '30 days' or seconds"
_KINDS: dict[str, Kind] = {"patient": "patient", "member": "member"}
T = TypeVar("T")


def parse_hex32(text: str, what: str) -> bytes:
    """A 32-byte id given as ``0x`` and 64 hex digits (``what`` names it in the error)."""
    digits = text.removeprefix("0x")
    if len(digits) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        raise InvalidInput(f"{text!r} is not a {what}: give 0x and 64 hex digits")
    return bytes.fromhex(digits)


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration: ``"30d"``, ``"12h"``, ``"1d12h"``, ``"90m"``, ``"2w"``,
    ``"18mo"``, ``"1y"`` (365 days; a month is 30), words (``"30 days"``, ``"30days"``,
    ``"2 weeks, 3 days"``) or plain seconds. Zero is refused."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        squeezed = re.sub(r"[\s,]+|\band\b", "", value)
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != squeezed:
            raise InvalidInput(f"cannot read {text!r} as a duration: use {_FORMS}")
        unknown = [u for _, u in parts if u not in _UNITS]
        if unknown:
            raise InvalidInput(
                f"cannot read {text!r} as a duration: unknown unit {unknown[0]!r} "
                "(s, m, h, d, w, mo, y or their words)"
            )
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInput(f"a duration must be positive, not {text!r}: use {_FORMS}")
    return timedelta(seconds=seconds)


def parse_expires(text: str, *, now: datetime | None = None) -> timedelta | datetime:
    """When a grant ends: a duration from now (:func:`parse_duration`), an ISO date
    (``2027-01-01``: the end of that day, 23:59:59 UTC) or an ISO datetime
    (``2027-01-01T12:00Z``, ``2027-01-01T12:00+02:00``; without an offset, UTC).

    A date or time already past on this machine's clock (``now``) is refused here; the
    library checks again against the chain's time before any transaction."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{text!r} is not a date: use YYYY-MM-DD") from None
        at = datetime.combine(day, time(23, 59, 59), UTC)
    elif re.match(r"\d{4}-\d{2}-\d{2}[T ]", value):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(
                f"{text!r} is not an ISO date and time: use e.g. 2027-01-01T12:00Z"
            ) from None
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    else:
        return parse_duration(value)
    current = now or datetime.now(UTC)
    if at <= current:
        raise InvalidInput(
            f"the expiry {at.isoformat()} is in the past (now "
            f"{current.isoformat(timespec='seconds')}); give a later date or a duration "
            f"({_FORMS})"
        )
    return at


def parse_purpose(text: str) -> str:
    """A FHIR PurposeOfUse code in any case (``treat`` → ``TREAT``), with a did-you-mean."""
    return normalize_purpose(text)


def option(parse: Callable[[str], T], value: str, name: str) -> T:
    """``parse(value)``, a bad value being a usage error of option ``name`` (exit 2)."""
    try:
        return parse(value)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from None


def output_file(path: Path, name: str) -> Path:
    """``path``, the file an option ``name`` writes, if its directory exists; else a usage
    error (exit 2) before the command does anything."""
    if not path.parent.is_dir():
        raise typer.BadParameter(
            f"the directory {path.parent} does not exist; create it first", param_hint=name
        )
    return path


def parse_role(text: str) -> Role:
    """A consortium role by name (``provider``, ``proxy``, ``insurer``, …)."""
    from emrshare.chain import Role

    try:
        role = Role[text.strip().upper()]
    except KeyError:
        names = ", ".join(r.name.lower() for r in Role if r is not Role.NONE)
        raise InvalidInput(f"unknown role {text!r}: use one of {names}") from None
    if role is Role.NONE:
        raise InvalidInput("role 'none' cannot be granted")
    return role


def parse_capabilities(text: str) -> Capability:
    """A capability set by name: ``emergency``, or ``none`` to withdraw them all."""
    from emrshare.chain import Capability

    caps = Capability.NONE
    for name in parse_list(text) or ["none"]:
        try:
            caps |= Capability[name.strip().upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in Capability if c.name)
            raise InvalidInput(f"unknown capability {name!r}: use one of {names}") from None
    return caps


def parse_kind(text: str) -> Kind:
    """A profile kind: ``patient`` or ``member``."""
    try:
        return _KINDS[text]
    except KeyError:
        raise InvalidInput(f"unknown profile kind {text!r}: use patient or member") from None


def parse_list(text: str | None) -> list[str]:
    """A comma-separated option (``Observation, DiagnosticReport``) as its items."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def load_mapping(path: Path | None) -> CategoryMapping | None:
    """The category mapping a ``--mapping FILE`` names (``None``: the defaults)."""
    from emrshare.fhir import CategoryMapping

    return CategoryMapping.from_toml(path) if path is not None else None
