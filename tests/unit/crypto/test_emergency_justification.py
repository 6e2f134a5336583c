"""Sealed emergency justifications (issue 15): to the patient and the regulator, one size,
bound to their declaration."""

from __future__ import annotations

import pytest
from nacl.public import PrivateKey

from emrshare.crypto.emergency import Justification, open_justification, seal_justification
from emrshare.errors import DecryptionError, InvalidText, VerificationError

pytestmark = pytest.mark.unit

PATIENT = "0x" + "11" * 20
CLINICIAN = "0x" + "22" * 20


def _sealed(text: str, reason: int = 1) -> tuple[PrivateKey, PrivateKey, tuple[bytes, bytes]]:
    p, r = PrivateKey.generate(), PrivateKey.generate()
    j = Justification(PATIENT, CLINICIAN, reason, text)
    return p, r, seal_justification(j, patient_box_key=p.public_key, regulator_box_key=r.public_key)


def test_patient_and_regulator_each_open_it() -> None:
    p, r, (for_p, for_r) = _sealed("unconscious; allergy check before anaesthesia")
    for key, blob in ((p, for_p), (r, for_r)):
        j = open_justification(key, blob, patient=PATIENT, clinician=CLINICIAN, reason_code=1)
        assert j.text == "unconscious; allergy check before anaesthesia"
    with pytest.raises(DecryptionError):
        open_justification(p, for_r, patient=PATIENT, clinician=CLINICIAN, reason_code=1)


def test_length_says_nothing_about_the_text() -> None:
    short = _sealed("x")[2][0]
    long = _sealed("y" * 400)[2][0]
    assert len(short) == len(long)


def test_a_justification_moved_to_another_declaration_is_refused() -> None:
    p, _, (for_p, _) = _sealed("real reason")
    with pytest.raises(VerificationError):
        open_justification(p, for_p, patient=PATIENT, clinician="0x" + "33" * 20, reason_code=1)
    with pytest.raises(VerificationError):
        open_justification(p, for_p, patient=PATIENT, clinician=CLINICIAN, reason_code=2)


@pytest.mark.parametrize("text", ["z" * 401, "rewrite\x1b[2Jscreen"])
def test_bad_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidText):
        _sealed(text)
