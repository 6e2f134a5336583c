"""Ids people can handle: short forms for display and unique prefixes for input, as git
does with commit hashes.

A 32-byte id is 66 characters as ``0x`` hex: too long for a table cell or a command
line. :func:`short_hex` shows ``0x`` and 8 hex digits (:func:`short_forms` more, where two
ids of one table share them), and :func:`resolve_id` accepts any prefix of at least
:data:`MIN_PREFIX` hex digits that matches exactly one of the ids the caller can list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from emrshare.errors import AmbiguousId, InvalidInput, NotFound, RecordNotFound

__all__ = ["MIN_PREFIX", "SHORT", "resolve_id", "short_forms", "short_hex"]

#: Fewest hex digits a prefix must have (32 bits: a collision among a patient's records
#: is rare, and is reported as :class:`AmbiguousId`, never guessed).
MIN_PREFIX = 8
#: Hex digits of a short id (``0x`` + 8 = 10 characters).
SHORT = 8
_HEX = frozenset("0123456789abcdef")


def short_hex(value: bytes, digits: int = SHORT) -> str:
    """``0x`` and the first ``digits`` hex digits of ``value`` (all of a shorter value)."""
    h = bytes(value).hex()
    return "0x" + h[:digits]


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def short_forms(values: Iterable[bytes], digits: int = SHORT) -> dict[bytes, str]:
    """A short form of each distinct value: ``digits`` hex digits, or as many more (whole
    bytes) as it takes to differ from every other value given, so each one is a prefix
    that names its value among them. Only ids that share their first digits grow."""
    hexes = sorted({bytes(v).hex() for v in values})
    out: dict[bytes, str] = {}
    for i, h in enumerate(hexes):
        shared = max(
            _common(h, hexes[i - 1]) if i > 0 else 0,
            _common(h, hexes[i + 1]) if i + 1 < len(hexes) else 0,
        )
        width = max(digits, shared + 1)
        width += width % 2  # whole bytes read better
        out[bytes.fromhex(h)] = "0x" + h[:width]
    return out


def _digits(value: str, what: str) -> str:
    text = value.strip().lower()
    text = text[2:] if text.startswith("0x") else text
    if not text or not set(text) <= _HEX:
        raise InvalidInput(
            f"{value!r} is not a {what} id: give 0x and 64 hex digits, or a prefix of "
            f"at least {MIN_PREFIX} hex digits"
        )
    if len(text) > 64:
        raise InvalidInput(f"{value!r} is longer than a 32-byte id (64 hex digits)")
    if len(text) < MIN_PREFIX:
        raise InvalidInput(
            f"{value!r} is too short to name a {what}: give at least {MIN_PREFIX} hex "
            "digits of its id (or the whole id)"
        )
    return text


def resolve_id(
    value: bytes | str,
    known: Sequence[bytes] | Callable[[], Sequence[bytes]],
    *,
    where: str,
    what: str = "record",
) -> bytes:
    """The one id in ``known`` that ``value`` names: 32 bytes, a full ``0x`` id, or a
    unique prefix of at least :data:`MIN_PREFIX` hex digits (with or without ``0x``).

    ``known`` may be a function that lists them: it is called only for a prefix, after the
    value's form was checked. A full id is returned as given, even when ``known`` lacks
    it (the caller says why: not found, or not granted). A prefix that matches nothing is
    :class:`RecordNotFound`, one that matches several :class:`AmbiguousId` (listing their
    short forms), one too short or not hex :class:`InvalidInput`. ``where`` ends the
    messages ("in the index of patient 0x…"); ``what`` names the ids: ``record``
    (``RecordNotFound``) or another kind, such as ``grant`` (:class:`NotFound`).
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != 32:
            raise InvalidInput(f"a {what} id is 32 bytes, not {len(raw)}")
        return raw
    if not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a {what} id: give 32 bytes or 0x and hex digits")
    text = _digits(value, what)
    if len(text) == 64:
        return bytes.fromhex(text)
    listed = known() if callable(known) else known
    matches = sorted({bytes(k) for k in listed if bytes(k).hex().startswith(text)})
    if not matches:
        message = f"no {what} id starts with 0x{text} {where}"
        if what == "record":
            raise RecordNotFound("0x" + text, message)
        raise NotFound(message)
    if len(matches) > 1:
        forms = short_forms(matches)
        named = ", ".join(forms[m] for m in matches)
        raise AmbiguousId(
            "0x" + text,
            ["0x" + m.hex() for m in matches],
            f"the prefix 0x{text} matches {len(matches)} {what}s {where} ({named}); "
            "give more digits",
        )
    return matches[0]
