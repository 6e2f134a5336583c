"""Access requests (FHIR purpose of use; approve creates the grant; deny) and the audit log."""

from __future__ import annotations

import os

from emrshare.chain import (
    AccessEntry,
    AccessLogged,
    AccessRequestApproved,
    AccessRequestDenied,
    AccessRequested,
    GrantCreated,
    RequestStatus,
    purpose_code,
)
from emrshare.types import PolicyId

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, PROXY_B, Net, reverts

CATEGORY = b"\x66" * 32


def _request(net: Net, who: int = INSURER, purpose: str = "HPAYMT") -> int:
    reason = os.urandom(32)
    r = net.as_(who).grants.request_access(
        net.addr(PATIENT), CATEGORY, purpose_code(purpose), reason
    )
    ev = r.event(AccessRequested)
    assert (ev.patient, ev.requester, ev.category, ev.reason_hash) == (
        net.addr(PATIENT),
        net.addr(who),
        CATEGORY,
        reason,
    )
    assert ev.purpose.rstrip(b"\0").decode() == purpose
    return ev.request_id


def test_request_approved_creates_the_grant(net: Net) -> None:
    rid = _request(net)
    params = net.grant_params(grantee=INSURER)
    r = net.as_(PATIENT).grants.approve_request(rid, params)
    created = r.event(GrantCreated)
    approved = r.event(AccessRequestApproved)
    assert created.grantee == net.addr(INSURER)
    assert (approved.request_id, approved.requester, approved.policy_id) == (
        rid,
        net.addr(INSURER),
        created.policy_id,
    )
    req = net.as_(OUTSIDER).grants.request(rid)
    assert (req.status, req.policy_id, req.patient) == (
        RequestStatus.APPROVED,
        created.policy_id,
        net.addr(PATIENT),
    )
    assert net.as_(OUTSIDER).grants.is_active(created.policy_id)
    reverts(
        lambda: net.as_(PATIENT).grants.deny_request(rid),
        "Grants_RequestClosed",
        requestId=rid,
        status=int(RequestStatus.APPROVED),
    )


def test_request_denied(net: Net) -> None:
    rid = _request(net, who=HOSPITAL, purpose="TREAT")
    ev = net.as_(PATIENT).grants.deny_request(rid).event(AccessRequestDenied)
    assert (ev.request_id, ev.requester) == (rid, net.addr(HOSPITAL))
    assert net.as_(PATIENT).grants.request(rid).status is RequestStatus.DENIED
    reverts(
        lambda: net.as_(PATIENT).grants.approve_request(rid, net.grant_params(grantee=HOSPITAL)),
        "Grants_RequestClosed",
        requestId=rid,
        status=int(RequestStatus.DENIED),
    )


def test_request_rules(net: Net) -> None:
    g = net.as_(OUTSIDER).grants
    out, p = net.addr(OUTSIDER), net.addr(PATIENT)
    tr = purpose_code("TREAT")
    reverts(lambda: g.request_access(p, CATEGORY, tr, bytes(32)), "Grants_NotMember", account=out)
    ins = net.as_(INSURER).grants
    for bad in (
        bytes(32),
        b"treat".ljust(32, b"\0"),
        b"TR EAT".ljust(32, b"\0"),
        b"\0TREAT".ljust(32, b"\0"),
    ):
        reverts(
            lambda b=bad: ins.request_access(p, CATEGORY, b, bytes(32)),
            "Grants_InvalidPurpose",
            purpose=bad,
        )
    me = net.addr(INSURER)
    reverts(
        lambda: ins.request_access(me, CATEGORY, tr, bytes(32)), "Grants_InvalidPatient", patient=me
    )
    reverts(lambda: g.request(42), "Grants_UnknownRequest", requestId=42)
    reverts(lambda: net.as_(PATIENT).grants.deny_request(42), "Grants_UnknownRequest", requestId=42)


def test_only_the_patient_answers_and_grantee_must_be_the_requester(net: Net) -> None:
    rid = _request(net)
    reverts(
        lambda: net.as_(HOSPITAL).grants.deny_request(rid),
        "Grants_NotRequestPatient",
        requestId=rid,
        caller=net.addr(HOSPITAL),
    )
    reverts(
        lambda: net.as_(PATIENT).grants.approve_request(rid, net.grant_params(grantee=HOSPITAL)),
        "Grants_GranteeMismatch",
        requestId=rid,
        requester=net.addr(INSURER),
        grantee=net.addr(HOSPITAL),
    )
    assert net.as_(PATIENT).grants.request_count() == rid


def _grant(net: Net) -> PolicyId:
    return net.as_(PATIENT).grants.grant(net.grant_params()).event(GrantCreated).policy_id


def _entry(net: Net, count: int = 3, block: int | None = None) -> AccessEntry:
    at = net.w3.eth.block_number if block is None else block
    return AccessEntry(net.addr(HOSPITAL), os.urandom(32), count, at)


def test_listed_proxy_logs_accesses(net: Net) -> None:
    pid = _grant(net)
    entries = [_entry(net), _entry(net, 7)]
    r = net.as_(PROXY_B).audit.log_accesses(pid, net.proxies, entries)
    logged = r.events_of(AccessLogged)
    assert [
        (e.policy_id, e.proxy, e.requester, e.records_hash, e.count, e.evaluated_at) for e in logged
    ] == [
        (pid, net.addr(PROXY_B), x.requester, x.records_hash, x.count, x.evaluated_at)
        for x in entries
    ]
    found = list(net.as_(PATIENT).audit.events(AccessLogged, policy_id=pid))
    assert len(found) == 2


def test_audit_rules(net: Net) -> None:
    pid = _grant(net)
    out = net.as_(OUTSIDER).audit
    reverts(
        lambda: out.log_accesses(pid, net.proxies, [_entry(net)]),
        "AuditLog_NotPolicyProxy",
        policyId=pid,
        caller=net.addr(OUTSIDER),
    )
    pa = net.as_(PROXY_A).audit
    reverts(
        lambda: pa.log_accesses(pid, [net.addr(PROXY_A)], [_entry(net)]),
        "AuditLog_ProxiesMismatch",
        policyId=pid,
    )
    # A caller cannot slip itself into the list: the hash must match the grant's.
    reverts(
        lambda: out.log_accesses(pid, [*net.proxies, net.addr(OUTSIDER)], [_entry(net)]),
        "AuditLog_ProxiesMismatch",
        policyId=pid,
    )
    unknown = os.urandom(32)
    reverts(
        lambda: pa.log_accesses(PolicyId(unknown), net.proxies, [_entry(net)]),
        "AuditLog_UnknownPolicy",
        policyId=unknown,
    )
    reverts(lambda: pa.log_accesses(pid, net.proxies, []), "AuditLog_EmptyBatch")
    future = net.w3.eth.block_number + 100
    reverts(
        lambda: pa.log_accesses(pid, net.proxies, [_entry(net, block=future)]),
        "AuditLog_FutureBlock",
        evaluatedAt=future,
        currentBlock=lambda b: b < future,
    )
