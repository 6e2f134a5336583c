"""Byte-format helpers shared by every crypto format: headers and canonical CBOR.

Every serialized object starts with a 6-byte header: a 4-byte brand naming the format,
then one byte each for the major and minor version. A minor bump is a compatible
addition (a new reader still reads every older minor of its major); a major bump is
incompatible. A reader refuses any version newer than it knows with
:class:`UnsupportedVersion`, so every bit of a header matters.
"""

from __future__ import annotations

from typing import Any

import cbor2

from emrshare.errors import UnsupportedVersion, WireFormatError

HEADER_SIZE = 6


def header(brand: bytes, major: int, minor: int = 0) -> bytes:
    """Return the 6-byte header ``brand || major || minor``."""
    assert len(brand) == 4
    return brand + bytes([major, minor])


def split_header(
    data: bytes, brand: bytes, major: int, what: str, *, max_minor: int = 0
) -> tuple[int, bytes]:
    """Check the header of ``data`` and return ``(minor, body)``.

    Raises :class:`WireFormatError` for another brand or short data and
    :class:`UnsupportedVersion` for an unknown major or a newer minor version.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireFormatError(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_SIZE or data[:4] != brand:
        raise WireFormatError(
            f"not a {what}: the data does not start with the {brand!r} header; "
            "check that the right bytes were passed"
        )
    if data[4] != major:
        raise UnsupportedVersion(
            f"{what} has major version {data[4]}, this release reads version {major}; "
            "upgrade emrshare to read it"
        )
    if data[5] > max_minor:
        raise UnsupportedVersion(
            f"{what} has version {major}.{data[5]}, newer than this release reads "
            f"({major}.{max_minor}); upgrade emrshare to read it"
        )
    return data[5], data[HEADER_SIZE:]


def pad(body: bytes, size: int, what: str) -> bytes:
    """``u16be(len(body)) || body || zeros``, exactly ``size`` bytes.

    Formats whose length must say nothing about their content (a category name, a
    reason, a media type) pad their body to one fixed size. ``size`` is chosen from the
    field limits, so every valid object fits; one that does not is a :class:`WireFormatError`.
    """
    data = len(body).to_bytes(2, "big") + body
    if len(data) > size:  # cannot happen with the field limits checked first
        raise WireFormatError(f"{what} does not fit its {size}-byte bucket")
    return data + bytes(size - len(data))


def unpad(data: bytes, size: int, what: str) -> bytes:
    """The body of :func:`pad` output; :class:`WireFormatError` unless ``data`` is exactly
    ``size`` bytes with a length in range and all-zero padding (one encoding per object)."""
    if len(data) != size or size < 2:
        raise WireFormatError(f"{what}: expected {size} padded bytes")
    n = int.from_bytes(data[:2], "big")
    body, padding = data[2 : 2 + n], data[2 + n :]
    if len(body) != n or any(padding):
        raise WireFormatError(f"{what}: bad length or non-zero padding")
    return body


def cbor_encode(value: Any) -> bytes:
    """Canonical (deterministic) CBOR, RFC 8949 §4.2."""
    return bytes(cbor2.dumps(value, canonical=True))


def cbor_decode_list(data: bytes, what: str, length: int) -> list[Any]:
    """Decode a canonical CBOR array of exactly ``length`` items (extra items are an error).

    Re-encoding must give the same bytes, so every value has exactly one encoding.
    """
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several unrelated types
        raise WireFormatError(f"{what}: body is not valid CBOR") from exc
    if not isinstance(value, list) or len(value) != length:
        raise WireFormatError(f"{what}: expected a CBOR array of {length} items")
    if cbor_encode(value) != data:
        raise WireFormatError(f"{what}: body is not in canonical CBOR form")
    return value


def expect_bytes(value: Any, what: str, size: int | None = None) -> bytes:
    """Type-check a decoded field as bytes (of ``size`` bytes when given)."""
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        want = f"{size} bytes" if size is not None else "bytes"
        raise WireFormatError(f"{what}: expected {want}")
    return value


def expect_int(value: Any, what: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    """Type-check a decoded field as an integer in ``[lo, hi]``."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise WireFormatError(f"{what}: expected an integer in [{lo}, {hi}]")
    return value


def expect_str(value: Any, what: str, max_len: int = 1024) -> str:
    """Type-check a decoded field as a string of at most ``max_len`` characters."""
    if not isinstance(value, str) or len(value) > max_len:
        raise WireFormatError(f"{what}: expected a string of at most {max_len} characters")
    return value
