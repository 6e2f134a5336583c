"""Claim documents (issue 16): a valid FHIR R4 Claim in canonical JSON that reads back to
the same claim, and refusals of what is not one."""

from __future__ import annotations

import json
import os

import pytest

from emrshare.errors import InvalidInput
from emrshare.fhir._resource import canonical_json
from emrshare.fhir.claim import MAX_MINOR, ClaimDoc, ClaimItem, claim_resource, read_claim

PATIENT, HOSPITAL, INSURER = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def _doc(**over: object) -> ClaimDoc:
    fields: dict[str, object] = {
        "patient": PATIENT,
        "hospital": HOSPITAL,
        "insurer": INSURER,
        "created": 1_760_000_000,
        "records": (os.urandom(32), os.urandom(32)),
        "items": (ClaimItem("consultation", 20_000), ClaimItem("amox", 1_505, os.urandom(32))),
        "salt": os.urandom(32),
    }
    fields.update(over)
    return ClaimDoc(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    doc = _doc()
    back = read_claim(claim_resource(doc))
    assert back.total == doc.total == 21_505
    assert (back.patient, back.hospital, back.insurer, back.created, back.salt) == (
        doc.patient, doc.hospital, doc.insurer, doc.created, doc.salt
    )  # fmt: skip
    assert sorted(back.records) == sorted(doc.records)
    assert back.items == doc.items and back.prescription_ids == doc.prescription_ids
    assert back.currency == "CNY"


def test_the_salt_is_not_in_the_repr() -> None:
    doc = _doc()
    assert doc.salt.hex() not in repr(doc)


@pytest.mark.parametrize(
    "over",
    [
        {"items": ()},
        {"items": (ClaimItem("free", 0),)},
        {"records": ()},
        {"salt": b"short"},
        {"currency": "yuan"},
        {"items": (ClaimItem("  ", 5),)},
    ],
)
def test_claims_the_chain_would_refuse_are_not_written(over: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        claim_resource(_doc(**over))


def test_what_is_not_a_claim_document_is_refused() -> None:
    data = claim_resource(_doc())
    obj = json.loads(data)
    for bad in (
        b"not json",
        canonical_json({"resourceType": "MedicationRequest"}),
        json.dumps(obj, indent=1).encode(),  # not canonical
        canonical_json({**obj, "identifier": []}),  # no salt
    ):
        with pytest.raises(InvalidInput):
            read_claim(bad)


def test_attack_a_total_a_float_cannot_hold_is_refused_before_anything_is_written() -> None:
    doc = _doc(items=(ClaimItem("x", MAX_MINOR - 1), ClaimItem("y", 2)))
    with pytest.raises(InvalidInput, match="under"):
        claim_resource(doc)
