"""The few cryptographic steps the proxy and its client take, in one place.

Unsealing and verifying a kfrag from a grant event is the crypto layer's recipe; this
module only adapts it to the proxy's needs (verify again on load, re-encrypt, verify a
returned cfrag). Nothing here implements cryptography.
"""

from __future__ import annotations

import umbral_pre

from emrshare.errors import VerificationError, WireFormatError
from emrshare.proxy.store import StoredKfrag

__all__ = ["load_kfrag", "parse_capsule", "reencrypt", "verify_cfrag"]

# Present at run time, missing from umbral-pre's type stubs.
_UmbralVerificationError: type[Exception] = umbral_pre.VerificationError  # type: ignore[attr-defined]


def _pk(data: bytes, what: str) -> umbral_pre.PublicKey:
    try:
        return umbral_pre.PublicKey.from_compressed_bytes(data)
    except Exception as exc:  # umbral-pre raises ValueError/TypeError variants
        raise WireFormatError(f"{what} is not a compressed secp256k1 point") from exc


def load_kfrag(stored: StoredKfrag) -> umbral_pre.VerifiedKeyFrag:
    """Parse and verify a stored kfrag against the keys it was accepted with."""
    try:
        kfrag = umbral_pre.KeyFrag.from_bytes(stored.kfrag)
    except Exception as exc:
        raise WireFormatError("stored kfrag does not parse") from exc
    try:
        return kfrag.verify(
            _pk(stored.verifying_pk, "verifying key"),
            _pk(stored.delegating_pk, "delegating key"),
            _pk(stored.receiving_pk, "receiving key"),
        )
    except _UmbralVerificationError as exc:
        raise VerificationError("stored kfrag failed verification") from exc


def parse_capsule(data: bytes) -> umbral_pre.Capsule:
    """An Umbral capsule from its bytes; :class:`WireFormatError` when it does not parse."""
    try:
        return umbral_pre.Capsule.from_bytes(data)
    except Exception as exc:
        raise WireFormatError("capsule does not parse") from exc


def reencrypt(capsule: umbral_pre.Capsule, kfrag: umbral_pre.VerifiedKeyFrag) -> bytes:
    """Re-encrypt one capsule with a verified kfrag; returns the cfrag bytes."""
    return bytes(umbral_pre.reencrypt(capsule, kfrag))


def verify_cfrag(
    cfrag: bytes,
    capsule: umbral_pre.Capsule,
    *,
    verifying_pk: bytes,
    delegating_pk: bytes,
    receiving_pk: bytes,
) -> umbral_pre.VerifiedCapsuleFrag:
    """Verify a cfrag a proxy returned for ``capsule``; raises :class:`VerificationError`."""
    try:
        parsed = umbral_pre.CapsuleFrag.from_bytes(cfrag)
    except Exception as exc:
        raise VerificationError("capsule fragment does not parse") from exc
    try:
        return parsed.verify(
            capsule,
            _pk(verifying_pk, "verifying key"),
            _pk(delegating_pk, "delegating key"),
            _pk(receiving_pk, "receiving key"),
        )
    except _UmbralVerificationError as exc:
        raise VerificationError("capsule fragment failed verification") from exc
