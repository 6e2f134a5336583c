"""ConsortiumRegistry: M-of-N admission, role change, removal, threshold, own keys, proxy
reports, suspension and reinstatement."""

from __future__ import annotations

import os

from eth_utils.crypto import keccak

from emrshare.chain import (
    Action,
    MemberAdmitted,
    MemberReinstated,
    MemberRemoved,
    MemberRoleChanged,
    MemberSuspended,
    ProposalApproved,
    ProposalCreated,
    ProposalExecuted,
    ProxyReported,
    Role,
    ThresholdChanged,
)

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, PROXY_B, Net, reverts


def _propose(net: Net, admin: int, action: Action, target: int, role: Role = Role.NONE) -> int:
    r = net.as_(admin).registry.propose(action, net.addr(target), role)
    return r.event(ProposalCreated).proposal_id


def test_consortium_state_after_setup(net: Net) -> None:
    reg = net.as_(OUTSIDER).registry
    assert reg.admin_config().admin_count == 3 and reg.admin_config().threshold == 2
    assert reg.role_of(net.addr(HOSPITAL)) is Role.PROVIDER
    assert [m.account for m in reg.proxies()] == net.proxies
    assert reg.member(net.addr(PROXY_A)).endpoint == f"http://p{PROXY_A}"
    assert reg.member_count() == 8
    assert reg.has_role(net.addr(0), Role.ADMIN) and not reg.has_role(net.addr(OUTSIDER), Role.NONE)


def test_admission_needs_m_of_n_approvals(net: Net) -> None:
    umbral, box = os.urandom(33), os.urandom(32)
    net.as_(OUTSIDER).registry.apply(umbral, box)
    pid = _propose(net, 0, Action.ADMIT, OUTSIDER, Role.PHARMACY)
    reverts(
        lambda: net.as_(0).registry.execute(pid),
        "Registry_NotEnoughApprovals",
        proposalId=pid,
        approvals=1,
        threshold=2,
    )
    approved = net.as_(2).registry.approve(pid).event(ProposalApproved)
    assert approved.approvals == 2 and approved.admin == net.addr(2)
    r = net.as_(1).registry.execute(pid)
    assert r.event(MemberAdmitted).role is Role.PHARMACY
    assert r.event(ProposalExecuted).proposal_id == pid
    m = net.as_(0).registry.member(net.addr(OUTSIDER))
    assert (m.role, m.umbral_key, m.box_key) == (Role.PHARMACY, umbral, box)
    assert net.as_(0).registry.proposal(pid).executed


def test_only_admins_propose_approve_execute(net: Net) -> None:
    reg = net.as_(HOSPITAL).registry
    out = net.addr(HOSPITAL)
    reverts(
        lambda: reg.propose(Action.SET_THRESHOLD, out, Role.NONE, 1),
        "Registry_NotAdmin",
        account=out,
    )
    pid = net.as_(0).registry.propose(Action.SET_THRESHOLD, out, Role.NONE, 1)
    pid_n = pid.event(ProposalCreated).proposal_id
    reverts(lambda: reg.approve(pid_n), "Registry_NotAdmin", account=out)
    reverts(lambda: reg.execute(pid_n), "Registry_NotAdmin", account=out)


def test_approve_twice_execute_twice_unknown(net: Net) -> None:
    pid = net.as_(0).registry.propose(Action.SET_THRESHOLD, net.addr(0), Role.NONE, 3)
    n = pid.event(ProposalCreated).proposal_id
    reverts(
        lambda: net.as_(0).registry.approve(n),
        "Registry_AlreadyApproved",
        proposalId=n,
        admin=net.addr(0),
    )
    net.as_(1).registry.approve(n)
    assert net.as_(1).registry.execute(n).event(ThresholdChanged).new_threshold == 3
    reverts(lambda: net.as_(2).registry.approve(n), "Registry_AlreadyExecuted", proposalId=n)
    reverts(lambda: net.as_(2).registry.execute(n), "Registry_AlreadyExecuted", proposalId=n)
    reverts(lambda: net.as_(2).registry.approve(99), "Registry_UnknownProposal", proposalId=99)
    reverts(lambda: net.as_(2).registry.proposal(99), "Registry_UnknownProposal", proposalId=99)


def test_admission_rules(net: Net) -> None:
    out, hosp = net.addr(OUTSIDER), net.addr(HOSPITAL)
    reg = net.as_(0).registry
    reverts(
        lambda: reg.propose(Action.ADMIT, out, Role.PROVIDER), "Registry_NotApplied", account=out
    )
    reverts(
        lambda: reg.propose(Action.ADMIT, hosp, Role.PROVIDER),
        "Registry_AlreadyMember",
        account=hosp,
    )
    net.as_(OUTSIDER).registry.apply(os.urandom(33), os.urandom(32))
    reverts(lambda: reg.propose(Action.ADMIT, out, Role.NONE), "Registry_InvalidRole", role=0)
    reverts(
        lambda: reg.propose(Action.ADMIT, out, Role.PROXY), "Registry_InvalidEndpoint", account=out
    )
    reverts(
        lambda: net.as_(HOSPITAL).registry.apply(os.urandom(33), os.urandom(32)),
        "Registry_AlreadyMember",
        account=hosp,
    )


def test_keys_are_checked_and_rotated_by_their_owner(net: Net) -> None:
    reverts(
        lambda: net.as_(OUTSIDER).registry.apply(os.urandom(32), os.urandom(32)),
        "Registry_InvalidKey",
        length=32,
    )
    reverts(
        lambda: net.as_(OUTSIDER).registry.apply(os.urandom(33), bytes(32)),
        "Registry_InvalidKey",
        length=0,
    )
    out = net.addr(OUTSIDER)
    reverts(
        lambda: net.as_(OUTSIDER).registry.rotate_keys(os.urandom(33), os.urandom(32)),
        "Registry_NotMember",
        account=out,
    )
    reverts(lambda: net.as_(OUTSIDER).registry.member(out), "Registry_NotMember", account=out)
    umbral, box = os.urandom(33), os.urandom(32)
    net.as_(HOSPITAL).registry.rotate_keys(umbral, box)
    m = net.as_(OUTSIDER).registry.member(net.addr(HOSPITAL))
    assert (m.umbral_key, m.box_key, m.role) == (umbral, box, Role.PROVIDER)


def test_endpoint_only_for_proxies(net: Net) -> None:
    net.as_(PROXY_A).registry.set_endpoint("https://proxy-a.example")
    assert net.as_(0).registry.member(net.addr(PROXY_A)).endpoint == "https://proxy-a.example"
    reverts(
        lambda: net.as_(HOSPITAL).registry.set_endpoint("https://x"),
        "Registry_InvalidEndpoint",
        account=net.addr(HOSPITAL),
    )
    reverts(
        lambda: net.as_(PROXY_A).registry.set_endpoint(""),
        "Registry_InvalidEndpoint",
        account=net.addr(PROXY_A),
    )


def test_role_change_and_removal(net: Net) -> None:
    pid = _propose(net, 0, Action.CHANGE_ROLE, INSURER, Role.REGULATOR)
    net.as_(1).registry.approve(pid)
    ev = net.as_(1).registry.execute(pid).event(MemberRoleChanged)
    assert (ev.old_role, ev.new_role) == (Role.INSURER, Role.REGULATOR)
    pid = _propose(net, 0, Action.REMOVE, INSURER)
    net.as_(2).registry.approve(pid)
    assert net.as_(2).registry.execute(pid).event(MemberRemoved).account == net.addr(INSURER)
    assert net.as_(0).registry.role_of(net.addr(INSURER)) is Role.NONE
    out = net.addr(OUTSIDER)
    reverts(lambda: _propose(net, 0, Action.REMOVE, OUTSIDER), "Registry_NotMember", account=out)


def test_threshold_bounds_and_admin_removal_floor(net: Net) -> None:
    reg = net.as_(0).registry
    reverts(
        lambda: reg.propose(Action.SET_THRESHOLD, net.addr(0), Role.NONE, 4),
        "Registry_InvalidThreshold",
        threshold=4,
        adminCount=3,
    )
    reverts(
        lambda: reg.propose(Action.SET_THRESHOLD, net.addr(0), Role.NONE, 0),
        "Registry_InvalidThreshold",
        threshold=0,
        adminCount=3,
    )
    pid = _propose(net, 0, Action.REMOVE, 2)
    net.as_(1).registry.approve(pid)
    net.as_(1).registry.execute(pid)
    assert reg.admin_config().admin_count == 2
    # Two admins, threshold 2: removing another admin would make approval impossible.
    reverts(
        lambda: _propose(net, 0, Action.REMOVE, 1),
        "Registry_InvalidThreshold",
        threshold=2,
        adminCount=1,
    )


def test_approvals_do_not_survive_an_admin_set_change(net: Net) -> None:
    net.as_(OUTSIDER).registry.apply(os.urandom(33), os.urandom(32))
    stale = _propose(net, 2, Action.ADMIT, OUTSIDER, Role.PROVIDER)  # approved by admin 2
    pid = _propose(net, 0, Action.REMOVE, 2)
    net.as_(1).registry.approve(pid)
    net.as_(1).registry.execute(pid)
    reverts(lambda: net.as_(1).registry.approve(stale), "Registry_ProposalStale", proposalId=stale)
    reverts(lambda: net.as_(1).registry.execute(stale), "Registry_ProposalStale", proposalId=stale)


def test_report_suspend_and_reinstate_a_proxy(net: Net) -> None:
    a = net.addr(PROXY_A)
    evidence = b"signed re-encryption served after revocation: " + bytes(range(200))
    r = net.as_(HOSPITAL).registry.report_proxy(a, evidence)
    rep = r.event(ProxyReported)
    assert (rep.report_id, rep.proxy, rep.reporter, rep.evidence_hash, rep.evidence) == (
        0,
        a,
        net.addr(HOSPITAL),
        keccak(evidence),
        evidence,
    )
    reg = net.as_(OUTSIDER).registry
    assert reg.report_count() == 1
    created = net.as_(0).registry.propose(Action.SUSPEND, a, reference=rep.evidence_hash)
    pc = created.event(ProposalCreated)
    assert (pc.action, pc.target, pc.reference) == (Action.SUSPEND, a, keccak(evidence))
    assert reg.proposal(pc.proposal_id).reference == keccak(evidence)
    net.as_(1).registry.approve(pc.proposal_id)
    executed = net.as_(0).registry.execute(pc.proposal_id)
    sus = executed.event(MemberSuspended)
    assert (sus.account, sus.proposal_id) == (a, pc.proposal_id)
    m = reg.member(a)
    assert (m.role, m.suspended_at) == (Role.PROXY, executed.block_number)
    assert reg.is_suspended(a) and reg.suspended_at(a) == executed.block_number
    assert not reg.has_role(a, Role.PROXY) and not reg.is_active_member(a)
    assert reg.role_of(a) is Role.PROXY  # the role is kept, only inactive
    assert reg.has_role(a, Role.PROXY, block=executed.block_number - 1)
    assert a not in [p.account for p in reg.proxies()]
    assert reg.all_have_role(net.proxies, Role.PROXY) == (False, 0)
    # A suspended member cannot report.
    reverts(
        lambda: net.as_(PROXY_A).registry.report_proxy(net.addr(PROXY_B), b"x"),
        "Registry_NotMember",
        account=a,
    )
    reverts(
        lambda: net.as_(0).registry.propose(Action.SUSPEND, a),
        "Registry_AlreadySuspended",
        account=a,
        suspendedAt=executed.block_number,
    )
    pid = net.pass_proposal(Action.REINSTATE, PROXY_A)
    (back,) = list(reg.events(MemberReinstated, account=a))
    assert back.account == a and reg.proposal(pid).reference == bytes(32)
    assert reg.has_role(a, Role.PROXY) and reg.is_active_member(a) and not reg.is_suspended(a)
    assert reg.all_have_role(net.proxies, Role.PROXY) == (True, 3)
    reverts(
        lambda: net.as_(0).registry.propose(Action.REINSTATE, a),
        "Registry_NotSuspended",
        account=a,
    )


def test_suspension_rules(net: Net) -> None:
    reg = net.as_(0).registry
    for who in (HOSPITAL, OUTSIDER, 0):  # a provider, a non-member, an admin
        reverts(
            lambda w=who: reg.propose(Action.SUSPEND, net.addr(w)),
            "Registry_NotProxy",
            account=net.addr(who),
        )
    # Validity is checked again at execution: a proxy suspended meanwhile is not again.
    a = net.addr(PROXY_A)
    first = reg.propose(Action.SUSPEND, a).event(ProposalCreated).proposal_id
    second = reg.propose(Action.SUSPEND, a).event(ProposalCreated).proposal_id
    net.as_(1).registry.approve(first)
    net.as_(1).registry.approve(second)
    at = reg.execute(first).block_number
    reverts(lambda: reg.execute(second), "Registry_AlreadySuspended", account=a, suspendedAt=at)
    with_ref = net.as_(0).registry.propose(Action.SET_THRESHOLD, a, Role.NONE, 1, b"\x01" * 32)
    assert with_ref.event(ProposalCreated).reference == b"\x01" * 32
    # Removing a suspended proxy clears it entirely.
    net.pass_proposal(Action.REMOVE, PROXY_A)
    assert net.as_(0).registry.role_of(a) is Role.NONE


def test_report_rules(net: Net) -> None:
    out = net.addr(OUTSIDER)
    reverts(
        lambda: net.as_(OUTSIDER).registry.report_proxy(net.addr(PROXY_A), b"e"),
        "Registry_NotMember",
        account=out,
    )
    reverts(
        lambda: net.as_(PATIENT).registry.report_proxy(net.addr(PROXY_A), b"e"),
        "Registry_NotMember",
        account=net.addr(PATIENT),
    )
    hosp = net.as_(HOSPITAL).registry
    reverts(
        lambda: hosp.report_proxy(net.addr(INSURER), b"e"),
        "Registry_NotProxy",
        account=net.addr(INSURER),
    )
    for size in (0, 16385):
        reverts(
            lambda n=size: hosp.report_proxy(net.addr(PROXY_A), bytes(n)),
            "Registry_InvalidEvidence",
            length=size,
        )
    hosp.report_proxy(net.addr(PROXY_A), bytes(16384))
    assert hosp.report_count() == 1


def test_all_have_role_in_one_call(net: Net) -> None:
    reg = net.as_(OUTSIDER).registry
    assert reg.all_have_role([], Role.PROXY) == (True, 0)
    assert reg.all_have_role(net.proxies, Role.PROXY) == (True, 3)
    mixed = [net.proxies[0], net.addr(HOSPITAL), net.proxies[1]]
    assert reg.all_have_role(mixed, Role.PROXY) == (False, 1)
    assert reg.all_have_role([net.addr(HOSPITAL)], Role.PROVIDER) == (True, 1)
    assert reg.is_active_member(net.addr(HOSPITAL)) and not reg.is_active_member(net.addr(OUTSIDER))
