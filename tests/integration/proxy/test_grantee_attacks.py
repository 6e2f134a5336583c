"""A grantee cannot stall a proxy's audit logging, and an expelled one reads nothing.

Real anvil, real proxy processes: a request naming one capsule hash many times is refused
(each repeat cost the audit transaction gas), a journal whose one-policy batch would be
over the block gas limit reaches the chain in several batches, every entry exactly once,
and a grantee the consortium removed is refused at the next read and leaves no audit entry.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from emrshare.chain import AccessEntry
from emrshare.crypto.keys import MemberKeys
from emrshare.devnet import dev_private_keys
from emrshare.proxy.chainview import audit_gas
from emrshare.proxy.node import NodeChain
from emrshare.proxy.node.store import ProxyStore
from emrshare.types import PolicyId

from .conftest import CATEGORY, FAR, Net
from .support import ROLE_PROVIDER, ROLE_PROXY, ProxyProcess, make_proxy
from .test_policy_checks import body, refusal

ROLE_NONE = 0
ACTION_REMOVE = 2


def _on_chain(net: Net, proxy: ProxyProcess) -> Counter[tuple[object, ...]]:
    return Counter(
        (
            bytes(e["policyId"]),
            e["requester"],
            tuple(bytes(h) for h in e["capsuleHashes"]),
            e["nonce"],
            e["evaluatedAt"],
            e["evaluatedTime"],
        )
        for e in net.chain.access_logs()
        if e["proxy"] == proxy.keys.address
    )


def test_attack_duplicate_capsules_refused(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    p = net.proxies[0]
    before = len(p.journal())
    # 256 copies of one capsule: 256 × 2k gas in the audit transaction for one capsule.
    resp = p.post(body(net, p, pid, [sealed.capsule_bytes] * 256))
    assert resp.status_code == 400, resp.text
    assert resp.json()["refused"] == "bad_request"
    assert "more than once" in resp.json()["message"]
    pair = p.post(body(net, p, pid, [sealed.capsule_bytes, sealed.capsule_bytes]))
    assert pair.status_code == 400 and pair.json()["refused"] == "bad_request"
    assert len(p.journal()) == before  # nothing served, nothing journaled
    # The same capsule once is served.
    assert p.post(body(net, p, pid, [sealed.capsule_bytes])).status_code == 200


def test_attack_audit_batch_over_block_gas_limit(net_up: Net) -> None:
    """Enough large serves of one policy that one batch would need more gas than a block
    holds (anvil: 30M): the flusher cuts them, and every entry is logged exactly once."""
    net = net_up
    capsules = 128
    per_entry = audit_gas([AccessEntry((b"\0" * 32,) * capsules, 0, 0, 0, 0, b"")]) - audit_gas([])
    gas_limit = int(net.chain.w3.eth.get_block("latest")["gasLimit"])
    reads = (gas_limit - audit_gas([])) // per_entry + 4  # one batch of all: over the limit
    assert audit_gas([AccessEntry((b"\0" * 32,) * capsules, 0, 0, 0, 0, b"")] * reads) > gas_limit
    key = dev_private_keys(10)[8]
    member = MemberKeys.generate(ethereum_key=key)
    # Nothing is flushed by time; all ``reads`` entries wait, then go in one flush.
    proxy = make_proxy(
        net.tmp / "gasproxy",
        member,
        net.node,
        net.chain.deployment,
        flush_interval=3600.0,
        flush_entries=reads,
    )
    net.chain.admit(member, ROLE_PROXY, proxy.url)
    proxy.start()
    try:
        entries = net.chain.append(net.patient, CATEGORY, 0, count=capsules)
        grant = net.chain.grant(
            net.patient,
            CATEGORY,
            0,
            net.grantee,
            [member],
            1,
            net.chain.chain_time() + FAR,
        )
        pid = bytes(grant.binding.policy_id)
        proxy.wait_cursor(net.chain.w3.eth.block_number)
        caps = [e.capsule_bytes for e in entries]
        for _ in range(reads):
            resp = proxy.post(body(net, proxy, pid, caps))
            assert resp.status_code == 200, resp.text
        proxy.wait_audit_drained(timeout=120.0)
        journal = Counter(proxy.journal())
        assert sum(journal.values()) == reads
        assert _on_chain(net, proxy) == journal  # every entry once, none twice
        batches = proxy.query("SELECT mined_block FROM batches")
        assert len(batches) >= 3 and all(b[0] is not None for b in batches)
        assert proxy.health()["errors"]["audit"] is None
    finally:
        proxy.stop()


def test_attack_expelled_grantee_keeps_reading(net_up: Net) -> None:
    net = net_up
    key = dev_private_keys(10)[7]
    grantee = MemberKeys.generate(ethereum_key=key)
    net.chain.admit(grantee, ROLE_PROVIDER)
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant = net.chain.grant(
        net.patient,
        CATEGORY,
        0,
        grantee,
        [p.keys for p in net.proxies],
        2,
        net.chain.chain_time() + FAR,
    )
    net.sync()
    pid = bytes(grant.binding.policy_id)
    p = net.proxies[0]
    assert p.post(body(net, p, pid, [sealed.capsule_bytes], key=key)).status_code == 200
    p.wait_audit_drained()
    logged = _on_chain(net, p)
    journaled = len(p.journal())
    # The admins remove the grantee from the consortium.
    reg = net.chain.c["ConsortiumRegistry"]
    proposal = reg.functions.proposalCount().call()
    net.chain.send(
        net.chain.admin, reg.functions.propose(ACTION_REMOVE, grantee.address, ROLE_NONE, 0)
    )
    net.chain.send(net.chain.admin, reg.functions.execute(proposal))
    assert not reg.functions.isActiveMember(grantee.address).call()
    net.sync()
    for proxy in net.proxies:
        resp = proxy.post(body(net, proxy, pid, [sealed.capsule_bytes], key=key))
        assert refusal(resp) == "grantee_not_member", resp.text
        assert "not an active consortium member" in resp.json()["message"]
    time.sleep(1.0)  # more than a flush interval: anything journaled would be flushed
    p.wait_audit_drained()
    assert len(p.journal()) == journaled
    assert _on_chain(net, p) == logged


def test_attack_stored_batch_over_block_gas_limit_does_not_stall_the_flusher(
    net_up: Net,
) -> None:
    """A stored batch no block can hold (signed before the split existed, or the limit
    dropped) is rejected by anvil ("intrinsic gas too high"): the flusher drops it and
    logs its entry again with the freed nonce, and the batch stored after it is still
    sent and mined; every entry reaches the chain exactly once."""
    net = net_up
    key = dev_private_keys(10)[9]
    member = MemberKeys.generate(ethereum_key=key)
    proxy = make_proxy(
        net.tmp / "stuckproxy",
        member,
        net.node,
        net.chain.deployment,
        flush_interval=3600.0,
        flush_entries=1000,
    )
    net.chain.admit(member, ROLE_PROXY, proxy.url)
    proxy.start()
    try:
        (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
        grant = net.chain.grant(
            net.patient, CATEGORY, 0, net.grantee, [member], 1, net.chain.chain_time() + FAR
        )
        pid = bytes(grant.binding.policy_id)
        proxy.wait_cursor(net.chain.w3.eth.block_number)
        for _ in range(2):
            resp = proxy.post(body(net, proxy, pid, [sealed.capsule_bytes]))
            assert resp.status_code == 200, resp.text
        proxy.kill()  # nothing flushed (T is an hour): two journaled, unbatched serves
        chain = NodeChain.connect(net.chain.w3, net.chain.deployment, key)
        store = ProxyStore(Path(proxy.config.database), bytes(member.box_private_key))
        try:
            first, second = store.unbatched(10)
            nonce = chain.account_nonce()
            gas_limit = chain.block_gas_limit()
            signed = chain.contracts.audit.sign_log_accesses(
                PolicyId(pid),
                net.grantee.address,
                [member.address],
                [
                    AccessEntry(
                        first.capsule_hashes,
                        first.nonce,
                        first.deadline,
                        first.block,
                        first.block_time,
                        first.signature,
                    )
                ],
                nonce=nonce,
                gas=gas_limit + 1,
            )
            store.add_batch([first.id], signed.raw, signed.tx_hash, nonce)
            item = AccessEntry(
                second.capsule_hashes,
                second.nonce,
                second.deadline,
                second.block,
                second.block_time,
                second.signature,
            )
            second_signed = chain.sign_audit_batch(
                pid, net.grantee.address, [member.address], [item], nonce + 1
            )
            store.add_batch(
                [second.id], second_signed.raw, second_signed.tx_hash, second_signed.nonce
            )
        finally:
            store.close()
        # Restarted with a short flush interval: it settles both stored batches, and the
        # re-queued entry is flushed at the next interval.
        proxy.config = replace(proxy.config, flush_interval=0.5)
        proxy.config_path.write_text(proxy.config.to_toml())
        proxy.start()
        proxy.wait_audit_drained(timeout=60.0)
        journal = Counter(proxy.journal())
        assert sum(journal.values()) == 2
        assert _on_chain(net, proxy) == journal
        assert signed.tx_hash not in {
            bytes(r[0]) for r in proxy.query("SELECT tx_hash FROM batches")
        }
        assert "intrinsic gas too high" in proxy.log_tail().lower()
    finally:
        proxy.stop()
