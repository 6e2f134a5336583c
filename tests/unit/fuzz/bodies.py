"""The proxy-body family: mutants of a signed ``POST /v1/reencrypt`` body, and how an
answer to one is judged. Pure (no sockets); the senders are
``tests/integration/proxy/rawhttp.py`` users.

A mutant is *accepted* when the proxy answers 200 for a request other than the original
(parsed strictly, field by field), *crashed* on a 5xx, a refusal body of another shape,
or a connection the server closed; *excluded* when it is the original's bytes or the same
signed request (hex letter case, JSON whitespace or key order).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emrshare.errors import WireFormatError
from emrshare.proxy.request import RefusalReason, SignedRequest, parse_json_body

from .mutate import json_edits, mutate_bytes, raw_json_variants

__all__ = ["FIELDS", "Mutant", "body_edits", "judge", "mutant_at"]

FIELDS = [
    "chain_id",
    "verifying_contract",
    "proxy",
    "policy_id",
    "capsule_hashes",
    "nonce",
    "deadline",
    "signature",
    "capsules",
]
JSON = "application/json"
CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/json; charset=latin-1",
    "application/jsonx",
    "",
]
_REASONS = {r.value for r in RefusalReason}


@dataclass(frozen=True, slots=True)
class Mutant:
    label: str
    body: bytes
    content_type: str = JSON


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


Edit = Callable[[dict[str, Any]], "Mutant | None"]


def body_edits(template: dict[str, Any]) -> list[tuple[str, Edit]]:
    """The structured mutants, as edits of any signed body: each field × each hostile
    JSON value, deletions, an extra field, other top levels, raw-text tokens (``NaN``,
    ``1e400``, duplicate keys, BOMs, deep nesting…) and other content types."""
    edits: list[tuple[str, Edit]] = []

    def as_json(label: str, edit: Callable[[Any], Any]) -> Edit:
        def make(original: dict[str, Any]) -> Mutant | None:
            try:
                return Mutant(label, _encode(json.dumps(edit(original), allow_nan=True)))
            except (ValueError, RecursionError):
                return None

        return make

    def raw(k: int, label: str) -> Edit:
        def make(original: dict[str, Any]) -> Mutant:
            variants = raw_json_variants(json.dumps(original), FIELDS)
            return Mutant(label, _encode(next(itertools.islice(variants, k, None))[1]))

        return make

    def typed(ctype: str) -> Edit:
        return lambda original: Mutant(
            f"content-type:{ctype or 'none'}", _encode(json.dumps(original)), ctype
        )

    for label, edit in json_edits(template):
        edits.append((label, as_json(label, edit)))
    for k, (label, _) in enumerate(raw_json_variants(json.dumps(template), FIELDS)):
        edits.append((label, raw(k, label)))
    for ctype in CONTENT_TYPES:
        edits.append((f"content-type:{ctype}", typed(ctype)))
    return edits


def mutant_at(
    rng: random.Random, edits: list[tuple[str, Edit]], original: dict[str, Any], i: int
) -> Mutant | None:
    """The ``i``-th mutant of ``original``: the structured edits first, then random byte
    mutations of its JSON text. None when an edit cannot be written as JSON text."""
    if i < len(edits):
        return edits[i][1](original)
    label, data = mutate_bytes(rng, _encode(json.dumps(original)))
    return Mutant("bytes:" + label, data)


def _same_request(original: dict[str, Any], body: bytes) -> bool:
    try:
        return SignedRequest.from_json(parse_json_body(body)) == SignedRequest.from_json(original)
    except WireFormatError:
        return False


def _is_signature(value: object) -> bool:
    """A refusal of a request that parsed is signed (issue #10): 65 bytes as 0x-hex."""
    return (
        isinstance(value, str)
        and value.startswith("0x")
        and len(value) == 132
        and all(c in "0123456789abcdefABCDEF" for c in value[2:])
    )


def judge(
    original: dict[str, Any], mutant: Mutant, status: int | None, answer: bytes
) -> tuple[str, str]:
    """``(verdict, why)``: verdict is rejected, accepted, crashed or excluded.

    ``status`` None means the connection failed (closed or reset by the server).
    """
    if mutant.body == _encode(json.dumps(original)) and mutant.content_type == JSON:
        return "excluded", "the mutation left the bytes unchanged"
    same = mutant.content_type == JSON and _same_request(original, mutant.body)
    if status is None:
        return "crashed", "the connection was closed or reset"
    if status >= 500:
        return "crashed", f"HTTP {status}"
    if status == 200:
        if same:
            return "excluded", (
                "proxy body: the same signed request (hex letter case, JSON whitespace "
                "or key order)"
            )
        return "accepted", "HTTP 200 for another request"
    try:
        refusal = json.loads(answer)
    except ValueError:
        return "crashed", f"HTTP {status} without a JSON refusal"
    if (
        not isinstance(refusal, dict)
        or set(refusal) - {"signature"} != {"refused", "message", "block"}
        or refusal["refused"] not in _REASONS
        or ("signature" in refusal and not _is_signature(refusal["signature"]))
    ):
        return "crashed", f"HTTP {status} with a refusal of another shape"
    if same:
        return "excluded", (
            "proxy body: the same signed request (hex letter case, JSON whitespace or key "
            "order), refused as the original would be"
        )
    return "rejected", str(refusal["refused"])
