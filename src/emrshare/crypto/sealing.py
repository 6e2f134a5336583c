"""Sealed boxes with a header: anonymous public-key encryption to an X25519 key.

``seal(recipient_box_key, brand, payload)`` returns ``header || SealedBox(header || payload)``.
The header is outside so the format is recognisable without the key, and repeated inside
so a box made for one purpose (a kfrag) cannot be passed off as another (a writer
authorization): the inner header must equal the outer one.

**Warning:** a sealed box is anonymous: it says nothing about who sealed it. Payloads
that need an origin (kfrags, grantee maps, writer authorizations) carry a signature by
the patient's verifying key inside.
"""

from __future__ import annotations

import nacl.exceptions
from nacl.public import PrivateKey, PublicKey, SealedBox

from emrshare.crypto._wire import HEADER_SIZE, header, split_header
from emrshare.errors import DecryptionError

__all__ = ["open_sealed", "open_sealed_versioned", "seal"]


def seal(
    recipient: PublicKey, brand: bytes, payload: bytes, *, major: int = 1, minor: int = 0
) -> bytes:
    """Seal ``payload`` to ``recipient`` under the 4-byte ``brand`` (format version
    ``major.minor``)."""
    head = header(brand, major, minor)
    return head + bytes(SealedBox(recipient).encrypt(head + payload))


def open_sealed(
    recipient: PrivateKey, brand: bytes, data: bytes, *, major: int = 1, what: str
) -> bytes:
    """Open a box made by :func:`seal` (version ``major.0``) and return the payload.

    Raises :class:`WireFormatError` (wrong brand), :class:`UnsupportedVersion`, or
    :class:`DecryptionError` (not sealed to this key, or tampered with).
    """
    return open_sealed_versioned(recipient, brand, data, major=major, what=what)[1]


def open_sealed_versioned(
    recipient: PrivateKey,
    brand: bytes,
    data: bytes,
    *,
    major: int = 1,
    max_minor: int = 0,
    what: str,
) -> tuple[int, bytes]:
    """Like :func:`open_sealed` for minors up to ``max_minor``: ``(minor, payload)``."""
    minor, body = split_header(data, brand, major, what, max_minor=max_minor)
    try:
        inner = bytes(SealedBox(recipient).decrypt(body))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError() from exc
    if inner[:HEADER_SIZE] != bytes(data[:HEADER_SIZE]):
        raise DecryptionError()
    return minor, inner[HEADER_SIZE:]
