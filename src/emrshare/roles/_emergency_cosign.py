"""A second clinician's co-signature of an emergency declaration (issue 15): the
co-signing clinician makes one (:func:`cosign`), the declaring clinician passes it to
``member.emergency.declare(..., cosignature=)``. The Emergency contract accepts each
co-signature once, until its deadline, at most 15 minutes after chain time."""

from __future__ import annotations

from datetime import timedelta

from eth_account import Account

from emrshare.crypto.emergency import Cosignature
from emrshare.errors import InvalidInput
from emrshare.network import Network
from emrshare.roles._common import checksum

__all__ = ["MAX_COSIGN_TTL", "check_cosignature", "cosign"]

#: The contract's ``MAX_COSIGN_TTL``: latest deadline after chain time.
MAX_COSIGN_TTL = timedelta(minutes=15)


def cosign(
    network: Network,
    ethereum_key: bytes,
    cosigner: str,
    clinician: str,
    patient: str,
    reason_code: int,
    valid_for: timedelta,
) -> Cosignature:
    """Co-sign ``clinician``'s declaration for ``patient`` with ``reason_code``, valid for
    ``valid_for`` of chain time (at most 15 minutes)."""
    if not timedelta(0) < valid_for <= MAX_COSIGN_TTL:
        raise InvalidInput(
            f"a co-signature is valid for at most {MAX_COSIGN_TTL} (not {valid_for}); "
            "choose a shorter validity, e.g. 10 minutes"
        )
    if not 0 <= reason_code <= 255:
        raise InvalidInput(f"reason code {reason_code} is out of range; use 0..255")
    clinician, patient, cosigner = checksum(clinician), checksum(patient), checksum(cosigner)
    if clinician == cosigner:
        raise InvalidInput(
            "a clinician cannot co-sign its own declaration; ask another EMERGENCY clinician"
        )
    deadline = network.chain_time() + int(valid_for.total_seconds())
    digest = network.contracts.emergency.hash_cosign(clinician, patient, reason_code, deadline)
    signature = bytes(Account.unsafe_sign_hash(digest, ethereum_key).signature)
    return Cosignature(cosigner, clinician, patient, reason_code, deadline, signature)


def check_cosignature(
    c: Cosignature, clinician: str, patient: str, reason_code: int, now: int
) -> None:
    """Refuse, before sending, a co-signature made for another declaration or expired
    (the contract checks the signature itself)."""
    if (checksum(c.clinician), checksum(c.patient), c.reason_code) != (
        checksum(clinician),
        checksum(patient),
        reason_code,
    ):
        raise InvalidInput(
            f"the co-signature backs {c.clinician} declaring for {c.patient} with reason "
            f"{c.reason_code}, not this declaration; ask {c.cosigner} to co-sign this one"
        )
    if c.deadline < now:
        raise InvalidInput(
            f"the co-signature of {c.cosigner} expired at {c.deadline} (chain time {now}); "
            "ask for a fresh one"
        )
