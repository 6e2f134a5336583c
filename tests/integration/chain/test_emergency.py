"""Emergency (break-glass) access at the contract level, issue 15: the registry's EMERGENCY
capability, opt-in, declaration, time box, cool-down, co-signature, the proxies' serve log,
early end and the regulator's review; every abuse case reverts with its custom error."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account

from emrshare.chain import (
    Action,
    CapabilitiesChanged,
    Capability,
    Contracts,
    EmergencyAccessLogged,
    EmergencyDeclared,
    EmergencyOptInParams,
    EmergencyPolicyCreated,
    EmergencyReview,
    EmergencyReviewed,
    EmergencyStatus,
    ProposalCreated,
    Role,
    deploy_contracts,
)
from emrshare.errors import EmergencyRefused
from emrshare.proxy.emergency import EmergencyRequest
from emrshare.types import CategoryTag

from .conftest import ADMINS, HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXIES, Net, reverts

pytestmark = pytest.mark.integration

ALLERGIES, MEDICATIONS, PSYCHIATRY = (CategoryTag(bytes([i]) * 32) for i in (0xA1, 0xA2, 0xA3))
WINDOW = 24 * 3600
COOLDOWN = 3600  # the deployment default
CLINICIAN, SECOND = HOSPITAL, INSURER  # two Providers the consortium gives EMERGENCY


def _keys() -> tuple[bytes, bytes]:
    return os.urandom(33), os.urandom(32)


def _many_tags(n: int) -> list[CategoryTag]:
    return [CategoryTag(i.to_bytes(32, "big")) for i in range(1, n + 1)]


def opt_in_params(net: Net, **over: Any) -> EmergencyOptInParams:
    tags = over.pop("tags", [ALLERGIES, MEDICATIONS])
    fields: dict[str, Any] = {
        "tags": tags,
        "window": WINDOW,
        "proxies": net.proxies,
        "threshold": 2,
        "sealed_kfrags": [os.urandom(300) for _ in range(len(tags) * len(PROXIES))],
        "sealed_maps": [os.urandom(200) for _ in tags],
    }
    fields.update(over)
    return EmergencyOptInParams(**fields)


@pytest.fixture
def em(net: Net) -> Net:
    """Keys published, EMERGENCY for CLINICIAN and SECOND (made a Provider), OUTSIDER
    admitted as Regulator."""
    net.as_(ADMINS[0]).emergency.set_emergency_keys(*_keys())
    net.pass_proposal(Action.CHANGE_ROLE, SECOND, Role.PROVIDER)
    for who in (CLINICIAN, SECOND):
        net.pass_proposal(Action.SET_CAPABILITIES, who, threshold=int(Capability.EMERGENCY))
    net.as_(OUTSIDER).registry.apply(os.urandom(33), os.urandom(32))
    net.pass_proposal(Action.ADMIT, OUTSIDER, Role.REGULATOR)
    return net


def declare(net: Net, who: int = CLINICIAN, patient: int = PATIENT, **kw: Any) -> int:
    r = net.as_(who).emergency.declare(net.addr(patient), 1, os.urandom(120), os.urandom(120), **kw)
    return r.event(EmergencyDeclared).declaration_id


def served(net: Net) -> int:
    """The chain time a proxy judged a declaration at: the latest block's."""
    return net.chain_time()


def opted_in(net: Net) -> Net:
    net.as_(PATIENT).emergency.opt_in(opt_in_params(net))
    return net


# ------------------------------------------------------------ registry capability


def test_capability_is_granted_by_m_of_n_and_read_back(net: Net) -> None:
    reg = net.as_(0).registry
    assert not reg.has_capability(net.addr(HOSPITAL), Capability.EMERGENCY)
    r = reg.propose_capabilities(net.addr(HOSPITAL), Capability.EMERGENCY)
    pid = r.event(ProposalCreated).proposal_id
    net.as_(1).registry.approve(pid)
    ex = net.as_(0).registry.execute(pid)
    ch = ex.event(CapabilitiesChanged)
    assert (ch.old_capabilities, ch.new_capabilities, ch.proposal_id) == (0, 1, pid)
    assert reg.has_capability(net.addr(HOSPITAL), Capability.EMERGENCY)
    assert reg.member(net.addr(HOSPITAL)).capabilities is Capability.EMERGENCY
    assert reg.member(net.addr(HOSPITAL)).role is Role.PROVIDER  # same slot, untouched


def test_capability_mask_outside_the_defined_bits_reverts(net: Net) -> None:
    reverts(
        lambda: net.as_(0).registry.propose(
            Action.SET_CAPABILITIES, net.addr(HOSPITAL), threshold=4
        ),
        "Registry_InvalidCapabilities",
        capabilities=4,  # emergency (1) and pharmacy (2) are the defined bits
    )


# ------------------------------------------------------------------------ keys


def test_keys_are_set_once_by_the_deployer(net: Net) -> None:
    reverts(
        lambda: net.as_(OUTSIDER).emergency.set_emergency_keys(*_keys()),
        "Emergency_InvalidKeys",
        caller=net.addr(OUTSIDER),
    )
    umbral, box = _keys()
    net.as_(0).emergency.set_emergency_keys(umbral, box)
    assert net.as_(0).emergency.emergency_keys() == (umbral, box)
    reverts(lambda: net.as_(0).emergency.set_emergency_keys(*_keys()), "Emergency_KeysAlreadySet")


def test_opt_in_before_the_keys_are_published_reverts(net: Net) -> None:
    reverts(lambda: net.as_(PATIENT).emergency.opt_in(opt_in_params(net)), "Emergency_KeysNotSet")


# ---------------------------------------------------------------------- opt-in


def test_opt_in_records_a_dormant_policy(em: Net) -> None:
    r = em.as_(PATIENT).emergency.opt_in(opt_in_params(em))
    ev = r.event(EmergencyPolicyCreated)
    assert ev.patient == em.addr(PATIENT) and ev.generation == 1 and ev.window == WINDOW
    assert list(ev.tags) == [ALLERGIES, MEDICATIONS] and len(ev.sealed_kfrags) == 6
    pol = em.as_(PATIENT).emergency.policy(em.addr(PATIENT))
    assert pol.standing and pol.threshold == 2
    assert em.as_(PATIENT).emergency.opens_tag(em.addr(PATIENT), ALLERGIES)
    assert not em.as_(PATIENT).emergency.opens_tag(em.addr(PATIENT), PSYCHIATRY)


def test_opt_in_by_someone_else_for_the_patient_reverts(em: Net) -> None:
    # The opt-in is always the caller's own: an outsider (no profile) cannot make one.
    reverts(
        lambda: em.as_(HOSPITAL).emergency.opt_in(opt_in_params(em)),
        "Emergency_NoProfile",
        caller=em.addr(HOSPITAL),
    )


@pytest.mark.parametrize(
    ("over", "error", "args"),
    [
        ({"window": 0}, "Emergency_InvalidWindow", {"window": 0}),
        ({"window": 8 * 86400}, "Emergency_InvalidWindow", {"window": 8 * 86400}),
        ({"tags": []}, "Emergency_InvalidTags", {"count": 0}),
        ({"tags": [ALLERGIES, ALLERGIES]}, "Emergency_InvalidTags", {"count": 2}),
        (
            {"tags": [ALLERGIES, MEDICATIONS, PSYCHIATRY, MEDICATIONS]},
            "Emergency_InvalidTags",
            {"count": 4},
        ),
        ({"tags": [CategoryTag(bytes(32))]}, "Emergency_InvalidTags", {"count": 1}),
        ({"tags": _many_tags(65)}, "Emergency_InvalidTags", {"count": 65}),
        ({"threshold": 0}, "Emergency_InvalidThreshold", {"threshold": 0, "proxyCount": 3}),
        (
            {"sealed_kfrags": [b"k"] * 3},
            "Emergency_KfragCountMismatch",
            {"kfragCount": 3, "expected": 6},
        ),
        (
            {"sealed_maps": [b"m" * 200, b""]},
            "Emergency_SealedTooLarge",
            {"index": 2**256 - 2, "length": 0},
        ),
        (
            {"sealed_maps": [b"m" * 200]},
            "Emergency_MapCountMismatch",
            {"mapCount": 1, "expected": 2},
        ),
    ],
)
def test_bad_opt_in_reverts(
    em: Net, over: dict[str, Any], error: str, args: dict[str, Any]
) -> None:
    reverts(lambda: em.as_(PATIENT).emergency.opt_in(opt_in_params(em, **over)), error, **args)


def test_opt_in_of_every_epoch_of_several_categories_fits_max_tags(em: Net) -> None:
    # 64 tags: e.g. eight categories with eight epochs each.
    assert em.as_(0).emergency.max_tags() == 64
    r = em.as_(PATIENT).emergency.opt_in(opt_in_params(em, tags=_many_tags(64)))
    assert len(r.event(EmergencyPolicyCreated).tags) == 64
    assert em.as_(0).emergency.opens_tag(em.addr(PATIENT), _many_tags(64)[-1])


def test_opt_in_naming_a_non_proxy_reverts(em: Net) -> None:
    bad = [em.addr(HOSPITAL), *em.proxies[1:]]
    reverts(
        lambda: em.as_(PATIENT).emergency.opt_in(opt_in_params(em, proxies=bad)),
        "Emergency_InvalidProxy",
        proxy=em.addr(HOSPITAL),
    )


# ---------------------------------------------------------------- declarations


def test_declaration_by_a_non_emergency_member_reverts(em: Net) -> None:
    opted_in(em)
    err = reverts(
        lambda: declare(em, who=ADMINS[2]), "Emergency_NotCapable", account=em.addr(ADMINS[2])
    )
    assert isinstance(err, EmergencyRefused) and "ask the consortium admins" in str(err)


@pytest.mark.parametrize("who", ["proxy", "insurer"])
def test_declaration_by_a_capable_member_who_is_not_a_provider_reverts(em: Net, who: str) -> None:
    # A proxy operator holding the capability must not declare and then serve itself.
    opted_in(em)
    account = PROXIES[0] if who == "proxy" else SECOND
    if who == "insurer":
        em.pass_proposal(Action.CHANGE_ROLE, SECOND, Role.INSURER)
    em.pass_proposal(Action.SET_CAPABILITIES, account, threshold=int(Capability.EMERGENCY))
    assert em.as_(0).registry.has_capability(em.addr(account), Capability.EMERGENCY)
    err = reverts(
        lambda: declare(em, who=account), "Emergency_NotProvider", account=em.addr(account)
    )
    assert isinstance(err, EmergencyRefused)


def test_declaration_by_a_member_whose_capability_was_withdrawn_reverts(em: Net) -> None:
    opted_in(em)
    em.pass_proposal(Action.SET_CAPABILITIES, CLINICIAN, threshold=0)
    reverts(lambda: declare(em), "Emergency_NotCapable", account=em.addr(CLINICIAN))


def test_declaration_by_a_removed_member_reverts(em: Net) -> None:
    opted_in(em)
    em.pass_proposal(Action.REMOVE, CLINICIAN)
    reverts(lambda: declare(em), "Emergency_NotCapable", account=em.addr(CLINICIAN))


def test_declaration_for_a_patient_who_did_not_opt_in_reverts(em: Net) -> None:
    err = reverts(lambda: declare(em), "Emergency_NotOptedIn", patient=em.addr(PATIENT))
    assert isinstance(err, EmergencyRefused)


def test_declaration_after_the_patient_withdrew_reverts(em: Net) -> None:
    opted_in(em).as_(PATIENT).emergency.withdraw()
    reverts(lambda: declare(em), "Emergency_NotOptedIn", patient=em.addr(PATIENT))


def test_second_declaration_within_the_cool_down_reverts(em: Net) -> None:
    opted_in(em)
    first = declare(em)
    at = em.as_(0).emergency.declaration(first).declared_at
    err = reverts(
        lambda: declare(em),
        "Emergency_CoolDown",
        clinician=em.addr(CLINICIAN),
        availableAt=at + COOLDOWN,
    )
    assert isinstance(err, EmergencyRefused)
    declare(em, who=SECOND)  # another clinician is not held back
    em.advance_time(COOLDOWN)
    assert declare(em) == first + 2


def test_declaration_is_active_for_the_patients_window(em: Net) -> None:
    opted_in(em)
    did = declare(em)
    e = em.as_(0).emergency
    d = e.declaration(did)
    assert d.patient == em.addr(PATIENT) and d.clinician == em.addr(CLINICIAN)
    assert d.ends_at == d.declared_at + WINDOW and d.review is EmergencyReview.PENDING
    assert e.status(did) is EmergencyStatus.ACTIVE
    em.advance_time(WINDOW)
    assert e.status(did) is EmergencyStatus.EXPIRED


def test_declared_event_carries_purpose_of_use_etreat(em: Net) -> None:
    opted_in(em)
    r = em.as_(CLINICIAN).emergency.declare(em.addr(PATIENT), 7, b"p" * 80, b"r" * 80)
    ev = r.event(EmergencyDeclared)
    assert ev.purpose_of_use.rstrip(b"\0") == b"ETREAT" and ev.reason_code == 7
    assert (ev.sealed_for_patient, ev.sealed_for_regulator) == (b"p" * 80, b"r" * 80)


def test_declaration_with_an_empty_sealed_justification_reverts(em: Net) -> None:
    opted_in(em)
    reverts(
        lambda: em.as_(CLINICIAN).emergency.declare(em.addr(PATIENT), 1, b"", b"r"),
        "Emergency_SealedTooLarge",
        index=0,
        length=0,
    )


# ------------------------------------------------------------------ co-signature


def _cosigned(net: Net, cooldown: int = COOLDOWN) -> Contracts:
    """A second Emergency contract with ``cosignRequired``, keys set, the patient opted in."""
    dep = deploy_contracts(
        net.w3,
        net.keys[0],
        names=["Emergency"],
        existing=dict(net.deployment.addresses),
        emergency_cosign_required=True,
        emergency_cooldown=cooldown,
    )
    addresses = {**net.deployment.addresses, **dep.addresses}
    from dataclasses import replace

    net2 = Net(net.w3, net.node, replace(net.deployment, addresses=addresses), net.keys)
    net2.as_(0).emergency.set_emergency_keys(*_keys())
    net2.as_(PATIENT).emergency.opt_in(opt_in_params(net2))
    net.__dict__["cosigned"] = net2
    return net2.as_(CLINICIAN)


def _cosign(net: Net, contracts: Contracts, signer: int, deadline: int) -> bytes:
    digest = contracts.emergency.hash_cosign(net.addr(CLINICIAN), net.addr(PATIENT), 1, deadline)
    return bytes(Account.unsafe_sign_hash(digest, net.keys[signer]).signature)


def test_cosign_required_declaration_without_cosigner_reverts(em: Net) -> None:
    c = _cosigned(em)
    reverts(
        lambda: c.emergency.declare(em.addr(PATIENT), 1, b"p", b"r"),
        "Emergency_CosignRequired",
        clinician=em.addr(CLINICIAN),
    )


def test_cosigned_declaration_by_another_emergency_member_passes(em: Net) -> None:
    c = _cosigned(em)
    deadline = em.chain_time() + 600
    sig = _cosign(em, c, SECOND, deadline)
    r = c.emergency.declare(
        em.addr(PATIENT),
        1,
        b"p",
        b"r",
        cosigner=em.addr(SECOND),
        cosign_deadline=deadline,
        cosignature=sig,
    )
    assert r.event(EmergencyDeclared).cosigner == em.addr(SECOND)


def _declare_cosigned(net: Net, c: Contracts, deadline: int, sig: bytes) -> Any:
    return c.emergency.declare(
        net.addr(PATIENT),
        1,
        b"p",
        b"r",
        cosigner=net.addr(SECOND),
        cosign_deadline=deadline,
        cosignature=sig,
    )


def test_cosignature_with_a_far_deadline_reverts(em: Net) -> None:
    # An unbounded deadline made a co-signature a standing permission.
    c = _cosigned(em)
    deadline = em.chain_time() + 16 * 60
    sig = _cosign(em, c, SECOND, deadline)
    reverts(
        lambda: _declare_cosigned(em, c, deadline, sig),
        "Emergency_CosignDeadlineTooFar",
        deadline=deadline,
        latest=lambda t: deadline - 60 <= t < deadline,
    )
    assert c.emergency.declaration_count() == 0


def test_cosignature_replayed_for_a_second_declaration_reverts(em: Net) -> None:
    # Reused within its deadline, one co-signature backed several declarations (with a
    # cool-down shorter than the deadline, or none).
    c = _cosigned(em, cooldown=0)
    deadline = em.chain_time() + 600
    sig = _cosign(em, c, SECOND, deadline)
    _declare_cosigned(em, c, deadline, sig)
    reverts(
        lambda: _declare_cosigned(em, c, deadline, sig),
        "Emergency_CosignatureUsed",
        cosigner=em.addr(SECOND),
    )
    assert c.emergency.declaration_count() == 1
    # A fresh co-signature (another deadline) backs the next declaration.
    sig2 = _cosign(em, c, SECOND, deadline + 1)
    _declare_cosigned(em, c, deadline + 1, sig2)
    assert c.emergency.declaration_count() == 2


@pytest.mark.parametrize("case", ["forged", "self", "not_capable", "late"])
def test_bad_cosignature_reverts(em: Net, case: str) -> None:
    c = _cosigned(em)
    deadline = em.chain_time() + (-10 if case == "late" else 600)
    signer = {"forged": OUTSIDER, "self": CLINICIAN, "not_capable": ADMINS[2]}.get(case, SECOND)
    claimed = {"self": CLINICIAN, "not_capable": ADMINS[2]}.get(case, SECOND)
    sig = _cosign(em, c, signer, deadline)
    reverts(
        lambda: c.emergency.declare(
            em.addr(PATIENT),
            1,
            b"p",
            b"r",
            cosigner=em.addr(claimed),
            cosign_deadline=deadline,
            cosignature=sig,
        ),
        "Emergency_BadCosignature",
        cosigner=em.addr(claimed),
    )


# ------------------------------------------------------------------- serve log


def test_policy_proxy_logs_a_serve_of_an_opted_in_category(em: Net) -> None:
    did = declare(opted_in(em))
    r = em.as_(PROXIES[0]).emergency.log_access(
        did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=served(em)
    )
    assert r.events[0].proxy == em.addr(PROXIES[0])  # type: ignore[attr-defined]


def test_serve_log_dated_after_the_time_box_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    d = em.as_(0).emergency.declaration(did)
    em.advance_time(WINDOW + 5)
    err = reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=d.ends_at
        ),
        "Emergency_ServedOutsideDeclaration",
        declarationId=did,
        servedAt=d.ends_at,
        **{"from": d.declared_at},
        until=d.ends_at,
    )
    assert isinstance(err, EmergencyRefused)


def test_serve_judged_inside_the_time_box_is_logged_after_it(em: Net) -> None:
    did = declare(opted_in(em))
    d = em.as_(0).emergency.declaration(did)
    em.advance_time(WINDOW + 5)
    assert em.as_(0).emergency.status(did) is EmergencyStatus.EXPIRED
    r = em.as_(PROXIES[0]).emergency.log_access(
        did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=d.ends_at - 1
    )
    assert r.event(EmergencyAccessLogged).declaration_id == did


def test_serve_log_dated_before_the_declaration_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    d = em.as_(0).emergency.declaration(did)
    reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=d.declared_at - 1
        ),
        "Emergency_ServedOutsideDeclaration",
        declarationId=did,
        servedAt=d.declared_at - 1,
        **{"from": d.declared_at},
        until=d.ends_at,
    )


def test_serve_log_dated_in_the_future_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    later = em.chain_time() + 600
    reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=later
        ),
        "Emergency_ServedInFuture",
        declarationId=did,
        servedAt=later,
        chainTime=lambda t: later - 600 <= t < later,
    )


def test_serve_before_the_clinician_ended_its_declaration_is_still_logged(em: Net) -> None:
    # The attack: read, then end() at once, before the proxies' logs are mined.
    did = declare(opted_in(em))
    judged = served(em)
    em.as_(CLINICIAN).emergency.end(did)
    ended = em.as_(0).emergency.declaration(did).ended_at
    assert em.as_(0).emergency.status(did) is EmergencyStatus.ENDED
    r = em.as_(PROXIES[0]).emergency.log_access(
        did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=judged
    )
    assert r.event(EmergencyAccessLogged).declaration_id == did
    # A block judged before the end may share its second; after it, nothing is loggable.
    em.as_(PROXIES[1]).emergency.log_access(
        did, em.proxies, ALLERGIES, [os.urandom(32)], served_at=ended
    )
    em.advance_time(5)
    reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [b"\1" * 32], served_at=ended + 1
        ),
        "Emergency_ServedOutsideDeclaration",
        declarationId=did,
        servedAt=ended + 1,
        **{"from": lambda t: t <= judged},
        until=ended + 1,
    )


def test_serve_log_of_a_category_outside_the_opt_in_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    err = reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, PSYCHIATRY, [os.urandom(32)], served_at=served(em)
        ),
        "Emergency_CategoryNotOptedIn",
        declarationId=did,
        tag=PSYCHIATRY,
    )
    assert isinstance(err, EmergencyRefused)


def test_serve_log_by_a_non_policy_proxy_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    reverts(
        lambda: em.as_(HOSPITAL).emergency.log_access(
            did, em.proxies, ALLERGIES, [b"\1" * 32], served_at=served(em)
        ),
        "Emergency_NotPolicyProxy",
        declarationId=did,
        caller=em.addr(HOSPITAL),
    )


def test_serve_log_without_capsules_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    reverts(
        lambda: em.as_(PROXIES[1]).emergency.log_access(
            did, em.proxies, ALLERGIES, [], served_at=served(em)
        ),
        "Emergency_InvalidCapsules",
        count=0,
    )


def test_serve_log_after_the_patient_withdrew_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    em.as_(PATIENT).emergency.withdraw()
    reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [b"\1" * 32], served_at=served(em)
        ),
        "Emergency_NotActive",
        declarationId=did,
        status=4,
    )


# ------------------------------------------------------------------------- end


def test_patient_ends_a_declaration_early(em: Net) -> None:
    did = declare(opted_in(em))
    em.as_(PATIENT).emergency.end(did)
    assert em.as_(0).emergency.status(did) is EmergencyStatus.ENDED
    d = em.as_(0).emergency.declaration(did)
    em.advance_time(2)
    reverts(
        lambda: em.as_(PROXIES[0]).emergency.log_access(
            did, em.proxies, ALLERGIES, [b"\1" * 32], served_at=served(em)
        ),
        "Emergency_ServedOutsideDeclaration",
        declarationId=did,
        servedAt=lambda t: t > d.ended_at,
        **{"from": d.declared_at},
        until=d.ended_at + 1,
    )
    reverts(
        lambda: em.as_(PATIENT).emergency.end(did),
        "Emergency_NotActive",
        declarationId=did,
        status=2,
    )


def test_end_by_someone_else_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    reverts(
        lambda: em.as_(SECOND).emergency.end(did),
        "Emergency_NotAllowedToEnd",
        declarationId=did,
        caller=em.addr(SECOND),
    )
    reverts(
        lambda: em.as_(SECOND).emergency.end(999), "Emergency_UnknownDeclaration", declarationId=999
    )


# ---------------------------------------------------------------------- review


def test_regulator_reviews_and_disputes(em: Net) -> None:
    did = declare(opted_in(em))
    r = em.as_(OUTSIDER).emergency.review(did, EmergencyReview.DISPUTED)
    assert r.event(EmergencyReviewed).review is EmergencyReview.DISPUTED
    assert em.as_(0).emergency.declaration(did).review is EmergencyReview.DISPUTED


def test_review_by_a_non_regulator_reverts(em: Net) -> None:
    did = declare(opted_in(em))
    reverts(
        lambda: em.as_(CLINICIAN).emergency.review(did, EmergencyReview.REVIEWED),
        "Emergency_NotRegulator",
        account=em.addr(CLINICIAN),
    )
    reverts(
        lambda: em.as_(OUTSIDER).emergency.review(did, EmergencyReview.PENDING),
        "Emergency_InvalidReview",
        review=0,
    )


# ------------------------------------------------------ forwarder: relayed and guardian


def test_relayed_patient_opts_in_and_a_guardian_ends_the_declaration(em: Net) -> None:
    from emrshare.chain import ChainClient, EmergencyEnded, ForwardRequest
    from emrshare.chain.relayed import DirectSubmitter, ForwardingClient

    fwd = em.deployment.address_of("PatientForwarder")
    key = os.urandom(32)
    addr = Account.from_key(key).address
    relayer = DirectSubmitter(ChainClient(em.w3, em.keys[OUTSIDER]), fwd)
    client = ForwardingClient(ChainClient(em.w3), key, addr, fwd, relayer)
    mine = Contracts.from_deployment(client, em.deployment)
    mine.profiles.register(os.urandom(33), os.urandom(32))
    mine.emergency.opt_in(opt_in_params(em))  # unfunded: relayed, acts as the patient
    assert mine.emergency.policy(addr).standing
    guardian = os.urandom(32)
    g_addr = Account.from_key(guardian).address
    mine.forwarder.set_guardian(g_addr, em.chain_time() + 3600, b"\x01" * 64)
    did = em.as_(CLINICIAN).emergency.declare(addr, 1, b"p", b"r").event(EmergencyDeclared)
    data = mine.emergency._encode("end", (did.declaration_id,))
    req = ForwardRequest(
        patient=addr,
        to=mine.emergency.address,
        nonce=em.as_(OUTSIDER).forwarder.nonce(addr),
        deadline=em.chain_time() + 600,
        chain_id=em.w3.eth.chain_id,
        data=data,
    )
    em.as_(OUTSIDER).forwarder.execute(req, req.sign(guardian, fwd))
    assert em.as_(0).emergency.status(did.declaration_id) is EmergencyStatus.ENDED
    (ev,) = em.as_(0).emergency.events(EmergencyEnded, declaration_id=did.declaration_id)
    assert ev.ended_by == addr  # in the patient's name


# --------------------------------------------------------------- proxy requests


def test_emergency_request_digest_equals_the_contracts(net: Net) -> None:
    # The proxy recovers the clinician from the digest it computes itself: it must be the
    # contract's hashEmergencyRequest (domain emrshare-emergency, version 1).
    em = net.as_(0).emergency
    req = EmergencyRequest.new(
        net.addr(PROXIES[0]), 7, ALLERGIES, [os.urandom(32), os.urandom(32)], 12345
    )
    want = em.hash_emergency_request(
        req.proxy, 7, ALLERGIES, list(req.capsule_hashes), req.nonce, 12345
    )
    assert req.digest(net.deployment.chain_id, em.address) == want
    sig = req.sign(net.keys[CLINICIAN], net.deployment.chain_id, em.address)
    assert req.recover(sig, net.deployment.chain_id, em.address) == net.addr(CLINICIAN)
