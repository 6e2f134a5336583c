"""The Claims contract on both nodes: file (writer authorization, roles, records), consent
(a grant scoped to exactly the claim's records), adjudicate once with automatic settlement,
and every custom error with its arguments."""

from __future__ import annotations

import os

import pytest

from emrshare.chain import (
    Action,
    ClaimAdjudicated,
    ClaimConsented,
    ClaimFiled,
    ClaimSettled,
    ClaimStatus,
    Contracts,
    GrantCreated,
    GrantStatus,
    Role,
    claim_id,
    scope_hash,
)
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from emrshare.errors import ClaimRefused
from emrshare.types import CategoryTag, PolicyId

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, Net, reverts

pytestmark = pytest.mark.integration

TAG = CategoryTag(b"\x33" * 32)  # the patient's (blinded) claims tag
AMOUNT = 125_000  # minor units


def _records(n: int = 3) -> list[bytes]:
    return sorted(os.urandom(32) for _ in range(n))


@pytest.fixture
def cl(net: Net) -> Net:
    """The session deployment with HOSPITAL authorized to write PATIENT's claims tag."""
    net.as_(PATIENT).index.authorize_writer(TAG, net.addr(HOSPITAL), os.urandom(80))
    return net


def _file(
    net: Net, records: list[bytes] | None = None, items: list[bytes] | None = None
) -> tuple[bytes, list[bytes]]:
    records = records or _records()
    commitment = os.urandom(32)
    r = net.as_(HOSPITAL).claims.file(
        net.addr(PATIENT), net.addr(INSURER), TAG, commitment, AMOUNT, records, items or []
    )
    cid = bytes(r.event(ClaimFiled).claim_id)
    assert cid == claim_id(net.addr(HOSPITAL), commitment)
    return cid, records


def _grant(net: Net, records: list[bytes], grantee: int = INSURER, who: int = PATIENT) -> PolicyId:
    p = net.grant_params(grantee, records=records)
    return net.as_(who).grants.grant(p).event(GrantCreated).policy_id


def _consent(net: Net, cid: bytes, records: list[bytes]) -> PolicyId:
    pol = _grant(net, records)
    net.as_(PATIENT).claims.consent(cid, pol, net.proxies)
    return pol


def test_file_consent_partial_approval_settles(cl: Net) -> None:
    items = [os.urandom(32), os.urandom(32)]
    records = _records(4)
    commitment = os.urandom(32)
    r = cl.as_(HOSPITAL).claims.file(
        cl.addr(PATIENT), cl.addr(INSURER), TAG, commitment, AMOUNT, records, items
    )
    ev = r.event(ClaimFiled)
    cid = bytes(ev.claim_id)
    assert (ev.patient, ev.insurer, ev.hospital, ev.commitment, ev.amount) == (
        cl.addr(PATIENT), cl.addr(INSURER), cl.addr(HOSPITAL), commitment, AMOUNT
    )  # fmt: skip
    assert (list(ev.records), list(ev.items)) == (records, items)
    c = cl.as_(INSURER).claims.claim(cid)
    assert (c.status, c.hospital, c.insurer, c.patient, c.amount, c.approved) == (
        ClaimStatus.FILED, cl.addr(HOSPITAL), cl.addr(INSURER), cl.addr(PATIENT), AMOUNT, 0
    )  # fmt: skip
    assert c.records_hash == scope_hash(records) == cl.as_(INSURER).claims.records_hash(cid)
    assert cl.as_(INSURER).claims.id_of(cl.addr(HOSPITAL), commitment) == cid

    pol = _grant(cl, records)
    ce = cl.as_(PATIENT).claims.consent(cid, pol, cl.proxies).event(ClaimConsented)
    assert (ce.claim_id, ce.patient, ce.policy_id) == (cid, cl.addr(PATIENT), pol)
    assert cl.as_(INSURER).claims.claim(cid).status is ClaimStatus.CONSENTED

    r = cl.as_(INSURER).claims.adjudicate(cid, 100_000, 5)
    adj, settled = r.event(ClaimAdjudicated), r.event(ClaimSettled)
    assert (adj.claim_id, adj.patient, adj.insurer, adj.status, adj.approved_amount) == (
        cid, cl.addr(PATIENT), cl.addr(INSURER), 4, 100_000
    )  # fmt: skip
    assert adj.reason == 5
    assert (settled.claim_id, settled.hospital, settled.insurer, settled.amount) == (
        cid, cl.addr(HOSPITAL), cl.addr(INSURER), 100_000
    )  # fmt: skip
    assert settled.tx_hash == adj.tx_hash
    c = cl.as_(INSURER).claims.claim(cid)
    assert (c.status, c.approved, c.reason) == (ClaimStatus.PARTIALLY_APPROVED, 100_000, 5)


def test_full_approval_and_denial_without_consent(cl: Net) -> None:
    cid, records = _file(cl)
    _consent(cl, cid, records)
    r = cl.as_(INSURER).claims.adjudicate(cid, AMOUNT, 0)
    assert r.event(ClaimAdjudicated).status == 3
    assert r.event(ClaimSettled).amount == AMOUNT
    assert cl.as_(PATIENT).claims.claim(cid).status is ClaimStatus.APPROVED
    # A denial needs no consent, and settles nothing.
    cid2, _ = _file(cl)
    r = cl.as_(INSURER).claims.adjudicate(cid2, 0, 2)
    assert r.event(ClaimAdjudicated).status == 5
    assert not [e for e in r.events if isinstance(e, ClaimSettled)]
    assert cl.as_(PATIENT).claims.claim(cid2).status is ClaimStatus.DENIED


def test_hospital_without_writer_authorization_cannot_file(net: Net) -> None:
    err = reverts(
        lambda: net.as_(HOSPITAL).claims.file(
            net.addr(PATIENT), net.addr(INSURER), TAG, os.urandom(32), AMOUNT, _records(), []
        ),
        "Claims_NotWriter",
        patient=net.addr(PATIENT),
        hospital=net.addr(HOSPITAL),
    )
    assert isinstance(err, ClaimRefused)
    assert "authorize it as a writer" in str(err)


def test_writer_of_another_tag_cannot_file(cl: Net) -> None:
    other = CategoryTag(b"\x44" * 32)
    reverts(
        lambda: cl.as_(HOSPITAL).claims.file(
            cl.addr(PATIENT), cl.addr(INSURER), other, os.urandom(32), AMOUNT, _records(), []
        ),
        "Claims_NotWriter",
        patient=cl.addr(PATIENT),
        hospital=cl.addr(HOSPITAL),
    )


def test_filing_refusals(cl: Net) -> None:
    h = cl.as_(HOSPITAL).claims
    p, i = cl.addr(PATIENT), cl.addr(INSURER)
    reverts(lambda: cl.as_(OUTSIDER).claims.file(p, i, TAG, os.urandom(32), AMOUNT, _records(), []),
            "Claims_NotProvider", caller=cl.addr(OUTSIDER))  # fmt: skip
    reverts(lambda: h.file(p, cl.addr(OUTSIDER), TAG, os.urandom(32), AMOUNT, _records(), []),
            "Claims_InsurerInactive", insurer=cl.addr(OUTSIDER))  # fmt: skip
    reverts(lambda: h.file(p, i, TAG, os.urandom(32), 0, _records(), []),
            "Claims_InvalidAmount", amount=0)  # fmt: skip
    reverts(lambda: h.file(p, i, TAG, os.urandom(32), AMOUNT, [], []),
            "Claims_InvalidRecords", index=0, count=0)  # fmt: skip
    rs = _records(3)
    reverts(lambda: h.file(p, i, TAG, os.urandom(32), AMOUNT, [rs[0], rs[2], rs[1]], []),
            "Claims_InvalidRecords", index=2, count=3)  # fmt: skip
    reverts(lambda: h.file(p, i, TAG, os.urandom(32), AMOUNT, [rs[0], rs[0]], []),
            "Claims_InvalidRecords", index=1, count=2)  # fmt: skip
    reverts(lambda: h.file(p, i, TAG, os.urandom(32), AMOUNT, rs, [os.urandom(32)] * 257),
            "Claims_TooManyItems", count=257, max=256)  # fmt: skip
    commitment = os.urandom(32)
    h.file(p, i, TAG, commitment, AMOUNT, rs, [])
    reverts(lambda: h.file(p, i, TAG, commitment, AMOUNT, rs, []),
            "Claims_Exists", id=claim_id(cl.addr(HOSPITAL), commitment))  # fmt: skip


def test_consent_refusals(cl: Net) -> None:
    cid, records = _file(cl)
    pat = cl.as_(PATIENT).claims
    unknown = os.urandom(32)
    reverts(lambda: pat.consent(unknown, PolicyId(os.urandom(32)), cl.proxies),
            "Claims_Unknown", id=unknown)  # fmt: skip
    good = _grant(cl, records)
    reverts(lambda: cl.as_(OUTSIDER).claims.consent(cid, good, cl.proxies),
            "Claims_NotPatient", id=cid, caller=cl.addr(OUTSIDER))  # fmt: skip
    missing = PolicyId(os.urandom(32))
    reverts(lambda: pat.consent(cid, missing, cl.proxies),
            "Claims_GrantInactive", policyId=missing, status=0)  # fmt: skip
    revoked = _grant(cl, records)
    cl.as_(PATIENT).grants.revoke(revoked)
    reverts(lambda: pat.consent(cid, revoked, cl.proxies),
            "Claims_GrantInactive", policyId=revoked, status=2)  # fmt: skip
    to_hospital = _grant(cl, records, grantee=HOSPITAL)
    reverts(lambda: pat.consent(cid, to_hospital, cl.proxies),
            "Claims_WrongGrantee", policyId=to_hospital, insurer=cl.addr(INSURER))  # fmt: skip
    reverts(lambda: pat.consent(cid, good, list(reversed(cl.proxies))),
            "Claims_WrongGrantee", policyId=good, insurer=cl.addr(INSURER))  # fmt: skip
    wider = sorted([*records, os.urandom(32)])
    wrong_scope = _grant(cl, wider)
    reverts(
        lambda: pat.consent(cid, wrong_scope, cl.proxies),
        "Claims_WrongScope",
        policyId=wrong_scope,
        scope=scope_hash(wider),
        recordsHash=scope_hash(records),
    )
    whole_tag = _grant(cl, [])
    reverts(lambda: pat.consent(cid, whole_tag, cl.proxies), "Claims_WrongScope",
            policyId=whole_tag, scope=bytes(32), recordsHash=scope_hash(records))  # fmt: skip
    # Another patient's grant, even to the right insurer with the right records.
    cl.as_(OUTSIDER).profiles.register(os.urandom(33), os.urandom(32))
    theirs = _grant(cl, records, who=OUTSIDER)
    reverts(lambda: pat.consent(cid, theirs, cl.proxies),
            "Claims_GrantNotPatients", policyId=theirs, patient=cl.addr(PATIENT))  # fmt: skip
    assert cl.as_(PATIENT).grants.status(good) is GrantStatus.ACTIVE
    pat.consent(cid, good, cl.proxies)
    reverts(lambda: pat.consent(cid, good, cl.proxies),
            "Claims_NotOpen", id=cid, status=2)  # fmt: skip


def test_adjudicating_twice_is_refused(cl: Net) -> None:
    cid, records = _file(cl)
    _consent(cl, cid, records)
    ins = cl.as_(INSURER).claims
    ins.adjudicate(cid, 90_000, 1)
    for approved, reason in ((90_000, 1), (AMOUNT, 0), (0, 2)):
        reverts(lambda a=approved, r=reason: ins.adjudicate(cid, a, r),
                "Claims_AlreadyAdjudicated", id=cid, status=4)  # fmt: skip
    reverts(lambda: cl.as_(PATIENT).claims.consent(cid, _grant(cl, records), cl.proxies),
            "Claims_NotOpen", id=cid, status=4)  # fmt: skip


def test_adjudicating_a_claim_of_another_insurer_is_refused(cl: Net) -> None:
    cid, records = _file(cl)
    _consent(cl, cid, records)
    for who in (HOSPITAL, OUTSIDER, PATIENT):
        reverts(lambda w=who: cl.as_(w).claims.adjudicate(cid, AMOUNT, 0),
                "Claims_NotInsurer", id=cid, caller=cl.addr(who))  # fmt: skip
    assert cl.as_(INSURER).claims.claim(cid).status is ClaimStatus.CONSENTED


def test_adjudication_refusals(cl: Net) -> None:
    ins = cl.as_(INSURER).claims
    unknown = os.urandom(32)
    reverts(lambda: ins.adjudicate(unknown, 1, 1), "Claims_Unknown", id=unknown)
    cid, records = _file(cl)
    reverts(lambda: ins.adjudicate(cid, AMOUNT, 0), "Claims_NotConsented", id=cid)
    reverts(lambda: ins.adjudicate(cid, 10, 3), "Claims_NotConsented", id=cid)
    reverts(lambda: ins.adjudicate(cid, 0, 0), "Claims_ReasonRequired", id=cid)
    _consent(cl, cid, records)
    reverts(lambda: ins.adjudicate(cid, AMOUNT + 1, 0),
            "Claims_OverApproved", id=cid, approved=AMOUNT + 1, amount=AMOUNT)  # fmt: skip
    reverts(lambda: ins.adjudicate(cid, AMOUNT - 1, 0), "Claims_ReasonRequired", id=cid)
    assert ins.claim(cid).status is ClaimStatus.CONSENTED


def test_gas_of_file_consent_adjudicate(cl: Net) -> None:
    """Budgets (the gas report prints the figures): file with 3 records and 2 items,
    consent, adjudicate with settlement."""
    records = _records(3)
    r = cl.as_(HOSPITAL).claims.file(
        cl.addr(PATIENT), cl.addr(INSURER), TAG, os.urandom(32), AMOUNT, records,
        [os.urandom(32), os.urandom(32)],
    )  # fmt: skip
    cid = bytes(r.event(ClaimFiled).claim_id)
    pol = _grant(cl, records)
    c = cl.as_(PATIENT).claims.consent(cid, pol, cl.proxies)
    a = cl.as_(INSURER).claims.adjudicate(cid, 100, 1)
    print("gas file/consent/adjudicate", r.gas_used, c.gas_used, a.gas_used)
    assert r.gas_used < 150_000
    assert c.gas_used < 70_000
    assert a.gas_used < 55_000


def test_an_insurer_that_lost_its_role_cannot_adjudicate(cl: Net) -> None:
    cid, records = _file(cl)
    _consent(cl, cid, records)
    cl.pass_proposal(Action.CHANGE_ROLE, INSURER, Role.PHARMACY)
    reverts(lambda: cl.as_(INSURER).claims.adjudicate(cid, AMOUNT, 0),
            "Claims_InsurerInactive", insurer=cl.addr(INSURER))  # fmt: skip
    # Nor can a hospital the consortium removed file, even with its authorization.
    cl.pass_proposal(Action.REMOVE, HOSPITAL)
    reverts(lambda: _file(cl), "Claims_NotProvider", caller=cl.addr(HOSPITAL))


def test_a_patient_consents_through_the_forwarder(cl: Net) -> None:
    """A patient that holds no ETH consents through the PatientForwarder, as Grants."""
    cid, records = _file(cl)
    pol = _grant(cl, records)
    payer = cl.as_(OUTSIDER).client
    fwd = ForwardingClient(
        payer,
        cl.keys[PATIENT],
        cl.addr(PATIENT),
        cl.deployment.address_of("PatientForwarder"),
        DirectSubmitter(payer, cl.deployment.address_of("PatientForwarder")),
    )
    relayed = Contracts.from_deployment(fwd, cl.deployment)
    ev = relayed.claims.consent(cid, pol, cl.proxies).event(ClaimConsented)
    assert (ev.claim_id, ev.patient, ev.policy_id) == (cid, cl.addr(PATIENT), pol)
