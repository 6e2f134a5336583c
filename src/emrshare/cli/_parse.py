"""What the CLI reads from its arguments: durations, roles, profile kinds.

Ids, categories, media types and addresses are validated by the library that takes them
(its :class:`~emrshare.errors.InvalidInput` is printed as one line); these are the
parsers of words only a command line has: ``30d`` rather than a ``timedelta``,
``pharmacy`` rather than a :class:`~emrshare.chain.Role`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from emrshare.errors import InvalidInput

if TYPE_CHECKING:  # imported when used: `emrshare --help` need not load web3
    from emrshare.chain import Role
    from emrshare.roles.profiles import Kind

__all__ = ["parse_duration", "parse_kind", "parse_role"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_KINDS: dict[str, Kind] = {"patient": "patient", "member": "member"}


def parse_duration(text: str) -> timedelta:
    """Parse ``"30d"``, ``"12h"``, ``"1d12h"``, ``"90m"``, ``"2w"`` or plain seconds."""
    value = text.strip().lower()
    if value.isdigit():
        return timedelta(seconds=int(value))
    parts = _DURATION.findall(value)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != value.replace(" ", ""):
        raise InvalidInput(
            f"cannot read {text!r} as a duration: use e.g. 30d, 12h, 1d12h, 90m, 2w or seconds"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInput("a duration must be positive")
    return timedelta(seconds=seconds)


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


def parse_kind(text: str) -> Kind:
    """A profile kind: ``patient`` or ``member``."""
    try:
        return _KINDS[text]
    except KeyError:
        raise InvalidInput(f"unknown profile kind {text!r}: use patient or member") from None
