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

__all__ = ["open_sealed", "seal"]


def seal(recipient: PublicKey, brand: bytes, payload: bytes, *, major: int = 1) -> bytes:
    """Seal ``payload`` to ``recipient`` under the 4-byte ``brand`` (format version ``major``)."""
    head = header(brand, major)
    return head + bytes(SealedBox(recipient).encrypt(head + payload))


def open_sealed(
    recipient: PrivateKey, brand: bytes, data: bytes, *, major: int = 1, what: str
) -> bytes:
    """Open a box made by :func:`seal` and return the payload.

    Raises :class:`WireFormatError` (wrong brand), :class:`UnsupportedVersion`, or
    :class:`DecryptionError` (not sealed to this key, or tampered with).
    """
    _, body = split_header(data, brand, major, what)
    try:
        inner = bytes(SealedBox(recipient).decrypt(body))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError() from exc
    if inner[:HEADER_SIZE] != bytes(data[:HEADER_SIZE]):
        raise DecryptionError()
    return inner[HEADER_SIZE:]
