"""Sealed access requests and answers; the audit log accepts only what a grant allowed and
the grantee signed."""

from __future__ import annotations

import os
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from emrshare.chain import (
    AccessLogged,
    AccessRequestAnswered,
    AccessRequested,
    Action,
    GrantCreated,
    RequestStatus,
)
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.requests import AccessAnswer, AccessRequestBody, seal_answer, seal_request
from emrshare.types import PolicyId

from .conftest import (
    HOSPITAL,
    INSURER,
    OUTSIDER,
    PATIENT,
    PROXY_A,
    PROXY_B,
    PROXY_C,
    Net,
    reverts,
)

SEALED = os.urandom(320)


def _request(net: Net, who: int = INSURER, sealed: bytes = SEALED) -> int:
    r = net.as_(who).grants.request_access(net.addr(PATIENT), sealed)
    ev = r.event(AccessRequested)
    assert (ev.patient, ev.requester, ev.sealed_request) == (
        net.addr(PATIENT),
        net.addr(who),
        sealed,
    )
    return ev.request_id


def test_sealed_request_and_answer(net: Net) -> None:
    rid = _request(net)
    g = net.as_(OUTSIDER).grants
    req = g.request(rid)
    assert (req.request_id, req.requester, req.status, req.patient) == (
        rid,
        net.addr(INSURER),
        RequestStatus.PENDING,
        net.addr(PATIENT),
    )
    answer = os.urandom(900)
    r = net.as_(PATIENT).grants.answer_request(rid, answer)
    ev = r.event(AccessRequestAnswered)
    assert (ev.request_id, ev.patient, ev.requester, ev.sealed_answer) == (
        rid,
        net.addr(PATIENT),
        net.addr(INSURER),
        answer,
    )
    assert g.request(rid).status is RequestStatus.ANSWERED
    assert [e.request_id for e in g.events(AccessRequestAnswered, requester=net.addr(INSURER))] == [
        rid
    ]
    reverts(
        lambda: net.as_(PATIENT).grants.answer_request(rid, answer),
        "Grants_RequestClosed",
        requestId=rid,
        status=int(RequestStatus.ANSWERED),
    )
    assert g.request_count() == rid


def test_request_rules(net: Net) -> None:
    out, p = net.addr(OUTSIDER), net.addr(PATIENT)
    reverts(
        lambda: net.as_(OUTSIDER).grants.request_access(p, SEALED), "Grants_NotMember", account=out
    )
    ins = net.as_(INSURER).grants
    me = net.addr(INSURER)
    reverts(lambda: ins.request_access(me, SEALED), "Grants_InvalidPatient", patient=me)
    # An address without a patient profile is no patient to ask (nor the zero address).
    zero = "0x" + "00" * 20
    for nobody in (out, zero):
        reverts(
            lambda n=nobody: ins.request_access(n, SEALED), "Grants_InvalidPatient", patient=nobody
        )
    for size in (0, 1025):
        reverts(
            lambda n=size: ins.request_access(p, os.urandom(n)),
            "Grants_SealedTooLarge",
            index=0,
            length=size,
        )
    ins.request_access(p, os.urandom(1024))
    # A suspended proxy is no active member.
    net.pass_proposal(Action.SUSPEND, PROXY_A)
    reverts(
        lambda: net.as_(PROXY_A).grants.request_access(p, SEALED),
        "Grants_NotMember",
        account=net.addr(PROXY_A),
    )
    g = net.as_(PATIENT).grants
    reverts(lambda: g.request(42), "Grants_UnknownRequest", requestId=42)
    reverts(lambda: g.answer_request(42, b"a"), "Grants_UnknownRequest", requestId=42)


def test_only_the_patient_answers_and_answers_are_bounded(net: Net) -> None:
    rid = _request(net)
    reverts(
        lambda: net.as_(HOSPITAL).grants.answer_request(rid, b"a"),
        "Grants_NotRequestPatient",
        requestId=rid,
        caller=net.addr(HOSPITAL),
    )
    g = net.as_(PATIENT).grants
    for size in (0, 1025):
        reverts(
            lambda n=size: g.answer_request(rid, os.urandom(n)),
            "Grants_SealedTooLarge",
            index=0,
            length=size,
        )
    assert g.request(rid).status is RequestStatus.PENDING


def test_attack_request_category_not_in_calldata(net: Net) -> None:
    patient, insurer = net.addr(PATIENT), net.addr(INSURER)
    name = "hiv"
    body = AccessRequestBody(patient, insurer, name, "HPAYMT", "claim 42", net.chain_time())
    sealed = seal_request(PatientKeys.generate().public_keys().box_key, body)
    r = net.as_(INSURER).grants.request_access(patient, sealed)
    # What the old contract carried: keccak(domain, patient, name), the name, the purpose,
    # the reason hash. None of it may appear in the transaction input or its logs.
    dictionary_ref = keccak(
        b"emrshare/access-request-category/v1" + bytes.fromhex(patient[2:]) + name.encode()
    )
    tx_input = bytes(net.w3.eth.get_transaction(r.tx_hash)["input"])
    logs = b"".join(
        bytes(log["data"]) + b"".join(bytes(t) for t in log["topics"]) for log in r.logs
    )
    for blob in (tx_input, logs):
        for secret in (dictionary_ref, name.encode(), b"HPAYMT", keccak(b"claim 42")):
            assert secret not in blob
    # The approval is an unlinked grant plus a sealed answer: no policy id in clear.
    pid = net.as_(PATIENT).grants.grant(net.grant_params(grantee=INSURER))
    policy = pid.event(GrantCreated).policy_id
    answer = AccessAnswer(
        r.event(AccessRequested).request_id,
        patient,
        insurer,
        "approved",
        (policy,),
        net.chain_time(),
    )
    member, me = MemberKeys.generate(), PatientKeys.generate()
    blob = seal_answer(
        answer,
        requester_box_key=member.public_keys().box_key,
        patient_box_key=me.public_keys().box_key,
    )
    a = net.as_(PATIENT).grants.answer_request(answer.request_id, blob)
    answer_input = bytes(net.w3.eth.get_transaction(a.tx_hash)["input"])
    assert bytes(policy) not in answer_input
    assert bytes(policy) not in b"".join(bytes(log["data"]) for log in a.logs)


# --------------------------------------------------------------------- audit


def _grant(net: Net, **over: Any) -> tuple[PolicyId, int]:
    r = net.as_(PATIENT).grants.grant(net.grant_params(**over))
    return r.event(GrantCreated).policy_id, r.block_number


def test_listed_proxy_logs_signed_accesses(net: Net) -> None:
    pid, _ = _grant(net)
    entries = [net.access(pid, PROXY_B), net.access(pid, PROXY_B, capsules=5)]
    r = net.as_(PROXY_B).audit.log_accesses(pid, net.addr(HOSPITAL), net.proxies, entries)
    logged = r.events_of(AccessLogged)
    assert [
        (
            e.policy_id,
            e.patient,
            e.proxy,
            e.requester,
            e.capsule_hashes,
            e.nonce,
            e.evaluated_at,
            e.evaluated_time,
        )
        for e in logged
    ] == [
        (
            pid,
            net.addr(PATIENT),
            net.addr(PROXY_B),
            net.addr(HOSPITAL),
            tuple(x.capsule_hashes),
            x.nonce,
            x.evaluated_at,
            x.evaluated_time,
        )
        for x in entries
    ]
    # One filter gives a patient's whole trail.
    found = list(net.as_(PATIENT).audit.events(AccessLogged, patient=net.addr(PATIENT)))
    assert len(found) == 2
    assert list(net.as_(PATIENT).audit.events(AccessLogged, patient=net.addr(INSURER))) == []
    # 256 capsules is the most one access may name.
    big = net.access(pid, PROXY_C, capsules=256)
    net.as_(PROXY_C).audit.log_accesses(pid, net.addr(HOSPITAL), net.proxies, [big])


def test_audit_domain_is_the_grants_eip712_domain(net: Net) -> None:
    c = net.as_(OUTSIDER)
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    b"EIP712Domain(string name,string version,uint256 chainId,"
                    b"address verifyingContract)"
                ),
                keccak(b"emrshare-proxy"),
                keccak(b"1"),
                net.w3.eth.chain_id,
                c.grants.address,
            ],
        )
    )
    assert c.audit.domain_separator() == expected


def test_audit_rules(net: Net) -> None:
    pid, _ = _grant(net)
    h = net.addr(HOSPITAL)
    out = net.as_(OUTSIDER).audit
    reverts(
        lambda: out.log_accesses(pid, h, net.proxies, [net.access(pid, OUTSIDER)]),
        "AuditLog_NotPolicyProxy",
        policyId=pid,
        caller=net.addr(OUTSIDER),
    )
    pa = net.as_(PROXY_A).audit
    ok = net.access(pid, PROXY_A)
    reverts(
        lambda: pa.log_accesses(pid, h, [net.addr(PROXY_A)], [ok]),
        "AuditLog_BindingMismatch",
        policyId=pid,
    )
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies[::-1], [ok]),
        "AuditLog_BindingMismatch",
        policyId=pid,
    )
    # A caller cannot slip itself into the list: the binding must match the grant's.
    reverts(
        lambda: out.log_accesses(pid, h, [*net.proxies, net.addr(OUTSIDER)], [ok]),
        "AuditLog_BindingMismatch",
        policyId=pid,
    )
    unknown = PolicyId(os.urandom(32))
    reverts(
        lambda: pa.log_accesses(unknown, h, net.proxies, [ok]),
        "AuditLog_UnknownPolicy",
        policyId=unknown,
    )
    reverts(lambda: pa.log_accesses(pid, h, net.proxies, []), "AuditLog_EmptyBatch")
    none = net.access(pid, PROXY_A, capsules=0)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [ok, none]),
        "AuditLog_InvalidAccess",
        index=1,
    )
    too_many = net.access(pid, PROXY_A, capsules=257)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [too_many]),
        "AuditLog_InvalidAccess",
        index=0,
    )
    future = net.w3.eth.block_number + 100
    reverts(
        lambda: pa.log_accesses(
            pid, h, net.proxies, [net.access(pid, PROXY_A, evaluated_at=future)]
        ),
        "AuditLog_OutsideGrantWindow",
        policyId=pid,
        evaluatedAt=future,
    )
    later = net.chain_time() + 3000
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, time=later)]),
        "AuditLog_OutsideGrantTime",
        policyId=pid,
        evaluatedTime=later,
    )
    # Served after the deadline the grantee signed.
    now = net.chain_time()
    late = net.access(pid, PROXY_A, deadline=now - 1, time=now)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [late]),
        "AuditLog_OutsideGrantTime",
        policyId=pid,
        evaluatedTime=now,
    )
    pa.log_accesses(pid, h, net.proxies, [ok])


def test_attack_forged_audit_requester_refused(net: Net) -> None:
    pid, _ = _grant(net)
    pa = net.as_(PROXY_A).audit
    # The proxy names another requester (with that member's genuine signature): the
    # binding pins the grantee.
    forged = net.access(pid, PROXY_A, signer=INSURER)
    reverts(
        lambda: pa.log_accesses(pid, net.addr(INSURER), net.proxies, [forged]),
        "AuditLog_BindingMismatch",
        policyId=pid,
    )
    # Under the real grantee, another member's signature does not pass.
    reverts(
        lambda: pa.log_accesses(pid, net.addr(HOSPITAL), net.proxies, [forged]),
        "AuditLog_BadRequestSignature",
        policyId=pid,
        index=0,
    )
    r = pa.log_accesses(pid, net.addr(HOSPITAL), net.proxies, [net.access(pid, PROXY_A)])
    assert r.event(AccessLogged).requester == net.addr(HOSPITAL)


def test_attack_audit_evaluated_at_zero_refused(net: Net) -> None:
    pid, created = _grant(net)
    pa = net.as_(PROXY_A).audit
    h = net.addr(HOSPITAL)
    for at in (0, created - 1):
        reverts(
            lambda b=at: pa.log_accesses(
                pid, h, net.proxies, [net.access(pid, PROXY_A, evaluated_at=b)]
            ),
            "AuditLog_OutsideGrantWindow",
            policyId=pid,
            evaluatedAt=at,
        )
    # The grant's own block is inside its window.
    pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, at=created)])


def test_attack_audit_after_revocation_refused(net: Net) -> None:
    pid, _ = _grant(net)
    net.as_(OUTSIDER).registry.member_count()  # a block between grant and revocation
    net.node.rpc("evm_mine")
    revoked = net.as_(PATIENT).grants.revoke(pid).block_number
    pa, h = net.as_(PROXY_A).audit, net.addr(HOSPITAL)
    for at in (revoked, net.w3.eth.block_number):
        reverts(
            lambda b=at: pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, at=b)]),
            "AuditLog_OutsideGrantWindow",
            policyId=pid,
            evaluatedAt=at,
        )
    # Served before the revocation: still loggable afterwards.
    pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, at=revoked - 1)])


def test_attack_audit_after_tag_revoke_refused(net: Net) -> None:
    params = net.grant_params()
    pid, _ = _grant(net, nonce=params.nonce, tag=params.tag)
    net.node.rpc("evm_mine")
    ended = net.as_(PATIENT).grants.revoke_tag(params.tag).block_number
    pa, h = net.as_(PROXY_A).audit, net.addr(HOSPITAL)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, at=ended)]),
        "AuditLog_OutsideGrantWindow",
        policyId=pid,
        evaluatedAt=ended,
    )
    pa.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_A, at=ended - 1)])


def test_attack_audit_after_expiry_refused(net: Net) -> None:
    expiry = net.chain_time() + 1000
    pid, _ = _grant(net, expiry=expiry)
    net.advance_time(2000)
    pa, h = net.as_(PROXY_A).audit, net.addr(HOSPITAL)
    late = net.access(pid, PROXY_A)
    assert late.evaluated_time >= expiry
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [late]),
        "AuditLog_OutsideGrantTime",
        policyId=pid,
        evaluatedTime=late.evaluated_time,
    )
    at_expiry = net.access(pid, PROXY_A, time=expiry)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [at_expiry]),
        "AuditLog_OutsideGrantTime",
        policyId=pid,
        evaluatedTime=expiry,
    )


def test_attack_audit_by_removed_proxy_refused(net: Net) -> None:
    pid, _ = _grant(net)
    served = net.access(pid, PROXY_A)
    net.pass_proposal(Action.REMOVE, PROXY_A)
    reverts(
        lambda: net.as_(PROXY_A).audit.log_accesses(pid, net.addr(HOSPITAL), net.proxies, [served]),
        "AuditLog_NotProxy",
        account=net.addr(PROXY_A),
    )


def test_attack_audit_by_suspended_proxy_refused(net: Net) -> None:
    pid, _ = _grant(net)
    h = net.addr(HOSPITAL)
    pb = net.as_(PROXY_B).audit
    net.pass_proposal(Action.SUSPEND, PROXY_B)
    reverts(
        lambda: pb.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_B)]),
        "AuditLog_NotProxy",
        account=net.addr(PROXY_B),
    )
    # The other proxies of the grant are unaffected; a reinstated proxy logs again.
    net.as_(PROXY_C).audit.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_C)])
    net.pass_proposal(Action.REINSTATE, PROXY_B)
    pb.log_accesses(pid, h, net.proxies, [net.access(pid, PROXY_B)])


def test_attack_audit_without_grantee_signature_refused(net: Net) -> None:
    pid, _ = _grant(net)
    pa, h = net.as_(PROXY_A).audit, net.addr(HOSPITAL)
    good = net.access(pid, PROXY_A)
    bad: dict[str, Any] = {
        "self-signed by the proxy": net.access(pid, PROXY_A, signer=PROXY_A),
        "signed for another proxy": net.access(
            pid, PROXY_A, signature=net.access(pid, PROXY_B).signature
        ),
        "no signature": net.access(pid, PROXY_A, signature=b""),
        "malformed signature": net.access(pid, PROXY_A, signature=os.urandom(64)),
        "garbage of the right length": net.access(pid, PROXY_A, signature=os.urandom(65)),
        "capsules changed": net.access(
            pid, PROXY_A, capsule_hashes=[os.urandom(32)], signature=good.signature
        ),
        "nonce changed": net.access(
            pid,
            PROXY_A,
            capsule_hashes=good.capsule_hashes,
            nonce=good.nonce + 1,
            signature=good.signature,
        ),
    }
    for what, entry in bad.items():
        err = reverts(
            lambda e=entry: pa.log_accesses(pid, h, net.proxies, [good, e]),
            "AuditLog_BadRequestSignature",
            policyId=pid,
            index=1,
        )
        assert err, what
    # A signature for another grant of the same grantee does not carry over either.
    other, _ = _grant(net)
    moved = net.access(other, PROXY_A)
    reverts(
        lambda: pa.log_accesses(pid, h, net.proxies, [moved]),
        "AuditLog_BadRequestSignature",
        policyId=pid,
        index=0,
    )
    pa.log_accesses(pid, h, net.proxies, [good])
