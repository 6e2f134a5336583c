"""Patient-signed payloads in sealed boxes: the shape grantee maps and writer authorizations share.

A payload is the canonical CBOR array ``[*fields, signature]`` (since version 1.1 padded
to a fixed size with :func:`~emrshare.crypto._wire.pad`), where the signature is the
patient's Umbral signer over ``domain || cbor(fields)``, sealed to the recipient's X25519
key under a brand (:mod:`emrshare.crypto.sealing`). The domain keeps a signature made for
one purpose (a kfrag binding) from being accepted for another (a writer authorization).
"""

from __future__ import annotations

from typing import Any

import umbral_pre
from nacl.public import PrivateKey, PublicKey

from emrshare.crypto._wire import cbor_decode_list, cbor_encode, expect_str, pad, unpad
from emrshare.crypto.keys import MAX_CATEGORY_BYTES, validate_category
from emrshare.crypto.sealing import open_sealed_versioned, seal
from emrshare.errors import WireFormatError


def sign(signer: umbral_pre.Signer, domain: bytes, message: bytes) -> bytes:
    """The 64-byte signature of ``domain || message``."""
    return bytes(signer.sign(domain + message).to_be_bytes())


def check_sig(key: umbral_pre.PublicKey, domain: bytes, message: bytes, sig: bytes) -> bool:
    """Whether ``sig`` signs ``domain || message`` under ``key`` (False for malformed)."""
    try:
        return bool(umbral_pre.Signature.from_be_bytes(sig).verify(key, domain + message))
    except Exception:  # umbral-pre raises ValueError/TypeError for malformed signatures
        return False


def seal_signed(
    recipient: PublicKey,
    brand: bytes,
    signer: umbral_pre.Signer,
    domain: bytes,
    fields: list[object],
    *,
    padded_size: int,
) -> bytes:
    """Sign ``fields`` and seal ``[*fields, signature]`` to ``recipient``, padded to
    ``padded_size`` bytes (version 1.1), so the box's length does not depend on the
    category name inside."""
    body = cbor_encode([*fields, sign(signer, domain, cbor_encode(fields))])
    return seal(recipient, brand, pad(body, padded_size, what=brand.decode()), minor=1)


def open_signed(
    recipient: PrivateKey,
    brand: bytes,
    sealed: bytes,
    *,
    what: str,
    length: int,
    padded_size: int,
) -> list[Any]:
    """Unseal and decode ``[*fields, signature]`` (``length`` fields, then the signature).

    Reads version 1.1 (padded to ``padded_size``) and 1.0 (unpadded, release 1). Nothing
    is checked beyond the format: the caller parses the fields and checks the signature
    over their re-encoding with :func:`check_sig`.
    """
    minor, payload = open_sealed_versioned(recipient, brand, sealed, max_minor=1, what=what)
    if minor >= 1:
        payload = unpad(payload, padded_size, what)
    return cbor_decode_list(payload, what, length + 1)


def wire_category(value: object, what: str) -> str:
    """A category name decoded from the wire, as :class:`WireFormatError` when invalid."""
    try:
        return validate_category(expect_str(value, "category", MAX_CATEGORY_BYTES))
    except ValueError as exc:
        raise WireFormatError(f"{what}: {exc}") from exc
