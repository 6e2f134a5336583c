"""The de-identification handlers that need nothing of the engine: primitives, addresses
(ZIP3) and quantities (ages over 89). Each takes ``(value, child, ctx)`` like the others in
:mod:`emrshare.fhir.deid`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emrshare.fhir._deid_profile import RESTRICTED_ZIP3

__all__ = ["PRIMITIVE", "address", "each", "keep", "quantity"]

PRIMITIVE = (str, int, float, bool)
_ZIP = re.compile(r"\s*(\d{3})\d{2}(?:-?\d{4})?\s*")


def each(value: Any, one: Callable[[Any], Any]) -> Any:
    """``one`` of a value, or of each item of a list (what it drops left out)."""
    if isinstance(value, list):
        out = [r for r in map(one, value) if r is not None]
        return out or None
    return one(value)


def keep(value: Any, _: Any, ctx: object) -> Any:
    """A primitive, or a list of them; nothing else (``keep`` never copies an object)."""
    if isinstance(value, PRIMITIVE):
        return value
    if isinstance(value, list):
        return [v for v in value if isinstance(v, PRIMITIVE)] or None
    return None


def _zip3(value: Any) -> str | None:
    found = _ZIP.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        return None  # not a US ZIP: a postal code of unknown population is dropped
    return "000" if found[1] in RESTRICTED_ZIP3 else found[1]


def address(value: Any, _: Any, ctx: object) -> Any:
    """An Address's use, type, state, country and ZIP3 (``000`` where restricted)."""
    if isinstance(value, list):
        return each(value, lambda v: address(v, None, ctx))
    if not isinstance(value, dict):
        return None
    out = {k: value[k] for k in ("use", "type", "state") if isinstance(value.get(k), str)}
    zip3 = _zip3(value.get("postalCode"))
    if zip3 is not None:
        out["postalCode"] = zip3
    if isinstance(value.get("country"), str):
        out["country"] = value["country"]
    return out or None


_QUANTITY_KEYS = ("value", "comparator", "unit", "system", "code")
#: UCUM units of time and the days in one: a Quantity of 90 years or more is an age, which
#: Safe Harbor wants in one category (a duration that long is one too).
_TIME_UNITS = {"a": 365.25, "mo": 30.4375, "wk": 7.0, "d": 1.0}
#: The same units as people write them in ``unit`` (not UCUM codes).
_TIME_WORDS = {
    "yr": 365.25, "y": 365.25, "year": 365.25, "years": 365.25, "yrs": 365.25,
    "month": 30.4375, "months": 30.4375, "week": 7.0, "weeks": 7.0, "day": 1.0, "days": 1.0,
}  # fmt: skip


def quantity(value: Any, _: Any, ctx: object) -> Any:
    """A Quantity's value, comparator, unit, system and code; 90 years or more → ``>= 90 a``."""
    if isinstance(value, list):
        return each(value, lambda v: quantity(v, None, ctx))
    if not isinstance(value, dict):
        return None
    out = {k: value[k] for k in _QUANTITY_KEYS if isinstance(value.get(k), PRIMITIVE)}
    days = _TIME_UNITS.get(str(out.get("code", ""))) or next(
        (
            d
            for u in (out.get("code"), out.get("unit"))
            if isinstance(u, str)
            for d in (_TIME_UNITS.get(u), _TIME_WORDS.get(u.strip().lower()))
            if d is not None
        ),
        None,
    )
    number = out.get("value")
    if days is not None and isinstance(number, int | float) and number * days >= 90 * 365.25:
        out |= {"value": 90, "comparator": ">=", "unit": "a", "code": "a"}
        if "system" in out:
            out["system"] = "http://unitsofmeasure.org"
    return out or None
