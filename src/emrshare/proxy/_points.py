"""Public keys on the wire, parsed for both sides of the proxy."""

from __future__ import annotations

import umbral_pre

from emrshare.errors import WireFormatError

__all__ = ["pk"]


def pk(data: bytes, what: str) -> umbral_pre.PublicKey:
    """A compressed secp256k1 public key; :class:`WireFormatError` names ``what`` if not."""
    try:
        return umbral_pre.PublicKey.from_compressed_bytes(data)
    except Exception as exc:  # umbral-pre raises ValueError/TypeError variants
        raise WireFormatError(f"{what} is not a compressed secp256k1 point") from exc
