"""Every proxy enforces the chain: revocation from the revoke block on, expiry by chain
time, and each refusal reason for a bad request."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import umbral_pre

from emrshare.crypto.grants import Grant
from emrshare.errors import AccessDenied, GrantExpired, GrantRevoked, NotGrantee
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash

from .conftest import CATEGORY, Net
from .support import ProxyProcess


def body(
    net: Net,
    proxy: ProxyProcess,
    policy_id: bytes,
    capsules: list[bytes],
    *,
    key: bytes | None = None,
    deadline: int | None = None,
    chain_id: int | None = None,
    nonce: int | None = None,
) -> dict[str, Any]:
    chain_id = chain_id or net.chain.deployment.chain_id
    req = ReencryptRequest.new(
        proxy.keys.address,
        policy_id,
        [capsule_hash(c) for c in capsules],
        deadline if deadline is not None else net.chain.chain_time() + 300,
        nonce=nonce,
    )
    key = key or net.grantee.ethereum_key
    return SignedRequest(
        request=req,
        chain_id=chain_id,
        verifying_contract=net.chain.grants_address,  # type: ignore[arg-type]
        signature=req.sign(key, chain_id, net.chain.grants_address),
        capsules=tuple(capsules),
    ).to_json()


def refusal(resp: Any, status: int = 403) -> str:
    """The refusal's reason: 403 for a "no", 503 for a "not now" (retry later)."""
    assert resp.status_code == status, resp.text
    return str(resp.json()["refused"])


def test_every_refusal_reason(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    (other_category,) = net.chain.append(net.patient, "imaging", 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    p = net.proxies[0]
    cap = sealed.capsule_bytes

    ok = body(net, p, pid, [cap])
    first = p.post(ok)
    assert first.status_code == 200 and len(first.json()["cfrags"]) == 1
    # The identical request again is answered again (journaled once: see
    # test_repeated_request_logged_once); another request reusing its nonce is refused.
    assert p.post(ok).status_code == 200
    reused = body(net, p, pid, [cap], nonce=int(ok["nonce"]), deadline=int(ok["deadline"]) + 1)
    assert refusal(p.post(reused)) == "replayed_nonce"
    assert refusal(p.post(body(net, p, pid, [cap], key=net.outsider.ethereum_key))) == (
        "not_grantee"
    )
    past = net.chain.chain_time() - 1
    assert refusal(p.post(body(net, p, pid, [cap], deadline=past))) == "deadline_passed"
    assert refusal(p.post(body(net, p, pid, [cap], chain_id=1))) == "wrong_chain"
    stray, _ = umbral_pre.encrypt(net.patient.category_public_key(CATEGORY, 0), b"never indexed")
    # Not (yet) in this proxy's index: "not now" (its watcher may lag the chain), 503.
    assert refusal(p.post(body(net, p, pid, [bytes(stray)])), 503) == "capsule_not_in_index"
    assert refusal(p.post(body(net, p, pid, [other_category.capsule_bytes]))) == (
        "capsule_wrong_category"
    )
    assert refusal(p.post(body(net, p, b"\x42" * 32, [cap]))) == "policy_unknown"
    assert refusal(p.post(body(net, net.proxies[1], pid, [cap]))) == "wrong_proxy"
    tampered = body(net, p, pid, [cap])
    tampered["capsule_hashes"] = ["0x" + "00" * 32]
    assert refusal(p.post(tampered)) == "capsule_hash_mismatch"
    refused = p.health()["refused"]
    assert refused["not_grantee"] >= 1 and refused["replayed_nonce"] >= 1


def test_forged_domain_signature_and_other_epoch_are_refused(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    (next_epoch,) = net.chain.append(net.patient, CATEGORY, 1)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    p = net.proxies[0]
    cap = sealed.capsule_bytes

    other_contract = body(net, p, pid, [cap])
    other_contract["verifying_contract"] = net.chain.c["AuditLog"].address
    assert refusal(p.post(other_contract)) == "wrong_contract"
    malformed = body(net, p, pid, [cap])
    malformed["signature"] = "0x" + "11" * 65
    assert refusal(p.post(malformed)) == "bad_signature"
    # A well-formed signature over other fields recovers some other address.
    swapped = body(net, p, pid, [cap])
    swapped["deadline"] = int(swapped["deadline"]) + 1
    assert refusal(p.post(swapped)) == "not_grantee"
    # The same category at another epoch is another tag: not this policy's capsule.
    assert refusal(p.post(body(net, p, pid, [next_epoch.capsule_bytes]))) == (
        "capsule_wrong_category"
    )
    # None of these spent anything: the grantee's honest request is served.
    assert p.post(body(net, p, pid, [cap])).status_code == 200


async def test_non_grantee_through_the_client(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    _, policy = net.grant()
    async with net.client(net.outsider.ethereum_key) as client:
        with pytest.raises(NotGrantee) as info:
            await client.reencrypt(policy, [sealed.capsule], deadline=net.chain.chain_time() + 99)
    assert set(info.value.reasons.values()) == {"not_grantee"}
    # Two signed refusals put 2-of-3 out of reach: the client stops there, and says so.
    assert len(info.value.reasons) == 2
    assert "1 more not waited for" in str(info.value)


def _all_refuse(net: Net, grant: Grant, capsule: bytes, reason: str) -> list[int]:
    blocks = []
    for p in net.proxies:
        resp = p.post(body(net, p, bytes(grant.binding.policy_id), [capsule]))
        assert refusal(resp) == reason
        blocks.append(int(resp.json()["block"]))
    return blocks


@pytest.mark.parametrize("order", ["revoke-then-serve", "serve-then-revoke"])
def test_revocation_holds_from_its_block_on(net_up: Net, order: str) -> None:
    """Revoke and a served request's audit log land in one block, in both orders; every
    request evaluated at a block ≥ the revoke block is refused by every proxy."""
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    cap = sealed.capsule_bytes
    p = net.proxies[0]
    node = net.node
    node.rpc("evm_setAutomine", [False])
    try:
        before = net.chain.w3.eth.block_number
        if order == "revoke-then-serve":
            # Sent first, with a higher max fee than the proxy's audit transaction
            # (4 x base fee + 1 gwei): anvil orders a block by max fee, then arrival.
            revoke_tx = net.chain.revoke(net.patient, pid, wait=False, max_fee=100 * 10**9)
            served = p.post(body(net, p, pid, [cap]))
        else:
            served = p.post(body(net, p, pid, [cap]))
        # Pending revocation: the proxy evaluates at the latest mined block, still active.
        assert served.status_code == 200, served.text
        assert served.json()["block"] == before
        _wait_audit_in_pool(net, p)
        if order == "serve-then-revoke":
            # Sent after the audit transaction, with a lower max fee.
            fee = 2 * net.chain.base_fee()
            revoke_tx = net.chain.revoke(net.patient, pid, wait=False, max_fee=fee)
        node.rpc("evm_mine")
    finally:
        node.rpc("evm_setAutomine", [True])
    receipt = net.chain.w3.eth.get_transaction_receipt(revoke_tx)
    revoke_block = receipt["blockNumber"]
    assert revoke_block == before + 1
    blocks = _all_refuse(net, grant, cap, "policy_revoked")
    assert all(b >= revoke_block for b in blocks)
    # The serve evaluated before the revocation is logged on chain, whatever the order
    # of the two transactions inside the revoke block.
    p.wait_audit_drained()
    logs = [
        e
        for e in net.chain.access_logs()
        if bytes(e["policyId"]) == pid and e["proxy"] == p.keys.address
    ]
    assert [e["evaluatedAt"] for e in logs] == [before]
    (log,) = logs
    assert log["block"] == revoke_block
    revoke_first = receipt["transactionIndex"] < log["tx_index"]
    assert revoke_first == (order == "revoke-then-serve")


def test_revocation_holds_from_its_block_on_with_a_warm_cache(net_up: Net) -> None:
    """The proxy shares the policy's status among requests judged at one block; a request
    judged at the revoke's block is refused even when requests at the block before it were
    served from that shared answer a moment ago."""
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    cap = sealed.capsule_bytes
    p = net.proxies[0]
    node = net.node
    node.rpc("evm_setAutomine", [False])
    try:
        before = net.chain.w3.eth.block_number
        # Requests at one block: the first reads Grants.status, the others reuse its
        # answer (no block is mined meanwhile: the audit transactions wait in the pool).
        bodies = [body(net, p, pid, [cap]) for _ in range(6)]
        with httpx.Client(timeout=30.0) as http:
            warm = [http.post(p.url + "/v1/reencrypt", json=b) for b in bodies]
        assert [r.status_code for r in warm] == [200] * 6, [r.text for r in warm]
        assert {r.json()["block"] for r in warm} == {before}
        revoke_tx = net.chain.revoke(net.patient, pid, wait=False, max_fee=100 * 10**9)
        node.rpc("evm_mine")
    finally:
        node.rpc("evm_setAutomine", [True])
    revoke_block = net.chain.w3.eth.get_transaction_receipt(revoke_tx)["blockNumber"]
    assert revoke_block == before + 1
    # At once, before the watcher processed the revocation event: the status is the
    # chain's at the new block, not the warm answer of the block before.
    resp = p.post(body(net, p, pid, [cap]))
    assert refusal(resp) == "policy_revoked"
    assert int(resp.json()["block"]) >= revoke_block
    health = p.health()
    assert health["head_answered"] >= 7 and health["head_reads"] >= 1


def _wait_audit_in_pool(net: Net, p: ProxyProcess) -> None:
    eth = net.chain.w3.eth
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        address = p.keys.address
        if eth.get_transaction_count(address, "pending") > eth.get_transaction_count(address):
            return
        time.sleep(0.05)
    raise AssertionError("the proxy's audit transaction never reached the pool")


async def test_revoked_grant_through_the_client(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant()
    net.chain.revoke(net.patient, bytes(grant.binding.policy_id))
    async with net.client() as client:
        with pytest.raises(GrantRevoked) as info:
            await client.reencrypt(policy, [sealed.capsule], deadline=net.chain.chain_time() + 99)
    assert set(info.value.reasons.values()) == {"policy_revoked"}
    net.sync()
    for p in net.proxies:
        assert p.health()["kfrags"] >= 0  # the revoked kfrag is gone (checked in restart test)


async def test_expiry_follows_chain_time(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant(expiry=net.chain.chain_time() + 120)
    async with net.client() as client:
        await client.reencrypt(policy, [sealed.capsule], deadline=net.chain.chain_time() + 99)
        # Move chain time only: the proxies' wall clocks have not moved.
        net.node.rpc("evm_increaseTime", [300])
        net.node.rpc("evm_mine")
        with pytest.raises(GrantExpired) as info:
            await client.reencrypt(policy, [sealed.capsule], deadline=net.chain.chain_time() + 99)
    assert set(info.value.reasons.values()) == {"policy_expired"}
    assert isinstance(info.value, AccessDenied)
    _all_refuse(net, grant, sealed.capsule_bytes, "policy_expired")


def test_request_digest_matches_the_grants_contract(net_up: Net) -> None:
    """The proxy's EIP-712 digest is the one the Grants contract computes on chain."""
    net = net_up
    req = ReencryptRequest.new(
        net.proxies[0].keys.address,
        b"\x07" * 32,
        [capsule_hash(b"a"), capsule_hash(b"b")],
        1_900_000_000,
    )
    on_chain = (
        net.chain.c["Grants"]
        .functions.hashProxyRequest(
            req.proxy, bytes(req.policy_id), list(req.capsule_hashes), req.nonce, req.deadline
        )
        .call()
    )
    assert bytes(on_chain) == req.digest(net.chain.deployment.chain_id, net.chain.grants_address)


def test_oversized_body_is_refused_by_a_real_proxy(net_up: Net) -> None:
    p = net_up.proxies[0]
    huge = b'{"capsules": ["' + b"00" * (1 << 20) + b'"]}'
    resp = httpx.post(p.url + "/v1/reencrypt", content=huge, timeout=10.0)
    assert resp.status_code == 413 and resp.json()["refused"] == "batch_too_large"
    assert p.health()["status"] == "ok"
