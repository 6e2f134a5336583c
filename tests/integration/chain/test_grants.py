"""Grants: create (members, proxies, sizes checked), revoke (stores the block), chain-time
expiry, revoke-all with the block it ended, the active window, paging, EIP-712."""

from __future__ import annotations

import os

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from emrshare.chain import (
    Action,
    ActiveWindow,
    GrantCreated,
    GrantRevokedEvent,
    GrantScoped,
    GrantStatus,
    TagRevoked,
    binding_for,
    policy_id,
    scope_hash,
)
from emrshare.types import CategoryTag, PolicyId

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, PROXY_B, Net, reverts

MAX = 2**256 - 1  # the index Grants_SealedTooLarge gives the sealed grantee map


def test_grant_creates_a_policy_and_event(net: Net) -> None:
    params = net.grant_params()
    r = net.as_(PATIENT).grants.grant(params)
    ev = r.event(GrantCreated)
    pid = policy_id(net.addr(PATIENT), params.nonce)
    assert ev.policy_id == pid
    assert (ev.patient, ev.grantee, ev.tag, ev.expiry, ev.generation, ev.threshold) == (
        net.addr(PATIENT),
        net.addr(HOSPITAL),
        params.tag,
        params.expiry,
        0,
        2,
    )
    assert ev.proxies == tuple(net.proxies)
    assert ev.sealed_kfrags == tuple(params.sealed_kfrags)
    assert ev.sealed_grantee_map == params.sealed_grantee_map
    g = net.as_(OUTSIDER).grants
    assert g.is_active(pid) and g.status(pid) is GrantStatus.ACTIVE
    pol = g.policy(pid)
    assert (pol.patient, pol.expiry, pol.generation, pol.revoked_at, pol.tag, pol.created_at) == (
        net.addr(PATIENT),
        params.expiry,
        0,
        0,
        params.tag,
        r.block_number,
    )
    binding = binding_for(net.addr(HOSPITAL), net.proxies)
    assert len(binding) == 27
    assert pol.binding == binding == g.binding(pid)
    assert g.binding_for(net.addr(HOSPITAL), net.proxies) == binding
    assert g.binding_for(net.addr(INSURER), net.proxies) == binding_for(
        net.addr(INSURER), net.proxies
    )
    assert g.binding(PolicyId(os.urandom(32))) == bytes(27)
    assert g.active_window(pid) == ActiveWindow(
        net.addr(PATIENT), r.block_number, 0, params.expiry, binding
    )
    found = list(g.events(GrantCreated, grantee=net.addr(HOSPITAL)))
    assert [e.policy_id for e in found] == [pid]


def test_a_grant_scoped_to_records_lists_them_and_stores_their_hash(net: Net) -> None:
    ids = sorted(os.urandom(32) for _ in range(3))
    r = net.as_(PATIENT).grants.grant(net.grant_params(records=ids))
    ev, scoped = r.event(GrantCreated), r.event(GrantScoped)
    g = net.as_(OUTSIDER).grants
    assert (scoped.policy_id, scoped.patient, scoped.grantee) == (
        ev.policy_id, ev.patient, ev.grantee
    )  # fmt: skip
    assert scoped.records == tuple(ids)
    assert g.scope(ev.policy_id) == scope_hash(ids) == keccak(b"".join(ids))
    # The binding's listing joins them: the GrantCreated carries its records.
    (listed,) = g.events(GrantCreated, policy_id=ev.policy_id, to_block=r.block_number)
    assert listed.records == tuple(ids)
    whole_r = net.as_(PATIENT).grants.grant(net.grant_params())
    whole = whole_r.event(GrantCreated)
    assert not any(isinstance(e, GrantScoped) for e in whole_r.events)
    assert whole.records == () and g.scope(whole.policy_id) == bytes(32)
    assert g.scope(PolicyId(os.urandom(32))) == bytes(32)


def test_attack_scope_out_of_order_repeated_or_too_long_refused(net: Net) -> None:
    """GrantParams refuses such a scope before encoding; the contract refuses it too (the
    proxies' membership check relies on one canonical hash per set of records)."""
    g = net.as_(PATIENT).grants
    a, b = sorted(os.urandom(32) for _ in range(2))
    too_many = sorted(os.urandom(32) for _ in range(257))
    for records, index in (([b, a], 1), ([a, a], 1), ([a, b, b], 2), (too_many, 256)):
        raw = (*net.grant_params().as_abi()[:8], records)
        reverts(lambda r=raw: g._send("grant", r), "Grants_InvalidScope", index=index,
                count=len(records))  # fmt: skip


def test_policy_id_cannot_be_reused_or_front_run(net: Net) -> None:
    params = net.grant_params()
    net.as_(PATIENT).grants.grant(params)
    pid = policy_id(net.addr(PATIENT), params.nonce)
    reverts(lambda: net.as_(PATIENT).grants.grant(params), "Grants_PolicyExists", policyId=pid)
    # Someone else using the same nonce gets a different id (derived from msg.sender).
    net.as_(INSURER).profiles.register(os.urandom(33), os.urandom(32))
    other = net.as_(INSURER).grants.grant(net.grant_params(grantee=HOSPITAL, nonce=params.nonce))
    assert other.event(GrantCreated).policy_id == policy_id(net.addr(INSURER), params.nonce)


def test_grant_parameter_rules(net: Net) -> None:
    g = net.as_(PATIENT).grants
    p, zero = net.addr(PATIENT), "0x" + "00" * 20
    reverts(lambda: g.grant(net.grant_params(grantee=PATIENT)), "Grants_InvalidGrantee", grantee=p)
    reverts(
        lambda: g.grant(net.grant_params(grantee=zero)),
        "Grants_InvalidGrantee",
        grantee=zero,
    )
    past = net.chain_time() - 1
    reverts(
        lambda: g.grant(net.grant_params(expiry=past)),
        "Grants_ExpiryInPast",
        expiry=past,
        chainTime=lambda t: t >= past,
    )
    reverts(
        lambda: g.grant(net.grant_params(threshold=0)),
        "Grants_InvalidThreshold",
        threshold=0,
        proxyCount=3,
    )
    reverts(
        lambda: g.grant(net.grant_params(threshold=4)),
        "Grants_InvalidThreshold",
        threshold=4,
        proxyCount=3,
    )
    reverts(
        lambda: g.grant(net.grant_params(proxies=[], sealed_kfrags=[], threshold=1)),
        "Grants_InvalidThreshold",
        threshold=1,
        proxyCount=0,
    )
    reverts(
        lambda: g.grant(net.grant_params(sealed_kfrags=[b"k", b"k"])),
        "Grants_KfragCountMismatch",
        kfragCount=2,
        proxyCount=3,
    )
    a = net.addr(PROXY_A)
    reverts(
        lambda: g.grant(net.grant_params(proxies=[a, net.proxies[1], a])),
        "Grants_InvalidProxy",
        proxy=a,
    )
    reverts(
        lambda: g.grant(net.grant_params(proxies=[net.proxies[0], zero, net.proxies[2]])),
        "Grants_InvalidProxy",
        proxy=zero,
    )
    many = ["0x" + f"{i + 1:040x}" for i in range(33)]
    reverts(
        lambda: g.grant(net.grant_params(proxies=many, sealed_kfrags=[b"k"] * 33)),
        "Grants_TooManyProxies",
        proxyCount=33,
        max=32,
    )
    out = net.addr(OUTSIDER)
    reverts(lambda: g.grant(net.grant_params(grantee=OUTSIDER)), "Grants_NotMember", account=out)


def test_attack_grant_to_non_proxy_refused(net: Net) -> None:
    g = net.as_(PATIENT).grants
    for who in (OUTSIDER, HOSPITAL):  # not a member; a member without the Proxy role
        addr = net.addr(who)
        reverts(
            lambda a=addr: g.grant(net.grant_params(proxies=[*net.proxies[:2], a])),
            "Grants_NotProxy",
            proxy=addr,
        )
    # A suspended proxy is refused too, from the block of its suspension.
    net.pass_proposal(Action.SUSPEND, PROXY_B)
    reverts(lambda: g.grant(net.grant_params()), "Grants_NotProxy", proxy=net.addr(PROXY_B))
    net.pass_proposal(Action.REINSTATE, PROXY_B)
    g.grant(net.grant_params())


def test_attack_grant_without_profile_refused(net: Net) -> None:
    # A member with no patient profile (no keys to check kfrags against) cannot grant.
    ins = net.as_(INSURER)
    reverts(
        lambda: ins.grants.grant(net.grant_params()), "Grants_NoProfile", caller=net.addr(INSURER)
    )
    reverts(
        lambda: net.as_(OUTSIDER).grants.grant(net.grant_params()),
        "Grants_NoProfile",
        caller=net.addr(OUTSIDER),
    )
    ins.profiles.register(os.urandom(33), os.urandom(32))
    assert ins.profiles.is_registered(net.addr(INSURER))
    ins.grants.grant(net.grant_params())


def test_attack_oversized_sealed_kfrag_refused(net: Net) -> None:
    g = net.as_(PATIENT).grants
    ok = [os.urandom(1024) for _ in range(3)]
    for i, size in ((0, 1025), (2, 100_000), (1, 0)):
        kfrags = list(ok)
        kfrags[i] = os.urandom(size)
        reverts(
            lambda k=kfrags: g.grant(net.grant_params(sealed_kfrags=k)),
            "Grants_SealedTooLarge",
            index=i,
            length=size,
        )
    for size in (2049, 0):
        reverts(
            lambda s=size: g.grant(net.grant_params(sealed_grantee_map=os.urandom(s))),
            "Grants_SealedTooLarge",
            index=MAX,
            length=size,
        )
    g.grant(net.grant_params(sealed_kfrags=ok, sealed_grantee_map=os.urandom(2048)))


def test_revoke_stores_the_block(net: Net) -> None:
    params = net.grant_params()
    pid = net.as_(PATIENT).grants.grant(params).event(GrantCreated).policy_id
    reverts(
        lambda: net.as_(HOSPITAL).grants.revoke(pid),
        "Grants_NotPatient",
        policyId=pid,
        caller=net.addr(HOSPITAL),
    )
    r = net.as_(PATIENT).grants.revoke(pid)
    ev = r.event(GrantRevokedEvent)
    assert (ev.policy_id, ev.patient, ev.revoked_at) == (pid, net.addr(PATIENT), r.block_number)
    g = net.as_(OUTSIDER).grants
    assert g.policy(pid).revoked_at == r.block_number
    assert not g.is_active(pid) and g.status(pid) is GrantStatus.REVOKED
    reverts(
        lambda: net.as_(PATIENT).grants.revoke(pid),
        "Grants_AlreadyRevoked",
        policyId=pid,
        revokedAt=r.block_number,
    )
    unknown = os.urandom(32)
    reverts(
        lambda: net.as_(PATIENT).grants.revoke(unknown), "Grants_UnknownPolicy", policyId=unknown
    )
    reverts(lambda: g.policy(unknown), "Grants_UnknownPolicy", policyId=unknown)
    reverts(lambda: g.active_window(unknown), "Grants_UnknownPolicy", policyId=unknown)
    assert g.status(unknown) is GrantStatus.NONE and not g.is_active(unknown)
    assert g.active_window(pid).end_block == r.block_number


def test_reads_at_a_block(net: Net) -> None:
    pg = net.as_(PATIENT).grants
    created = pg.grant(net.grant_params())
    pid = created.event(GrantCreated).policy_id
    revoked = pg.revoke(pid).block_number
    g = net.as_(OUTSIDER).grants
    assert g.status(pid, block=created.block_number) is GrantStatus.ACTIVE
    assert g.status(pid, block=revoked - 1) is GrantStatus.ACTIVE
    assert g.status(pid, block=revoked) is GrantStatus.REVOKED
    assert g.status(pid, block=created.block_number - 1) is GrantStatus.NONE
    assert g.policy(pid, block=revoked - 1).revoked_at == 0
    assert g.is_active(pid, block=created.block_number) and not g.is_active(pid)


def test_expiry_is_judged_on_chain_time(net: Net) -> None:
    params = net.grant_params(expiry=net.chain_time() + 1000)
    pid = net.as_(PATIENT).grants.grant(params).event(GrantCreated).policy_id
    g = net.as_(OUTSIDER).grants
    assert g.is_active(pid)
    net.advance_time(2000)
    assert not g.is_active(pid) and g.status(pid) is GrantStatus.EXPIRED


def test_revoke_tag_invalidates_every_grant_of_the_tag_in_one_step(net: Net) -> None:
    tag, other = CategoryTag(b"\x44" * 32), CategoryTag(b"\x55" * 32)
    pg = net.as_(PATIENT).grants
    a = pg.grant(net.grant_params(tag=tag)).event(GrantCreated).policy_id
    b = pg.grant(net.grant_params(tag=tag, grantee=INSURER)).event(GrantCreated).policy_id
    c = pg.grant(net.grant_params(tag=other)).event(GrantCreated).policy_id
    assert pg.generation_ended_at(net.addr(PATIENT), tag, 0) == 0
    r = pg.revoke_tag(tag)
    ev = r.event(TagRevoked)
    assert (ev.patient, ev.tag, ev.generation) == (net.addr(PATIENT), tag, 1)
    assert pg.generation(net.addr(PATIENT), tag) == 1
    assert pg.generation_ended_at(net.addr(PATIENT), tag, 0) == r.block_number
    assert pg.generation_ended_at(net.addr(PATIENT), tag, 1) == 0
    assert pg.active_window(a).end_block == pg.active_window(b).end_block == r.block_number
    assert pg.active_window(c).end_block == 0
    assert [pg.status(x) for x in (a, b, c)] == [
        GrantStatus.TAG_REVOKED,
        GrantStatus.TAG_REVOKED,
        GrantStatus.ACTIVE,
    ]
    d = pg.grant(net.grant_params(tag=tag)).event(GrantCreated)
    assert d.generation == 1 and pg.is_active(d.policy_id)
    # Another patient's tag with the same bytes is untouched.
    net.as_(INSURER).profiles.register(os.urandom(33), os.urandom(32))
    e = net.as_(INSURER).grants.grant(net.grant_params(tag=tag)).event(GrantCreated).policy_id
    assert pg.is_active(e)
    # Revoked one by one after the tag: the window still ends at the earlier block.
    pg.revoke(a)
    assert pg.active_window(a).end_block == r.block_number


def test_policies_are_listed_with_paging(net: Net) -> None:
    pg = net.as_(PATIENT).grants
    ids = [pg.grant(net.grant_params()).event(GrantCreated).policy_id for _ in range(5)]
    p = net.addr(PATIENT)
    assert pg.policy_count(p) == 5
    assert pg.policies(p, 0, 2) == ids[:2]
    assert pg.policies(p, 2, 2) == ids[2:4]
    assert pg.policies(p, 4, 10) == ids[4:]
    assert pg.policies(p, 9, 10) == []


@pytest.mark.parametrize("n_capsules", [0, 3])
def test_proxy_request_digest_matches_eip712(net: Net, n_capsules: int) -> None:
    g = net.as_(OUTSIDER).grants
    caps = [keccak(os.urandom(8)) for _ in range(n_capsules)]
    pid = os.urandom(32)
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "ProxyRequest": [
                {"name": "proxy", "type": "address"},
                {"name": "policyId", "type": "bytes32"},
                {"name": "capsuleHashes", "type": "bytes32[]"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "ProxyRequest",
        "domain": {
            "name": "emrshare-proxy",
            "version": "1",
            "chainId": net.w3.eth.chain_id,
            "verifyingContract": g.address,
        },
        "message": {
            "proxy": net.addr(PROXY_A),
            "policyId": pid,
            "capsuleHashes": caps,
            "nonce": 7,
            "deadline": 1234,
        },
    }
    msg = encode_typed_data(full_message=typed)
    expected = keccak(b"\x19\x01" + msg.header + msg.body)
    assert g.hash_proxy_request(net.addr(PROXY_A), pid, caps, 7, 1234) == expected
