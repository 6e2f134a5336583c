"""The facade's value types become the facts of the FHIR exports: a grant a Consent, a read
and an anomaly AuditEvents, a record with its verified entry a Provenance."""

from __future__ import annotations

import base64

import pytest

from emrshare.chain import GrantStatus
from emrshare.errors import InvalidInput
from emrshare.fhir import FhirVersion, audit_event, consent, provenance, validate_json
from emrshare.roles import AccessEvent, GrantInfo, ReadEvent, RecordInfo
from emrshare.roles._fhir_export import audit_facts, consent_facts, provenance_facts
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

pytestmark = pytest.mark.unit

PATIENT = Address("0x1111111111111111111111111111111111111111")
READER = Address("0x2222222222222222222222222222222222222222")
PROXY = Address("0x3333333333333333333333333333333333333333")
GUARDIAN = Address("0x5555555555555555555555555555555555555555")
POLICY = PolicyId(b"\xab" * 32)
RECORD = RecordId(b"\xcd" * 32)
TAG = CategoryTag(b"\x01" * 32)
SIG = bytes(range(65))


def _access(anomaly: str = "") -> AccessEvent:
    return AccessEvent(
        policy_id=POLICY,
        requester=READER,
        proxy=PROXY,
        capsule_hashes=(b"\x02" * 32,),
        nonce=7,
        evaluated_at_block=10,
        evaluated_time=1_700_000_000,
        block_number=11,
        timestamp=1_700_000_012,
        category="hiv",
        record_ids=None if anomaly else (RECORD,),
        anomaly=anomaly,
    )


@pytest.mark.parametrize("version", [FhirVersion.R4, FhirVersion.R5], ids=lambda v: v.label)
def test_a_grant_becomes_a_consent(version: FhirVersion) -> None:
    grant = GrantInfo(
        policy_id=POLICY,
        patient=PATIENT,
        grantee=READER,
        category="hiv",
        epoch=1,
        tag=TAG,
        expiry=1_800_000_000,
        threshold=2,
        proxies=(PROXY,),
        status=GrantStatus.REVOKED,
        block_number=6,
        by=GUARDIAN,
    )
    facts = consent_facts(grant, created=1_700_000_000, purpose="TREAT")
    assert facts.grant_id == "0x" + "ab" * 32
    assert (facts.status, facts.by, facts.proxies) == ("revoked", GUARDIAN, (PROXY,))
    c = consent(facts, version)
    validate_json(c, version)
    assert c["status"] == "inactive"


def test_a_read_and_an_anomaly_become_audit_events() -> None:
    access = _access()
    read = ReadEvent(
        policy_id=POLICY,
        requester=READER,
        category="hiv",
        record_ids=(RECORD,),
        proxies=(PROXY,),
        threshold=1,
        nonce=7,
        evaluated_at_block=10,
        evaluated_time=1_700_000_000,
        block_number=11,
        timestamp=1_700_000_012,
        accesses=(access,),
    )
    served = audit_facts(read, PATIENT, purpose="HPAYMT")
    assert served.record_ids == ("0x" + "cd" * 32,)
    assert (served.evaluated, served.anomaly, served.purpose) == (1_700_000_000, "", "HPAYMT")
    odd = audit_facts(_access("a repeat of an access"), PATIENT)
    assert (odd.record_ids, odd.proxies, odd.anomaly) == ((), (PROXY,), "a repeat of an access")
    for facts in (served, odd):
        validate_json(audit_event(facts, FhirVersion.R4), FhirVersion.R4)
    assert audit_event(odd)["outcome"] == "8"


def test_a_record_becomes_a_provenance_only_with_its_entry() -> None:
    listed = RecordInfo(
        record_id=RECORD,
        patient=PATIENT,
        author=READER,
        category="lab-results",
        epoch=0,
        tag=TAG,
        block_number=5,
        media_type="text/plain",
        size=12,
        created_at=1_700_000_000,
        author_signature=SIG,
    )
    p = provenance(provenance_facts(listed, recorded=1_700_000_004), FhirVersion.R5)
    validate_json(p, FhirVersion.R5)
    assert base64.b64decode(p["signature"][0]["data"]) == SIG
    assert "author_signature" not in repr(listed)  # 65 bytes of noise in a repr
    bare = RecordInfo(RECORD, PATIENT, READER, "lab-results", 0, TAG, 5)
    with pytest.raises(InvalidInput, match="without its index entry"):
        provenance_facts(bare, recorded=1_700_000_004)
