"""Strict JSON (RFC 8259) for request bodies: bounded, unambiguous, integers only.

:func:`parse_json_body` is the request wire format's parser (exported by
:mod:`emrshare.proxy.request`).
"""

from __future__ import annotations

import json
from typing import Any

from emrshare.errors import WireFormatError

__all__ = ["parse_json_body"]

#: Longest integer literal read from a JSON body (a uint256 has 78 digits); longer ones
#: are refused before Python converts them (that conversion is quadratic).
_MAX_INT_DIGITS = 80
#: Most arrays and objects a body may hold (a request has three).
_MAX_CONTAINERS = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _no_float(text: str) -> Any:
    raise ValueError("a JSON number with a fraction or exponent; every number here is an integer")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"a JSON integer of more than {_MAX_INT_DIGITS} digits")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        # Parsers disagree on which duplicate wins; a signed request has one meaning.
        raise ValueError("an object has a duplicate key")
    return out


def parse_json_body(body: bytes) -> Any:
    """Parse a request body as strict JSON (RFC 8259); raise :class:`WireFormatError`.

    Refused: more than 64 arrays and objects (counted as ``[`` and ``{`` bytes, so also
    inside strings), bytes that are not UTF-8 (no UTF-16/32 guessing, no byte-order
    mark), ``NaN``/``Infinity``, numbers with a fraction or exponent (``1e400`` would be
    a float infinity), integer literals of more than 80 digits and duplicate keys.
    """
    # Count before parsing: the C decoder recurses once per nesting level, and with the
    # recursion limit py_ecc sets on import (100,000) a body of 100,000 "[" overflows the
    # C stack and kills the process instead of raising RecursionError. A request has one
    # object and two arrays; no string of it may hold a bracket.
    if body.count(b"[") + body.count(b"{") > _MAX_CONTAINERS:
        raise WireFormatError(
            f"the request body has more than {_MAX_CONTAINERS} JSON arrays and objects"
        )
    try:
        text = body.decode("utf-8")
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_no_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError as exc:
        raise WireFormatError(
            f"the request body is not UTF-8 (invalid byte at offset {exc.start})"
        ) from exc
    except RecursionError as exc:
        raise WireFormatError("the request body nests JSON too deeply") from exc
    except ValueError as exc:
        raise WireFormatError(f"the request body is not strict JSON: {exc}") from exc
