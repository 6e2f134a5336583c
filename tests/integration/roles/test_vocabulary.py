"""Categories, purposes and expiries at the library boundary on a real chain (issue 12,
items 5, 6 and 9): one canonical name per category, new names only when asked for,
names written before the vocabulary still usable, and refusals before any transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emrshare.errors import (
    ConfigurationError,
    InvalidCategory,
    InvalidInput,
    UnknownCategory,
    UnknownPurpose,
)
from emrshare.roles import Patient
from tests.integration.roles.conftest import Stack


def _nonce(stack: Stack, address: str) -> int:
    return int(stack.net.w3.eth.get_transaction_count(address))


def test_grant_refuses_zero_and_past_expiries_before_any_transaction(stack: Stack) -> None:
    patient, hospital = stack.patient, stack.hospital
    now = stack.net.chain_time()
    before = _nonce(stack, patient.address)
    for expires in (
        timedelta(0),
        timedelta(seconds=-30),
        0,
        now - 10,
        now,
        now + 30,  # less than a minute after the chain's time
        datetime(2020, 1, 1, tzinfo=UTC),
    ):
        with pytest.raises(InvalidInput, match=r"positive|in the past|less than a minute"):
            patient.grant(hospital.address, "lab-results", expires=expires)
    assert _nonce(stack, patient.address) == before
    assert patient.pending_operations() == [] and patient.grants() == []
    # A minute and more passes the expiry check (this stack has no proxies, so the grant
    # stops at the next check; tests/integration/cli/test_categories.py makes real ones).
    for ok in (now + 3600, timedelta(days=1), datetime(2099, 1, 1, tzinfo=UTC)):
        with pytest.raises(ConfigurationError, match="no proxies"):
            patient.grant(hospital.address, "lab-results", expires=ok)


def test_aliases_land_in_one_category_across_writer_patient_and_grant(stack: Stack) -> None:
    """The stack authorized the hospital for "lab": that is lab-results, which the hospital
    writes as "LAB" and the patient lists and grants as "Lab Results"."""
    patient, hospital = stack.patient, stack.hospital
    assert hospital.writable_categories(patient.address) == {"lab-results": 0}
    rid = hospital.add_record(patient.address, "LAB", b"Hb 14.1 g/dL")
    (rec,) = patient.records("Lab Results")
    assert (rec.record_id, rec.category) == (rid, "lab-results")
    assert patient.records("imaging") == []
    with pytest.raises(UnknownCategory, match="did you mean 'lab-results'") as typo:
        hospital.add_record(patient.address, "Lab Results/é!", b"x")
    assert typo.value.suggestion == "lab-results"
    assert patient.categories() == ["lab-results"]


def test_a_new_category_needs_the_flag_once(stack: Stack) -> None:
    patient, hospital = stack.patient, stack.hospital
    before = _nonce(stack, patient.address)
    with pytest.raises(UnknownCategory):
        patient.add_record("home-bp", b"120/80")
    with pytest.raises(UnknownCategory):
        patient.authorize_writer(hospital.address, "home-bp")
    with pytest.raises(UnknownCategory):
        patient.grant(hospital.address, "home-bp", expires=timedelta(days=1))
    with pytest.raises(InvalidCategory, match="lower-case letters"):
        patient.add_record("home bp/é", b"120/80", new_category=True)
    assert _nonce(stack, patient.address) == before
    rid = patient.add_record("Home BP", b"120/80", new_category=True)
    # Now the patient uses it: no flag, and any spelling that folds to it.
    patient.authorize_writer(hospital.address, "home_bp")
    assert hospital.writable_categories(patient.address)["home-bp"] == 0
    with pytest.raises(ConfigurationError, match="no proxies"):  # past the category check
        patient.grant(hospital.address, "HOME-BP", expires=timedelta(days=1))
    assert [r.record_id for r in patient.records("home-bp")] == [rid]


def test_a_name_from_before_the_vocabulary_stays_usable(stack: Stack) -> None:
    """A category named freely by an earlier release (here "Lab Results/é") is still
    granted, written and listed by that exact name: its tags derive from it."""
    old = "Lab Results/é"
    patient = Patient(
        stack.net, stack.patient.keys, state_dir=stack.tmp / "patient-2", known_categories=[old]
    )
    try:
        patient.authorize_writer(stack.hospital.address, old)
        assert old in stack.hospital.writable_categories(patient.address)
        rid = stack.hospital.add_record(patient.address, old, b"legacy")
        assert [(r.record_id, r.category) for r in patient.records(old)] == [(rid, old)]
        assert patient.read(rid) == b"legacy"
    finally:
        patient.close()


def test_purposes_are_normalized_and_unknown_ones_refused(stack: Stack) -> None:
    patient, hospital = stack.patient, stack.hospital
    before = _nonce(stack, hospital.address)
    with pytest.raises(UnknownPurpose, match="did you mean TREAT"):
        hospital.request_access(patient.address, "imaging", purpose="tret")
    with pytest.raises(UnknownCategory):
        hospital.request_access(patient.address, "home-bp")
    assert _nonce(stack, hospital.address) == before
    rid = hospital.request_access(patient.address, "Radiology", purpose="treat")
    (req,) = patient.requests()
    assert (req.request_id, req.category, req.purpose) == (rid, "imaging", "TREAT")
