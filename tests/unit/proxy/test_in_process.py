"""The whole proxy stack in one process, on the in-process py-evm chain (no sockets):
watcher → store → service → ASGI app ← threshold client over an ASGI transport."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from emrshare.crypto.grants import open_entry_as_grantee
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.devnet import dev_private_keys
from emrshare.errors import CryptoError, GrantRevoked, Unavailable
from emrshare.proxy import ProxyEndpoint, RoutingTransport, ThresholdClient
from emrshare.proxy.node import NodeChain, ProxyParts
from emrshare.proxy.node._kfrags import kfrag_opener
from emrshare.proxy.node.app import MAX_BODY
from emrshare.proxy.node.audit import AuditFlusher
from emrshare.proxy.node.watcher import ChainWatcher
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash
from tests.proxy_support import (
    ROLE_PROVIDER,
    ROLE_PROXY,
    Consortium,
    threshold_policy,
    unlock_on_eth_tester,
)


class InProcessProxy:
    def __init__(self, w3: Web3, chain: Consortium, keys: MemberKeys, tmp: Path) -> None:
        self.keys = keys
        self.url = f"http://{keys.address.lower()}.proxy"
        self.endpoint_host = f"{keys.address.lower()}.proxy"
        parts = ProxyParts.assemble(
            NodeChain.connect(w3, chain.deployment, keys.ethereum_key),
            keys,
            tmp / keys.address / "proxy.sqlite3",
            start_block=chain.deployment.start_block,
            flush_interval=0.0,
            flush_entries=8,
        )
        self.chain, self.store, self.service = parts.chain, parts.store, parts.service
        self.watcher, self.flusher = parts.watcher, parts.flusher
        self.app = parts.app()

    @property
    def endpoint(self) -> ProxyEndpoint:
        return ProxyEndpoint(self.keys.address, self.url)


@pytest.fixture
def world(evm_w3: Web3, tmp_path: Path) -> dict[str, Any]:
    keys = dev_private_keys(7)
    unlock_on_eth_tester(evm_w3, keys)
    chain = Consortium(evm_w3, keys[0])
    patient = PatientKeys(secrets.token_bytes(32), ethereum_key=keys[1])
    grantee = MemberKeys.generate(ethereum_key=keys[2])
    chain.register_patient(patient)
    chain.admit(grantee, ROLE_PROVIDER)
    proxies = []
    routes = RoutingTransport()
    for i in range(3):
        member = MemberKeys.generate(ethereum_key=keys[4 + i])
        p = InProcessProxy(evm_w3, chain, member, tmp_path)
        chain.admit(member, ROLE_PROXY, p.url)
        routes.route(p.endpoint_host, p.app)
        proxies.append(p)
    return {
        "chain": chain,
        "patient": patient,
        "grantee": grantee,
        "proxies": proxies,
        "routes": routes,
    }


def _settle(proxies: list[InProcessProxy]) -> None:
    for p in proxies:
        while p.watcher.step():
            pass


def granted_request(world: dict[str, Any]) -> tuple[InProcessProxy, SignedRequest]:
    """A grant of one "lab" record to the grantee, seen by every proxy, and the grantee's
    signed request of its capsule to the first proxy."""
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    (sealed,) = chain.append(patient, "lab", 0)
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    proxy = proxies[0]
    cap = sealed.capsule_bytes
    req = ReencryptRequest.new(
        proxy.keys.address,
        bytes(grant.binding.policy_id),
        [capsule_hash(cap)],
        chain.chain_time() + 300,
    )
    chain_id = chain.deployment.chain_id
    signed = SignedRequest(
        request=req,
        chain_id=chain_id,
        verifying_contract=chain.grants_address,  # type: ignore[arg-type]
        signature=req.sign(grantee.ethereum_key, chain_id, chain.grants_address),
        capsules=(cap,),
    )
    return proxy, signed


def _grantee_client(world: dict[str, Any]) -> ThresholdClient:
    """The grantee's threshold client, routed to the in-process proxies."""
    chain: Consortium = world["chain"]
    return ThresholdClient(
        world["grantee"].ethereum_key,
        chain_id=chain.deployment.chain_id,
        grants_contract=chain.grants_address,
        transport=world["routes"],
    )


async def test_read_revoke_and_audit_in_process(world: dict[str, Any]) -> None:
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    entries = chain.append(patient, "lab", 0, count=2)
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    assert all(p.store.kfrag_count() == 1 for p in proxies)
    policy, gmap = threshold_policy(grant, grantee, patient, proxies)
    client = _grantee_client(world)
    async with client:
        result = await client.reencrypt(
            policy, [e.capsule for e in entries], deadline=chain.chain_time() + 60
        )
        for sealed, cfrags in zip(entries, result.cfrags, strict=True):
            open_entry_as_grantee(sealed, grantee, gmap, cfrags, origin=chain.origin_of(sealed))
        # Two proxies down: named, typed.
        down = [p.endpoint_host for p in proxies[:2]]
        saved = {h: world["routes"].unroute(h) for h in down}
        with pytest.raises(Unavailable) as info:
            await client.reencrypt(policy, [entries[0].capsule], deadline=chain.chain_time() + 60)
        assert set(info.value.failures) == {p.keys.address for p in proxies[:2]}
        for host, app in saved.items():
            world["routes"].route(host, app)
        # Revoked: every proxy refuses at once, before its watcher has seen the event.
        chain.revoke(patient, bytes(grant.binding.policy_id))
        with pytest.raises(GrantRevoked):
            await client.reencrypt(policy, [entries[0].capsule], deadline=chain.chain_time() + 60)
    _settle(proxies)
    assert all(p.store.kfrag_count() == 0 for p in proxies)
    # Every serve is logged on chain exactly once, even when flushed twice.
    journaled = 0
    for p in proxies:
        journaled += p.store.unbatched_count()
        p.flusher.flush_once()
        p.flusher.settle()
        p.flusher.flush_once()
        assert p.store.unbatched_count() == 0 and not p.store.pending_batches()
    assert journaled >= 2
    assert len(chain.access_logs()) == journaled


def test_audit_batches_survive_crashes_exactly_once(world: dict[str, Any]) -> None:
    """A crash after the signed batch was stored (before or after its broadcast) is
    finished by the next flusher, and the batch lands on chain exactly once."""
    from emrshare.chain import AccessEntry
    from emrshare.proxy.node.store import Serve

    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    (entry,) = chain.append(patient, "lab", 0)
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    p = proxies[0]
    pid = bytes(grant.binding.policy_id)
    record = p.store.entries([entry.capsule_hash])[entry.capsule_hash][0].record_id
    for crash_after_broadcast in (False, True):
        block = chain.w3.eth.block_number
        block_time = int(chain.w3.eth.get_block(block)["timestamp"])
        req_nonce = secrets.randbits(64)
        request = ReencryptRequest.new(
            p.keys.address, pid, [entry.capsule_hash], block_time + 600, nonce=req_nonce
        )
        signature = request.sign(
            grantee.ethereum_key, chain.deployment.chain_id, chain.grants_address
        )
        entry_id = p.store.journal(
            Serve(
                pid,
                grantee.address,
                (record,),
                block,
                req_nonce,
                block_time + 600,
                capsule_hashes=(entry.capsule_hash,),
                signature=signature,
                block_time=block_time,
            )
        )
        (journaled,) = p.store.unbatched(10)
        assert journaled.id == entry_id
        assert journaled.signature == signature and journaled.block_time == block_time
        nonce = p.chain.account_nonce()
        signed = p.chain.sign_audit_batch(
            pid,
            grantee.address,
            [q.keys.address for q in proxies],
            [
                AccessEntry(
                    journaled.capsule_hashes,
                    journaled.nonce,
                    journaled.deadline,
                    journaled.block,
                    journaled.block_time,
                    journaled.signature,
                )
            ],
            nonce,
        )
        p.store.add_batch([entry_id], signed.raw, signed.tx_hash, signed.nonce)
        if crash_after_broadcast:
            p.chain.broadcast(signed.raw)
        # "Restart": a fresh flusher over the same store finishes the batch.
        restarted = AuditFlusher(p.chain, p.store, interval=0.0, max_entries=8)
        restarted.settle()
        restarted.settle()
        restarted.flush_once()
        assert not p.store.pending_batches() and p.store.unbatched_count() == 0
    logs = [e for e in chain.access_logs() if e["proxy"] == p.keys.address]
    assert len(logs) == 2


async def test_openapi_health_and_info(world: dict[str, Any]) -> None:
    p: InProcessProxy = world["proxies"][0]
    _settle([p])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=p.app), base_url=p.url) as h:
        schema = (await h.get("/openapi.json")).json()
        health = (await h.get("/healthz")).json()
        info = (await h.get("/v1/info")).json()
        bad = await h.post("/v1/reencrypt", json={"nonsense": True})
    assert "/v1/reencrypt" in schema["paths"]
    reasons = schema["components"]["schemas"]["RefusalReason"]["enum"]
    assert {"not_grantee", "replayed_nonce", "policy_revoked", "capsule_not_in_index"} <= set(
        reasons
    )
    assert health["status"] == "ok" and health["proxy"] == p.keys.address
    assert health["cursor"] == world["chain"].w3.eth.block_number
    assert info["grants_contract"] == world["chain"].grants_address
    # Malformed bodies are refusals of the documented shape (no longer pydantic's 422).
    assert bad.status_code == 400 and bad.json()["refused"] == "bad_request"
    body_schema = schema["paths"]["/v1/reencrypt"]["post"]["requestBody"]["content"]
    assert "signature" in body_schema["application/json"]["schema"]["properties"]


async def test_oversized_bodies_are_refused_before_parsing(world: dict[str, Any]) -> None:
    p: InProcessProxy = world["proxies"][0]
    huge = b'{"capsules": ["' + b"00" * MAX_BODY + b'"]}'

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to go by
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=p.app), base_url=p.url) as h:
        declared = await h.post("/v1/reencrypt", content=huge)
        streamed = await h.post("/v1/reencrypt", content=chunked())
        small = await h.post("/v1/reencrypt", json={"nonsense": True})
    for resp in (declared, streamed):
        assert resp.status_code == 413
        assert resp.json()["refused"] == "batch_too_large"
    # ordinary bodies still reach the app (and are refused by it)
    assert small.status_code == 400 and small.json()["refused"] == "bad_request"


def test_confirmation_depth_and_resume(world: dict[str, Any], evm_w3: Web3) -> None:
    """The watcher reads only blocks ``confirmations`` deep; a new watcher over the same
    store resumes at the cursor: nothing missed, nothing applied twice."""
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    p: InProcessProxy = world["proxies"][0]
    deep = ChainWatcher(
        p.chain,
        p.store,
        p.service,
        kfrag_opener(p.keys),
        start_block=chain.deployment.start_block,
        confirmations=2,
    )
    chain.append(patient, "lab", 0, count=2)
    grant = chain.grant(patient, "lab", 0, grantee, [q.keys for q in world["proxies"]], 2, 2**39)
    while deep.step():
        pass
    head = evm_w3.eth.block_number
    assert p.store.cursor() == head - 2
    assert p.store.policy(bytes(grant.binding.policy_id)) is None
    evm_w3.provider.ethereum_tester.mine_blocks(2)  # type: ignore[attr-defined]
    resumed = ChainWatcher(
        p.chain,
        p.store,
        p.service,
        kfrag_opener(p.keys),
        start_block=chain.deployment.start_block,
        confirmations=2,
    )
    while resumed.step():
        pass
    assert p.store.cursor() == head
    assert p.store.policy(bytes(grant.binding.policy_id)) is not None
    assert p.store.kfrag_count() == 1


async def test_capsule_copied_under_another_tag_does_not_hijack_it(
    world: dict[str, Any],
) -> None:
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    (sealed,) = chain.append(patient, "imaging", 0)
    # The same sealed bytes appended again, first under another tag, then under its own.
    index = chain.c["RecordIndex"]
    for category in ("lab", "imaging"):
        tag = patient.tag(category, 0)
        seq = index.functions.nextSequence(patient.address, tag, patient.address).call()
        chain.send(
            patient.address,
            index.functions.append(patient.address, tag, seq, bytes(sealed)),
        )
    lab = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    imaging = chain.grant(
        patient, "imaging", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    async with _grantee_client(world) as client:
        policy, gmap = threshold_policy(imaging, grantee, patient, proxies)
        result = await client.reencrypt(policy, [sealed.capsule], deadline=chain.chain_time() + 60)
        assert (
            open_entry_as_grantee(
                sealed, grantee, gmap, result.cfrags[0], origin=chain.origin_of(sealed)
            ).category
            == "imaging"
        )
        # Under the lab grant the proxies do serve (the capsule is indexed under lab too),
        # but with the lab key's fragments, which cannot open an imaging entry.
        lab_policy, lab_map = threshold_policy(lab, grantee, patient, proxies)
        result = await client.reencrypt(
            lab_policy, [sealed.capsule], deadline=chain.chain_time() + 60
        )
        with pytest.raises(CryptoError):
            open_entry_as_grantee(
                sealed, grantee, lab_map, result.cfrags[0], origin=chain.origin_of(sealed)
            )


def test_sync_read_can_be_retried_with_the_same_client(world: dict[str, Any]) -> None:
    """A caller retries ``reencrypt_sync`` after ``Unavailable`` (a grant the proxies have
    not processed yet); the retry must work, not find its client closed."""
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    entries = chain.append(patient, "lab", 0, count=1)
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    policy, gmap = threshold_policy(grant, grantee, patient, proxies)
    client = _grantee_client(world)
    deadline = chain.chain_time() + 60
    with pytest.raises(Unavailable):
        client.reencrypt_sync(policy, [entries[0].capsule], deadline=deadline)
    _settle(proxies)
    result = client.reencrypt_sync(policy, [entries[0].capsule], deadline=deadline)
    open_entry_as_grantee(
        entries[0], grantee, gmap, result.cfrags[0], origin=chain.origin_of(entries[0])
    )
    assert len(result.served_by) == 2


def test_concurrent_repeats_of_one_request_are_served_and_journaled_once(
    world: dict[str, Any],
) -> None:
    """The same signed request sent at once from several threads (a retry racing the
    first try): each is answered, with a signed serve, and one serve is journaled."""
    import threading

    from emrshare.proxy.node.service import Served

    proxy, signed = granted_request(world)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(proxy.service.handle(signed)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    assert all(isinstance(r, Served) and r.signature for r in results), results
    assert proxy.store.unbatched_count() == 1
    assert proxy.service.repeats == 3


async def test_a_long_lived_client_keeps_a_bounded_number_of_signed_requests(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed requests are kept for retries within a read, not for ever: a client that
    reads on (an EHR integration) does not grow without bound; the latest read's retry
    still reuses its request (same nonce, journaled once)."""
    import emrshare.proxy.client as client_mod

    monkeypatch.setattr(client_mod, "_SIGNED_KEPT", 4)
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    (entry,) = chain.append(patient, "lab", 0, count=1)
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    policy, _ = threshold_policy(grant, grantee, patient, proxies)
    async with _grantee_client(world) as client:
        base = chain.chain_time() + 60
        for i in range(5):  # five reads, three proxies each: 15 requests signed
            await client.reencrypt(policy, [entry.capsule], deadline=base + i)
        assert len(client._signed) == 4
        kept = dict(client._signed)
        await client.reencrypt(policy, [entry.capsule], deadline=base + 4)  # a retry
        assert {k: v.signed.request.nonce for k, v in client._signed.items()} == {
            k: v.signed.request.nonce for k, v in kept.items()
        }


async def test_a_record_appended_a_moment_ago_is_not_now_not_no(world: dict[str, Any]) -> None:
    """Proxies index entries as their watchers follow the chain: a grantee reading a
    record its proxies have not indexed yet gets Unavailable (retry), not AccessDenied,
    and the same read succeeds once they have."""
    chain: Consortium = world["chain"]
    patient, grantee = world["patient"], world["grantee"]
    proxies: list[InProcessProxy] = world["proxies"]
    grant = chain.grant(
        patient, "lab", 0, grantee, [p.keys for p in proxies], 2, chain.chain_time() + 3600
    )
    _settle(proxies)
    (entry,) = chain.append(patient, "lab", 0, count=1)  # not yet seen by the proxies
    policy, gmap = threshold_policy(grant, grantee, patient, proxies)
    async with _grantee_client(world) as client:
        deadline = chain.chain_time() + 60
        with pytest.raises(Unavailable) as info:
            await client.reencrypt(policy, [entry.capsule], deadline=deadline)
        assert set(info.value.failures.values()) == {"capsule_not_in_index"}
        _settle(proxies)
        result = await client.reencrypt(policy, [entry.capsule], deadline=deadline)
    open_entry_as_grantee(entry, grantee, gmap, result.cfrags[0], origin=chain.origin_of(entry))
