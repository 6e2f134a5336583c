"""Ids people can handle (issue 12, item 2): unique prefixes back in, short forms out, and
value types whose reprs hold no raw bytes (item 7)."""

from __future__ import annotations

import re

import pytest

from emrshare import AmbiguousId, InvalidInput, NotFound, RecordNotFound
from emrshare._ids import MIN_PREFIX, resolve_id, short_forms, short_hex
from emrshare.chain import GrantStatus
from emrshare.roles import AccessEvent, GrantInfo, ReadEvent, RecordInfo
from emrshare.roles._reports import VerifiedReport
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

A = bytes.fromhex("1a2b3c4d" + "00" * 28)
B = bytes.fromhex("1a2b3c4d5e" + "11" * 27)
C = bytes.fromhex("ffee0011" + "22" * 28)
KNOWN = [A, B, C]
WHERE = "in this patient's index"
ALICE = Address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")


@pytest.mark.parametrize("given", ["0xffee0011", "ffee0011", "0xFFEE0011", " 0xffee00112 "])
def test_a_unique_prefix_names_its_record(given: str) -> None:
    assert resolve_id(given, KNOWN, where=WHERE) == C


def test_full_ids_and_bytes_are_taken_as_given() -> None:
    assert resolve_id("0x" + B.hex(), [], where=WHERE) == B
    assert resolve_id(B, [], where=WHERE) == B
    with pytest.raises(InvalidInput, match="32 bytes"):
        resolve_id(B[:31], KNOWN, where=WHERE)


def test_an_ambiguous_prefix_lists_the_candidates_short() -> None:
    with pytest.raises(AmbiguousId) as info:
        resolve_id("0x1a2b3c4d", KNOWN, where=WHERE)
    err = info.value
    assert isinstance(err, InvalidInput)
    assert err.candidates == ("0x" + A.hex(), "0x" + B.hex())
    # Short forms long enough to tell the two apart, each a valid prefix to type back.
    assert "0x1a2b3c4d00" in str(err) and "0x1a2b3c4d5e" in str(err)
    assert "give more digits" in str(err)
    assert resolve_id("0x1a2b3c4d5", KNOWN, where=WHERE) == B
    assert resolve_id("0x1a2b3c4d00", KNOWN, where=WHERE) == A


def test_a_prefix_of_nothing_is_record_not_found() -> None:
    with pytest.raises(RecordNotFound, match="no record id starts with 0x12345678 in this"):
        resolve_id("0x12345678", KNOWN, where=WHERE)


def test_a_grant_prefix_of_nothing_is_not_found_naming_grants() -> None:
    with pytest.raises(NotFound) as info:
        resolve_id("0x12345678", KNOWN, where="among this patient's grants", what="grant")
    assert not isinstance(info.value, RecordNotFound)
    assert "no grant id starts with 0x12345678 among this patient's grants" in str(info.value)


@pytest.mark.parametrize("given", ["0x1a2b3c4", "1a2b", "0x", ""])
def test_fewer_than_eight_digits_is_refused_saying_so(given: str) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_id(given, KNOWN, where=WHERE)
    assert not isinstance(info.value, RecordNotFound | AmbiguousId)
    assert f"at least {MIN_PREFIX} hex" in str(info.value)


@pytest.mark.parametrize("given", ["0x1a2b3c4g", "lab-result", "0x" + "a" * 65])
def test_not_hex_or_too_long_is_invalid_input(given: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_id(given, KNOWN, where=WHERE)


def test_short_forms_are_unique_in_their_table() -> None:
    assert short_hex(C) == "0xffee0011"
    forms = short_forms([A, B, C, C])
    assert forms[C] == "0xffee0011"  # only the ids that collide grow, by whole bytes
    assert (forms[A], forms[B]) == ("0x1a2b3c4d00", "0x1a2b3c4d5e")
    assert all(resolve_id(f, KNOWN, where=WHERE) == v for v, f in forms.items())


def _access(proxy: str) -> AccessEvent:
    return AccessEvent(
        policy_id=PolicyId(B),
        requester=ALICE,
        proxy=proxy,  # type: ignore[arg-type]
        capsule_hashes=(C,),
        nonce=7,
        evaluated_at_block=10,
        evaluated_time=1_700_000_000,
        block_number=12,
        timestamp=1_700_000_003,
        category="lab",
        record_ids=(RecordId(A),),
    )


def test_value_type_reprs_hold_no_raw_bytes() -> None:
    record = RecordInfo(
        record_id=RecordId(A),
        patient=ALICE,
        author=ALICE,
        category="lab",
        epoch=0,
        tag=CategoryTag(C),
        block_number=5,
        media_type="text/plain",
        size=12,
    )
    grant = GrantInfo(
        policy_id=PolicyId(B),
        patient=ALICE,
        grantee=ALICE,
        category="lab",
        epoch=0,
        tag=CategoryTag(C),
        expiry=1_800_000_000,
        threshold=2,
        proxies=(ALICE,),
        status=GrantStatus.ACTIVE,
        block_number=6,
    )
    access = _access(ALICE)
    read = ReadEvent(
        policy_id=PolicyId(B),
        requester=ALICE,
        category="lab",
        record_ids=(RecordId(A),),
        proxies=(ALICE, ALICE),
        threshold=2,
        nonce=7,
        evaluated_at_block=10,
        evaluated_time=1_700_000_000,
        block_number=12,
        timestamp=1_700_000_003,
        accesses=(access, access),
    )
    for value in (record, grant, access, read):
        text = repr(value)
        assert not re.search(r"\bb['\"]|\\x", text), text
        assert text.startswith(type(value).__name__ + "(")
        assert ALICE in text  # addresses in full
    assert "record_id=0x1a2b3c4d…" in repr(record) and "tag=0xffee0011…" in repr(record)
    assert "status='active'" in repr(grant)
    assert "capsule_hashes=(0xffee0011…,)" in repr(access)
    assert "accesses" not in repr(read) and "record_ids=(0x1a2b3c4d…,)" in repr(read)
    assert read.complete and read.count == 1
    report = VerifiedReport(3, ALICE, ALICE, C, PolicyId(B), 9)
    assert "evidence_hash=0xffee0011…" in repr(report) and "\\x" not in repr(report)
