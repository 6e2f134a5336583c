"""Unix times as UTC text, for any value a contract may hold (a ``uint40`` expiry reaches
the year 36812, past what :mod:`datetime` can show)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc_text"]

#: The last second :mod:`datetime` can show (9999-12-31 23:59:59 UTC).
_LAST = 253_402_300_799


def utc_text(seconds: int, fmt: str = "%Y-%m-%d %H:%M:%SZ") -> str:
    """``seconds`` as UTC in ``fmt``; a time past the year 9999 is ``after 9999-12-31``,
    one before 1970 its number of seconds."""
    if seconds > _LAST:
        return "after 9999-12-31"
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
