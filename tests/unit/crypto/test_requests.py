"""Sealed access requests and answers: round trips, wrong keys, tampering, swaps, sizes."""

from __future__ import annotations

import pytest

from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.requests import (
    ANSWER_BLOB_SIZE,
    MAX_REASON_BYTES,
    SEALED_REQUEST_SIZE,
    AccessAnswer,
    AccessRequestBody,
    open_answer,
    open_request,
    seal_answer,
    seal_request,
    validate_purpose,
)
from emrshare.errors import ConfigurationError, DecryptionError, VerificationError, WireFormatError
from emrshare.types import PolicyId
from tests.unit.crypto.conftest import seed


@pytest.fixture(scope="module")
def people() -> tuple[PatientKeys, MemberKeys, MemberKeys]:
    return (
        PatientKeys(seed("req-patient")),
        MemberKeys(seed("req-insurer")),
        MemberKeys(seed("req-other")),
    )


def body(p: PatientKeys, r: MemberKeys, **kw: object) -> AccessRequestBody:
    fields: dict[str, object] = {
        "patient": p.address,
        "requester": r.address,
        "category": "lab",
        "purpose": "HPAYMT",
        "reason": "claim 1234",
        "created_at": 1_700_000_000,
    }
    fields.update(kw)
    return AccessRequestBody(**fields)  # type: ignore[arg-type]


def answer(p: PatientKeys, r: MemberKeys, **kw: object) -> AccessAnswer:
    fields: dict[str, object] = {
        "request_id": 7,
        "patient": p.address,
        "requester": r.address,
        "decision": "approved",
        "policy_ids": (PolicyId(b"\x01" * 32), PolicyId(b"\x02" * 32)),
        "created_at": 1_700_000_100,
    }
    fields.update(kw)
    return AccessAnswer(**fields)  # type: ignore[arg-type]


def test_request_round_trip(people):
    p, r, _ = people
    b = body(p, r, reason="prior authorisation — ünïcode ok")
    sealed = seal_request(p.box_public_key, b)
    assert open_request(sealed, p.box_private_key, patient=p.address, requester=r.address) == b


def test_request_wrong_recipient_is_decryption_error(people):
    p, r, other = people
    sealed = seal_request(p.box_public_key, body(p, r))
    with pytest.raises(DecryptionError):
        open_request(sealed, other.box_private_key, patient=p.address, requester=r.address)


def test_request_tampered_is_decryption_error(people):
    p, r, _ = people
    sealed = bytearray(seal_request(p.box_public_key, body(p, r)))
    sealed[100] ^= 1
    with pytest.raises(DecryptionError):
        open_request(bytes(sealed), p.box_private_key, patient=p.address, requester=r.address)


def test_request_swapped_to_another_requester_is_verification_error(people):
    p, r, other = people
    sealed = seal_request(p.box_public_key, body(p, r))
    with pytest.raises(VerificationError):
        open_request(sealed, p.box_private_key, patient=p.address, requester=other.address)


def test_request_lengths_equal_for_short_and_long_fields(people):
    p, r, _ = people
    short = seal_request(p.box_public_key, body(p, r, category="a", purpose="TREAT", reason=""))
    long = seal_request(
        p.box_public_key,
        body(p, r, category="x" * 64, purpose="A" * 32, reason="é" * (MAX_REASON_BYTES // 2)),
    )
    assert len(short) == len(long) == SEALED_REQUEST_SIZE


def test_request_reason_too_long_says_the_limit(people):
    p, r, _ = people
    with pytest.raises(ConfigurationError, match=str(MAX_REASON_BYTES)):
        body(p, r, reason="x" * (MAX_REASON_BYTES + 1))


@pytest.mark.parametrize("purpose", ["treat", "TREAT1", "", "TRE AT", "A" * 33, "ÄÖ"])
def test_purpose_must_be_an_upper_case_code(purpose):
    with pytest.raises(ConfigurationError):
        validate_purpose(purpose)


def test_request_invalid_category_refused(people):
    p, r, _ = people
    with pytest.raises(ConfigurationError):
        body(p, r, category="")


def test_request_padding_must_be_zero(people):
    p, r, _ = people
    plain = bytearray(body(p, r).to_bytes())
    plain[-1] = 1
    with pytest.raises(WireFormatError):
        AccessRequestBody.from_bytes(bytes(plain))


def test_answer_round_trip_for_requester_and_patient(people):
    p, r, _ = people
    a = answer(p, r)
    blob = seal_answer(a, requester_box_key=r.box_public_key, patient_box_key=p.box_public_key)
    assert len(blob) == ANSWER_BLOB_SIZE <= 1024
    for key in (r.box_private_key, p.box_private_key):
        got = open_answer(blob, key, request_id=7, patient=p.address, requester=r.address)
        assert got == a and got.approved


def test_answer_wrong_recipient_is_decryption_error(people):
    p, r, other = people
    blob = seal_answer(
        answer(p, r), requester_box_key=r.box_public_key, patient_box_key=p.box_public_key
    )
    with pytest.raises(DecryptionError):
        open_answer(
            blob, other.box_private_key, request_id=7, patient=p.address, requester=r.address
        )


def test_answer_tampered_is_decryption_error(people):
    p, r, _ = people
    blob = bytearray(
        seal_answer(
            answer(p, r), requester_box_key=r.box_public_key, patient_box_key=p.box_public_key
        )
    )
    blob[80] ^= 1  # inside the requester's box
    with pytest.raises(DecryptionError):
        open_answer(
            bytes(blob), r.box_private_key, request_id=7, patient=p.address, requester=r.address
        )


def test_answer_swapped_request_is_verification_error(people):
    p, r, _ = people
    blob = seal_answer(
        answer(p, r), requester_box_key=r.box_public_key, patient_box_key=p.box_public_key
    )
    with pytest.raises(VerificationError):
        open_answer(blob, r.box_private_key, request_id=8, patient=p.address, requester=r.address)


def test_answer_lengths_equal_for_approved_and_denied(people):
    p, r, _ = people
    keys = {"requester_box_key": r.box_public_key, "patient_box_key": p.box_public_key}
    approved = seal_answer(
        answer(p, r, policy_ids=tuple(PolicyId(bytes([i]) * 32) for i in range(8))), **keys
    )
    denied = seal_answer(answer(p, r, decision="denied", policy_ids=()), **keys)
    assert len(approved) == len(denied) == ANSWER_BLOB_SIZE


def test_denied_answer_names_no_policy(people):
    p, r, _ = people
    with pytest.raises(ConfigurationError):
        answer(p, r, decision="denied")
