"""The prescription document (issue 15): built as a valid R4 MedicationRequest, read back
exactly, and anything else refused as not a prescription (never a crash)."""

from __future__ import annotations

import json
import os

import pytest

from emrshare.errors import InvalidInput
from emrshare.fhir.prescription import PrescriptionDoc, medication_request, read_prescription

pytestmark = pytest.mark.unit

DOC = PrescriptionDoc(
    patient="0x" + "11" * 20,
    prescriber="0x" + "22" * 20,
    medication="amoxicillin 500 mg capsule",
    dosage="1 capsule 3 times a day",
    fills=3,
    authored_on=1_800_000_000,
    valid_until=1_800_000_000 + 30 * 86_400,
    salt=os.urandom(32),
    code="308191",
)


def test_round_trip_and_no_salt_in_repr() -> None:
    data = medication_request(DOC)
    assert read_prescription(data) == DOC
    assert DOC.salt.hex() not in repr(DOC) and "amoxicillin" not in repr(DOC)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust the recursion
        b" " * (65 * 1024),
        b"\xff\xfe",
        b"take two aspirin",
        b'{"resourceType": "Patient"}',
    ],
)
def test_what_is_not_a_prescription_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        read_prescription(data)


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o.update(status="draft"),
        lambda o: o.update(intent="plan"),
        lambda o: o["dosageInstruction"].append({"text": "ALSO 100 tablets"}),
        lambda o: o["dispenseRequest"].update(numberOfRepeatsAllowed=True),
        lambda o: o.update(identifier=[]),
    ],
)
def test_a_changed_document_is_refused(change: object) -> None:
    obj = json.loads(medication_request(DOC))
    same = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    assert read_prescription(same) == DOC  # the re-dump alone is accepted: the change refuses
    change(obj)  # type: ignore[operator]
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    with pytest.raises(InvalidInput):
        read_prescription(data)


def test_bad_terms_are_refused_at_build() -> None:
    from dataclasses import replace

    for bad in (replace(DOC, fills=0), replace(DOC, fills=64), replace(DOC, salt=b"x")):
        with pytest.raises(InvalidInput):
            medication_request(bad)
    with pytest.raises(InvalidInput):
        medication_request(replace(DOC, valid_until=DOC.authored_on))
