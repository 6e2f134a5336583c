"""The cryptographic steps both sides of the proxy take: parse a capsule, verify a cfrag.

The node's own steps (unseal and verify kfrags, re-encrypt) are in
:mod:`emrshare.proxy.node._kfrags`. Nothing here implements cryptography.
"""

from __future__ import annotations

import umbral_pre

from emrshare.errors import VerificationError, WireFormatError
from emrshare.proxy._points import pk

__all__ = ["parse_capsule", "verify_cfrag"]

# Present at run time, missing from umbral-pre's type stubs.
_UmbralVerificationError: type[Exception] = umbral_pre.VerificationError  # type: ignore[attr-defined]


def parse_capsule(data: bytes) -> umbral_pre.Capsule:
    """An Umbral capsule from its bytes; :class:`WireFormatError` when it does not parse."""
    try:
        return umbral_pre.Capsule.from_bytes(data)
    except Exception as exc:
        raise WireFormatError("capsule does not parse") from exc


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
            pk(verifying_pk, "verifying key"),
            pk(delegating_pk, "delegating key"),
            pk(receiving_pk, "receiving key"),
        )
    except _UmbralVerificationError as exc:
        raise VerificationError("capsule fragment failed verification") from exc
