"""A proxy restarted mid-stream misses nothing; every serve reaches the audit log once."""

from __future__ import annotations

from collections import Counter

from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash

from .conftest import CATEGORY, Net
from .support import ProxyProcess


def _ask(net: Net, p: ProxyProcess, policy_id: bytes, capsule: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    chain_id = net.chain.deployment.chain_id
    req = ReencryptRequest.new(
        p.keys.address, policy_id, [capsule_hash(capsule)], net.chain.chain_time() + 300
    )
    resp = p.post(
        SignedRequest(
            request=req,
            chain_id=chain_id,
            verifying_contract=net.chain.grants_address,  # type: ignore[arg-type]
            signature=req.sign(net.grantee.ethereum_key, chain_id, net.chain.grants_address),
            capsules=(capsule,),
        ).to_json()
    )
    return resp.status_code, resp.json()


def test_restart_mid_stream_misses_nothing(net_up: Net) -> None:
    net = net_up
    p0, p1 = net.proxies[0], net.proxies[1]
    (e1,) = net.chain.append(net.patient, CATEGORY, 0)
    g1, _ = net.grant()
    g_tag, _ = net.grant(category="imaging")
    p0.kill()
    # While proxy 0 is down: a new grant, new entries, a revocation, a tag revocation.
    g2, _ = net.grant()
    e2, e3 = net.chain.append(net.patient, CATEGORY, 0, count=2)
    (img,) = net.chain.append(net.patient, "imaging", 0)
    net.chain.revoke(net.patient, bytes(g1.binding.policy_id))
    net.chain.revoke_tag(net.patient, "imaging", 0)
    p0.start()
    net.sync()
    for cap in (e1, e2, e3):
        status, answer = _ask(net, p0, bytes(g2.binding.policy_id), cap.capsule_bytes)
        assert status == 200, answer
    status, answer = _ask(net, p0, bytes(g1.binding.policy_id), e1.capsule_bytes)
    assert (status, answer["refused"]) == (403, "policy_revoked")
    status, answer = _ask(net, p0, bytes(g_tag.binding.policy_id), img.capsule_bytes)
    assert (status, answer["refused"]) == (403, "policy_revoked")
    # The restarted proxy holds exactly what the one that stayed up holds, and both
    # match the chain: every grant, entry and revocation applied once.
    grants_on_chain = net.chain.event_count("Grants", "GrantCreated")
    entries_on_chain = net.chain.event_count("RecordIndex", "EntryAppended")
    for p in (p0, p1):
        assert p.query("SELECT count(*) FROM policies")[0][0] == grants_on_chain
        assert p.query("SELECT count(*) FROM entries")[0][0] == entries_on_chain
    revoked = "SELECT policy_id FROM policies WHERE revoked_block IS NOT NULL ORDER BY 1"
    assert p0.query(revoked) == p1.query(revoked)
    assert p0.query("SELECT policy_id FROM kfrags ORDER BY 1") == p1.query(
        "SELECT policy_id FROM kfrags ORDER BY 1"
    )
    gone = {bytes(g1.binding.policy_id), bytes(g_tag.binding.policy_id)}
    assert not gone & {r[0] for r in p0.query("SELECT policy_id FROM kfrags")}


async def test_every_serve_is_logged_on_chain_exactly_once(net_up: Net) -> None:
    net = net_up
    entries = net.chain.append(net.patient, CATEGORY, 0, count=3)
    _, policy = net.grant()
    async with net.client() as client:
        # Six distinct reads (each its own deadline): the same arguments again would be
        # a retry of one read, which a client sends as the same request, logged once.
        # (With no block mined between reads, chain time stands still: without the
        # offset the six calls were one read, and the count below depended on whether
        # other tests' transactions had moved the chain on.)
        for i in range(6):
            await client.reencrypt(
                policy, [e.capsule for e in entries], deadline=net.chain.chain_time() + 300 + i
            )
    # A hard kill right after serving: journaled serves must survive and be logged.
    net.proxies[1].kill()
    net.proxies[1].start()
    for p in net.proxies:
        p.wait_audit_drained()
    logs = net.chain.access_logs()
    total = 0
    for p in net.proxies:
        journal = Counter(p.journal())
        on_chain = Counter(
            (
                bytes(e["policyId"]),
                e["requester"],
                tuple(bytes(h) for h in e["capsuleHashes"]),
                e["nonce"],
                e["evaluatedAt"],
                e["evaluatedTime"],
            )
            for e in logs
            if e["proxy"] == p.keys.address
        )
        assert on_chain == journal
        total += sum(journal.values())
    assert total >= 12  # at least two proxies served each of the six reads
