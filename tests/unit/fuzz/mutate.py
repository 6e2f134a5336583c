"""Seeded mutators for the malformed-input campaign: bytes and JSON documents.

Every mutator takes a :class:`random.Random` and returns a new value with a short label
naming what was done (``bitflip``, ``truncate``, ``json:nan@deadline``…), so a finding
can be replayed from the seed and named in a report.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["json_mutations", "mutate_bytes", "mutate_json_text"]

ByteMutator = Callable[[random.Random, bytes], bytes]


def _bitflip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _bitflips(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(2, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _byte(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(out)


def _header_bitflip(rng: random.Random, data: bytes) -> bytes:
    # The first bytes hold brands, versions and lengths: flip there more often.
    out = bytearray(data)
    i = rng.randrange(min(len(out), 16))
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _extend(rng: random.Random, data: bytes) -> bytes:
    tail = rng.choice([b"\x00", b"\x00" * rng.randint(1, 64), rng.randbytes(rng.randint(1, 64))])
    return data + tail


def _delete(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    n = rng.randint(1, max(1, min(32, len(data) - i)))
    return data[:i] + data[i + n :]


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 16)) + data[i:]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    n = rng.randint(1, max(1, min(64, len(data) - i)))
    return data[: i + n] + data[i : i + n] + data[i + n :]


def _swap(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    i, j = rng.randrange(len(out)), rng.randrange(len(out))
    out[i], out[j] = out[j], out[i]
    return bytes(out)


def _empty(rng: random.Random, data: bytes) -> bytes:
    return b""


_BYTE_MUTATORS: list[tuple[str, ByteMutator, int]] = [
    ("bitflip", _bitflip, 8),
    ("bitflips", _bitflips, 3),
    ("header-bitflip", _header_bitflip, 3),
    ("byte", _byte, 3),
    ("truncate", _truncate, 3),
    ("extend", _extend, 2),
    ("delete", _delete, 2),
    ("insert", _insert, 2),
    ("duplicate", _duplicate, 1),
    ("swap", _swap, 1),
    ("empty", _empty, 0),
]
_NAMES = [name for name, _, w in _BYTE_MUTATORS for _ in range(w)]
_BY_NAME = {name: fn for name, fn, _ in _BYTE_MUTATORS}


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random byte-level mutation of ``data`` (never of empty data)."""
    name = rng.choice(_NAMES)
    return name, _BY_NAME[name](rng, data)


def mutate_json_text(rng: random.Random, text: str) -> tuple[str, str]:
    """One random text-level mutation of a JSON document (a byte mutation of its UTF-8)."""
    name, data = mutate_bytes(rng, text.encode())
    return "text-" + name, data.decode("utf-8", errors="surrogateescape")


#: Values a hostile client puts where a field belongs. ``NaN``/``Infinity`` are written as
#: Python's json module writes them (not JSON, but many encoders emit them).
HOSTILE_VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("negative", -1),
    ("int64-max+1", 2**63),
    ("uint64-max", 2**64 - 1),
    ("uint256-max", 2**256 - 1),
    ("uint256-max+1", 2**256),
    ("huge-negative", -(2**300)),
    ("float", 1.5),
    ("float-int", 1.0),
    ("nan", float("nan")),
    ("inf", float("inf")),
    ("-inf", float("-inf")),
    ("empty-string", ""),
    ("string", "x"),
    ("digits-string", "123"),
    ("padded-digits", " 123 "),
    ("plus-digits", "+123"),
    ("underscore-digits", "1_000"),
    ("arabic-digits", "\u0661\u0662\u0663"),
    ("fullwidth-digits", "\uff11\uff12\uff13"),
    ("hex-no-0x", "ab" * 32),
    ("hex-odd", "0x" + "a" * 63),
    ("hex-oversized", "0x" + "ab" * 4096),
    ("hex-spaces", "0x" + "ab " * 32),
    ("hex-nonhex", "0x" + "zz" * 32),
    ("lone-surrogate", "\ud800"),
    ("empty-list", []),
    ("list", ["0x00"]),
    ("huge-list", ["0x" + "00" * 32] * 5000),
    ("nested-list", [[[[["0x00"]]]]]),
    ("object", {"a": 1}),
    ("deep", json.loads("[" * 900 + "]" * 900)),
]


def _fields(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``doc`` (object keys and list indices)."""
    if path:
        yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _fields(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from _fields(v, (*path, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value


def _delete_at(doc: Any, path: tuple[Any, ...]) -> None:
    target = doc
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]


def json_edits(doc: Any) -> Iterator[tuple[str, Callable[[Any], Any]]]:
    """Every structural mutation of a JSON document, as an edit that applies it to any
    document of the same shape: each field replaced by each hostile value, each field
    deleted, an unknown field added, the document replaced by each non-object top level."""

    def replace(path: tuple[Any, ...], value: Any) -> Callable[[Any], Any]:
        def edit(d: Any) -> Any:
            mutated = copy.deepcopy(d)
            _set(mutated, path, copy.deepcopy(value))
            return mutated

        return edit

    def delete(path: tuple[Any, ...]) -> Callable[[Any], Any]:
        def edit(d: Any) -> Any:
            mutated = copy.deepcopy(d)
            _delete_at(mutated, path)
            return mutated

        return edit

    def extra(d: Any) -> Any:
        return {**d, "unexpected": 1}

    for path in list(_fields(doc)):
        where = ".".join(str(p) for p in path)
        for name, value in HOSTILE_VALUES:
            yield f"json:{name}@{where}", replace(path, value)
        yield f"json:delete@{where}", delete(path)
    if isinstance(doc, dict):
        yield "json:extra-field", extra
    for name, value in (("array", None), ("string", "x"), ("number", 1), ("null", None)):
        if name == "array":
            yield "json:top-level-array", lambda d: [d]
        else:
            yield f"json:top-level-{name}", lambda d, v=value: v


def json_mutations(doc: Any) -> Iterator[tuple[str, Any]]:
    """:func:`json_edits` applied to ``doc``."""
    for label, edit in json_edits(doc):
        yield label, edit(doc)


_CBOR_VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("true", True),
    ("zero", 0),
    ("negative", -1),
    ("uint64-max", 2**64 - 1),
    ("bignum", 2**64),
    ("float", 1.5),
    ("nan", float("nan")),
    ("empty-bytes", b""),
    ("empty-string", ""),
    ("list", []),
    ("map", {}),
]


def cbor_mutations(
    data: bytes, header_size: int = 6, *, padded_size: int | None = None
) -> Iterator[tuple[str, bytes]]:
    """Structural mutations of ``header || canonical CBOR array``: each field replaced by
    each CBOR type, byte strings and text one byte longer or shorter, re-encoded
    canonically so that only the change is seen (not a canonical-form refusal).

    With ``padded_size`` the body is ``u16be(n) || CBOR || zeros`` of that many bytes
    (``crypto._wire.pad``): mutations are re-padded, and the padding itself is mutated."""
    import cbor2

    from emrshare.crypto._wire import pad

    head, rest = data[:header_size], data[header_size:]
    if padded_size is not None:
        n = int.from_bytes(rest[:2], "big")
        fields = cbor2.loads(rest[2 : 2 + n])
        yield "pad:non-zero", data[:-1] + b"\x01"
        yield "pad:short", data[:-1]
        yield "pad:long", data + b"\x00"
        yield "pad:length-plus-one", head + (n + 1).to_bytes(2, "big") + rest[2:]
        yield "pad:length-minus-one", head + (n - 1).to_bytes(2, "big") + rest[2:]
        yield "pad:length-past-end", head + b"\xff\xff" + rest[2:]
    else:
        fields = cbor2.loads(rest)

    def frame(body: bytes) -> bytes:
        if padded_size is None:
            return head + body
        return head + pad(body[: padded_size - 2], padded_size, "fuzz")

    def encode(value: Any) -> bytes:
        return frame(bytes(cbor2.dumps(value, canonical=True)))

    for i, value in enumerate(fields):
        for name, other in _CBOR_VALUES:
            if other != value or type(other) is not type(value):
                yield f"cbor:{name}@{i}", encode([*fields[:i], other, *fields[i + 1 :]])
        if isinstance(value, bytes | str):
            for name, changed in (
                ("longer", value + value[:1] if value else value + type(value)()),
                ("trailing-zero", value + (b"\x00" if isinstance(value, bytes) else "\x00")),
                ("shorter", value[:-1]),
                ("as-other-type", value.hex() if isinstance(value, bytes) else value.encode()),
            ):
                yield f"cbor:{name}@{i}", encode([*fields[:i], changed, *fields[i + 1 :]])
        if isinstance(value, int) and not isinstance(value, bool):
            for name, changed in (("plus-one", value + 1), ("minus-one", value - 1)):
                yield f"cbor:{name}@{i}", encode([*fields[:i], changed, *fields[i + 1 :]])
    yield "cbor:extra-field", encode([*fields, 0])
    yield "cbor:missing-field", encode(fields[:-1])
    yield "cbor:map-instead", encode(dict(enumerate(fields)))
    yield (
        "cbor:non-canonical-length",
        frame(b"\x9f" + b"".join(bytes(cbor2.dumps(f, canonical=True)) for f in fields) + b"\xff"),
    )


def dumps(doc: Any) -> str:
    """``json.dumps`` as a permissive client writes it (``NaN``/``Infinity`` included)."""
    return json.dumps(doc, allow_nan=True)


def raw_json_variants(text: str, fields: list[str]) -> Iterator[tuple[str, str]]:
    """Mutations only expressible as text: duplicate keys, tokens, padding, BOMs."""
    doc = json.loads(text)
    for field in fields:
        value = json.dumps(doc[field])
        for token in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E2", "1.0"):
            yield f"raw:{token}@{field}", text.replace(f'"{field}": {value}', f'"{field}": {token}')
        # A duplicate key, first with a hostile value (parsers differ in which one wins).
        yield f"raw:duplicate@{field}", text.replace("{", '{"' + field + '": 0, ', 1)
    yield "raw:bom", "\ufeff" + text
    yield "raw:trailing-garbage", text + "x"
    yield "raw:two-documents", text + text
    yield "raw:deep", "[" * 100_000 + "]" * 100_000
    yield "raw:deep-object", '{"a":' * 50_000 + "1" + "}" * 50_000
    yield "raw:long-int", text.replace("{", '{"x": ' + "9" * 5000 + ", ", 1)
    yield "raw:empty", ""
    yield "raw:whitespace", "   "
    yield "raw:not-json", "hello"
