"""GS1 identifiers of a drug pack: the GTIN (with its check digit), lot and serial
numbers, GS1 Digital Link URIs, and the 2D code printed on the pack.

The contract takes the GTIN as its 14-digit number (:func:`gtin14`); everything shown to
people and exported (EPCIS) uses the 14-digit string and the Digital Link form
``https://id.gs1.org/01/{gtin}/10/{lot}/21/{serial}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, unquote, urlparse

from emrshare.errors import InvalidInput

__all__ = [
    "DIGITAL_LINK",
    "PackCode",
    "check_digit",
    "class_uri",
    "gtin14",
    "normalize_gtin",
    "parse_pack_code",
    "unit_uri",
    "validate_lot",
    "validate_serial",
]

#: The resolver GS1 Digital Link URIs are written against.
DIGITAL_LINK = "https://id.gs1.org"
# GS1 AI encodable character set 82, the characters lots and serials may use.
_SET_82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
_GS = "\x1d"
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit also takes "²" and "٣"


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (the GTIN without its last digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def normalize_gtin(text: str) -> str:
    """The 14-digit form of a GTIN-8, -12, -13 or -14 (``InvalidInput`` if it is not one
    or its check digit is wrong)."""
    g = text.strip()
    if not _DIGITS.fullmatch(g) or len(g) not in (8, 12, 13, 14):
        raise InvalidInput(f"{text!r} is not a GTIN: give its 8, 12, 13 or 14 digits")
    g = g.zfill(14)
    if check_digit(g[:-1]) != int(g[-1]):
        raise InvalidInput(
            f"GTIN {text} has a wrong check digit (expected {check_digit(g[:-1])}); "
            "scan or type it again"
        )
    return g


def gtin14(text: str | int) -> int:
    """The GTIN as the contract's ``uint64`` (checked)."""
    return int(normalize_gtin(str(text).zfill(14) if isinstance(text, int) else text))


def validate_lot(lot: str) -> str:
    """``lot`` if it is a GS1 lot number (AI 10: 1 to 20 characters of set 82)."""
    if not _SET_82.fullmatch(lot):
        raise InvalidInput(f"{lot!r} is not a lot number: 1 to 20 letters, digits or GS1 signs")
    return lot


def validate_serial(serial: str) -> str:
    """``serial`` if it is a GS1 serial number (AI 21: 1 to 20 characters of set 82)."""
    if not _SET_82.fullmatch(serial):
        raise InvalidInput(
            f"{serial!r} is not a serial number: 1 to 20 letters, digits or GS1 signs"
        )
    return serial


def class_uri(gtin: str, lot: str) -> str:
    """The Digital Link URI of a batch (an EPCIS class-level identifier)."""
    return f"{DIGITAL_LINK}/01/{normalize_gtin(gtin)}/10/{quote(validate_lot(lot), safe='')}"


def unit_uri(gtin: str, lot: str, serial: str) -> str:
    """The Digital Link URI of one serialized pack (an SGTIN)."""
    return f"{class_uri(gtin, lot)}/21/{quote(validate_serial(serial), safe='')}"


@dataclass(frozen=True, slots=True)
class PackCode:
    """What a pack's 2D code says: GTIN-14, lot, and, where printed, serial and expiry."""

    gtin: str
    lot: str
    serial: str | None = None
    expiry: date | None = None


def _expiry(yymmdd: str) -> date:
    if not re.fullmatch(r"[0-9]{6}", yymmdd):
        raise ValueError("not six digits")
    y, m, d = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    if not 1 <= m <= 12:
        raise ValueError("no such month")
    # GS1: day 00 means the last day of the month; years 00-49 are 20xx.
    year = 2000 + y if y < 50 else 1900 + y
    if d == 0:
        nxt = date(year + (m == 12), m % 12 + 1, 1)
        return date.fromordinal(nxt.toordinal() - 1)
    return date(year, m, d)


def _from_fields(fields: dict[str, str], text: str) -> PackCode:
    if "01" not in fields or "10" not in fields:
        raise InvalidInput(f"{text!r} names no GTIN (01) and lot (10); scan the pack's 2D code")
    try:
        expiry = _expiry(fields["17"]) if "17" in fields else None
    except ValueError as exc:
        raise InvalidInput(f"the expiry (17) in {text!r} is not a date YYMMDD") from exc
    serial = fields.get("21")
    return PackCode(
        normalize_gtin(fields["01"]),
        validate_lot(fields["10"]),
        validate_serial(serial) if serial is not None else None,
        expiry,
    )


def parse_pack_code(text: str) -> PackCode:
    """Read a pack code: a Digital Link URI, a GS1 element string with parentheses
    ``(01)…(17)…(10)…(21)…``, or the scanner's raw form (FNC1 as the GS character)."""
    t = text.strip()
    if t.startswith(("http://", "https://")):
        try:
            path = urlparse(t).path
        except ValueError:
            raise InvalidInput(f"{text!r} is not a GS1 Digital Link URI") from None
        parts = [unquote(p) for p in path.split("/") if p]
        return _from_fields(dict(zip(parts[::2], parts[1::2], strict=False)), text)
    if t.startswith("("):
        found = re.findall(r"\((\d{2})\)([^(]*)", t)
        return _from_fields(dict(found), text)
    fields: dict[str, str] = {}
    rest = t.removeprefix("]d2").removeprefix("]Q3").lstrip(_GS)  # symbology id, then FNC1
    while rest:
        ai, rest = rest[:2], rest[2:]
        if ai in ("01",):
            fields[ai], rest = rest[:14], rest[14:]
        elif ai == "17":
            fields[ai], rest = rest[:6], rest[6:]
        elif ai in ("10", "21"):
            value, _, rest = rest.partition(_GS)
            fields[ai] = value
        else:
            raise InvalidInput(f"{text!r}: application identifier {ai} is not one of 01 17 10 21")
    return _from_fields(fields, text)
