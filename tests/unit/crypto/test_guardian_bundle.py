"""The guardian key bundle: sealed to one guardian, for that guardian, signed by the
patient; it carries category keys and a delegated signing key, never the master."""

from __future__ import annotations

import pytest

from emrshare.crypto import PatientKeys
from emrshare.crypto.guardian import (
    MAX_BUNDLE_KEYS,
    MAX_SEALED_BUNDLE_BYTES,
    GuardianKeys,
    open_guardian_bundle,
    seal_guardian_bundle,
)
from emrshare.errors import DecryptionError, InvalidInput, VerificationError

PATIENT = PatientKeys(b"\x01" * 32)
GUARDIAN = PatientKeys(b"\x02" * 32)
OTHER = PatientKeys(b"\x03" * 32)


def _seal(
    patient: PatientKeys = PATIENT, guardian: str = GUARDIAN.address, to: PatientKeys = GUARDIAN
) -> bytes:
    return seal_guardian_bundle(
        patient,
        guardian=guardian,
        guardian_box_key=to.box_public_key,
        epochs={"lab-results": 1, "imaging": 0},
    )


def _open(
    sealed: bytes, me: PatientKeys = GUARDIAN, patient: PatientKeys = PATIENT
) -> GuardianKeys:
    return open_guardian_bundle(
        sealed,
        me.box_private_key,
        patient=PATIENT.address,
        guardian=me.address,
        patient_verifying_key=patient.verifying_key,
    )


def test_the_bundle_opens_to_the_covered_keys_only() -> None:
    keys = _open(_seal())
    assert keys.address == PATIENT.address and keys.guardian == GUARDIAN.address
    assert keys.epochs == {"lab-results": 1, "imaging": 0}
    for c, e in (("lab-results", 0), ("lab-results", 1), ("imaging", 0)):
        assert keys.tag(c, e) == PATIENT.tag(c, e)
        assert keys.category_public_key(c, e) == PATIENT.category_public_key(c, e)
    with pytest.raises(InvalidInput, match="does not cover"):
        keys.tag("imaging", 1)
    with pytest.raises(InvalidInput, match="does not cover"):
        keys.delegating_secret_key("allergies", 0)
    assert keys.verifying_key == PATIENT.verifying_key
    assert bytes(keys.box_public_key) == bytes(PATIENT.box_public_key)
    assert PATIENT.master_secret.hex() not in repr(keys)


def test_a_bundle_for_another_guardian_is_refused() -> None:
    with pytest.raises(DecryptionError):
        _open(_seal(), me=OTHER)  # sealed to GUARDIAN's key
    # Sealed to OTHER's key but naming GUARDIAN: OTHER refuses it.
    with pytest.raises(VerificationError, match="not"):
        _open(_seal(guardian=GUARDIAN.address, to=OTHER), me=OTHER)


def test_a_bundle_not_signed_by_the_patient_is_refused() -> None:
    # Made by OTHER (its own keys and signature) but claimed as PATIENT's.
    forged = seal_guardian_bundle(
        OTHER, guardian=GUARDIAN.address, guardian_box_key=GUARDIAN.box_public_key,
        epochs={"lab-results": 0},
    )  # fmt: skip
    with pytest.raises(VerificationError):
        _open(forged)
    # PATIENT's bundle checked against another verifying key.
    with pytest.raises(VerificationError, match="not signed"):
        open_guardian_bundle(
            _seal(),
            GUARDIAN.box_private_key,
            patient=PATIENT.address,
            guardian=GUARDIAN.address,
            patient_verifying_key=OTHER.verifying_key,
        )


def test_a_tampered_bundle_is_refused() -> None:
    sealed = bytearray(_seal())
    sealed[40] ^= 1
    with pytest.raises(DecryptionError):
        _open(bytes(sealed))


def test_the_bundle_fits_on_chain_and_is_bounded() -> None:
    longest = "c" * 64
    biggest = seal_guardian_bundle(
        PATIENT,
        guardian=GUARDIAN.address,
        guardian_box_key=GUARDIAN.box_public_key,
        epochs={longest: MAX_BUNDLE_KEYS - 1},
    )
    assert len(biggest) <= MAX_SEALED_BUNDLE_BYTES
    with pytest.raises(InvalidInput, match="name fewer categories"):
        seal_guardian_bundle(
            PATIENT,
            guardian=GUARDIAN.address,
            guardian_box_key=GUARDIAN.box_public_key,
            epochs={longest: MAX_BUNDLE_KEYS},
        )
    with pytest.raises(InvalidInput, match="at least one category"):
        seal_guardian_bundle(
            PATIENT, guardian=GUARDIAN.address, guardian_box_key=GUARDIAN.box_public_key, epochs={}
        )


def test_the_bundle_never_holds_the_master_secret() -> None:
    from emrshare.crypto.guardian import GUARDIAN_BUNDLE_BRAND
    from emrshare.crypto.sealing import open_sealed

    sealed = _seal()
    inner = open_sealed(GUARDIAN.box_private_key, GUARDIAN_BUNDLE_BRAND, sealed, what="b")
    for secret in (PATIENT.master_secret, PATIENT.state_log_key, PATIENT.ethereum_key):
        assert secret not in sealed and secret not in inner
    assert len(inner) % 512 == 0
