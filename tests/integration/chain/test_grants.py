"""Grants: create, revoke (stores the block), chain-time expiry, revoke-all, paging, EIP-712."""

from __future__ import annotations

import os

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from emrshare.chain import GrantCreated, GrantRevoked, GrantStatus, TagRevoked, policy_id
from emrshare.chain.ids import proxies_hash
from emrshare.types import CategoryTag

from .conftest import HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, Net, reverts


def test_grant_creates_a_policy_and_event(net: Net) -> None:
    params = net.grant_params()
    r = net.as_(PATIENT).grants.grant(params)
    ev = r.event(GrantCreated)
    pid = policy_id(net.addr(PATIENT), params.nonce)
    assert ev.policy_id == pid
    assert (ev.patient, ev.grantee, ev.tag, ev.epoch, ev.expiry, ev.threshold) == (
        net.addr(PATIENT),
        net.addr(HOSPITAL),
        params.tag,
        0,
        params.expiry,
        2,
    )
    assert ev.proxies == tuple(net.proxies)
    assert ev.sealed_kfrags == tuple(params.sealed_kfrags)
    assert ev.sealed_grantee_map == params.sealed_grantee_map
    g = net.as_(OUTSIDER).grants
    assert g.is_active(pid) and g.status(pid) is GrantStatus.ACTIVE
    pol = g.policy(pid)
    assert (pol.patient, pol.expiry, pol.revoked_at, pol.tag) == (
        net.addr(PATIENT),
        params.expiry,
        0,
        params.tag,
    )
    assert pol.proxies_hash == proxies_hash(net.proxies) == g.proxies_hash(pid)
    found = list(g.events(GrantCreated, grantee=net.addr(HOSPITAL)))
    assert [e.policy_id for e in found] == [pid]


def test_policy_id_cannot_be_reused_or_front_run(net: Net) -> None:
    params = net.grant_params()
    net.as_(PATIENT).grants.grant(params)
    pid = policy_id(net.addr(PATIENT), params.nonce)
    reverts(lambda: net.as_(PATIENT).grants.grant(params), "Grants_PolicyExists", policyId=pid)
    # Someone else using the same nonce gets a different id (derived from msg.sender).
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
    ev = r.event(GrantRevoked)
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
    assert g.status(unknown) is GrantStatus.NONE and not g.is_active(unknown)


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
    ev = pg.revoke_tag(tag).event(TagRevoked)
    assert (ev.patient, ev.tag, ev.generation) == (net.addr(PATIENT), tag, 1)
    assert pg.generation(net.addr(PATIENT), tag) == 1
    assert [pg.status(x) for x in (a, b, c)] == [
        GrantStatus.TAG_REVOKED,
        GrantStatus.TAG_REVOKED,
        GrantStatus.ACTIVE,
    ]
    d = pg.grant(net.grant_params(tag=tag)).event(GrantCreated)
    assert d.generation == 1 and pg.is_active(d.policy_id)
    # Another patient's tag with the same bytes is untouched.
    e = net.as_(INSURER).grants.grant(net.grant_params(tag=tag)).event(GrantCreated).policy_id
    assert pg.is_active(e)


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
