"""Reading through 2-of-3 real proxies: happy path, proxies down, malicious proxies."""

from __future__ import annotations

import httpx
import pytest

from emrshare.crypto.grants import open_entry_as_grantee
from emrshare.errors import Unavailable

from .conftest import CATEGORY, Net
from .support import threshold_policy


async def test_happy_path_opens_entries(net_up: Net) -> None:
    net = net_up
    entries = net.chain.append(net.patient, CATEGORY, 0, count=3)
    grant, policy = net.grant()
    _, gmap = threshold_policy(grant, net.grantee, net.patient, net.proxies)
    async with net.client() as client:
        result = await client.reencrypt(
            policy, [e.capsule for e in entries], deadline=net.chain.chain_time() + 300
        )
    assert len(result.served_by) == 2
    for sealed, cfrags in zip(entries, result.cfrags, strict=True):
        entry = open_entry_as_grantee(
            sealed, net.grantee, gmap, cfrags, origin=net.chain.origin_of(sealed)
        )
        assert entry.category == CATEGORY
        entry.verify_author(net.patient.address)


async def test_one_down_still_reads_two_down_names_them(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant()
    _, gmap = threshold_policy(grant, net.grantee, net.patient, net.proxies)
    net.proxies[0].kill()
    async with net.client(timeout=5.0) as client:
        result = await client.reencrypt(
            policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
        )
        assert set(result.served_by) == {net.proxies[1].keys.address, net.proxies[2].keys.address}
        open_entry_as_grantee(
            sealed, net.grantee, gmap, result.cfrags[0], origin=net.chain.origin_of(sealed)
        )
        net.proxies[1].kill()
        with pytest.raises(Unavailable) as info:
            await client.reencrypt(policy, [sealed.capsule], deadline=net.chain.chain_time() + 300)
    err = info.value
    assert set(err.failures) == {net.proxies[0].keys.address, net.proxies[1].keys.address}
    assert set(err.failures.values()) == {"unreachable"}
    assert net.proxies[0].keys.address in str(err) and net.proxies[1].keys.address in str(err)
    assert (err.needed, err.got) == (2, 1)


@pytest.mark.parametrize("mode", ["garbage", "other-capsule"])
async def test_malicious_proxy_is_detected(net_up: Net, mode: str) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant()
    _, gmap = threshold_policy(grant, net.grantee, net.patient, net.proxies)
    evil = net.proxies[2]
    evil.stop()
    evil.start(evil=mode)
    try:
        async with net.client() as client:
            # All three up: the read succeeds from the honest two; if the evil one
            # answered first, its fragment was rejected.
            result = await client.reencrypt(
                policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
            )
            assert evil.keys.address not in result.served_by
            assert all(f.kind == "bad_fragment" for f in result.failures)
            open_entry_as_grantee(
                sealed, net.grantee, gmap, result.cfrags[0], origin=net.chain.origin_of(sealed)
            )
            # With one honest proxy down the evil answer is needed: it must be named.
            net.proxies[0].kill()
            with pytest.raises(Unavailable) as info:
                await client.reencrypt(
                    policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
                )
        assert info.value.failures[evil.keys.address] == "cfrag_verification_failed"
        assert info.value.failures[net.proxies[0].keys.address] == "unreachable"
    finally:
        evil.stop()


async def test_hung_proxies_time_out_and_are_named(net_up: Net) -> None:
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant()
    _, gmap = threshold_policy(grant, net.grantee, net.patient, net.proxies)
    slow = net.proxies[2]
    slow.pause()
    try:
        async with net.client(timeout=5.0) as client:
            # Two answer: the read does not wait for the hung one.
            result = await client.reencrypt(
                policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
            )
            assert slow.keys.address not in result.served_by
            open_entry_as_grantee(
                sealed, net.grantee, gmap, result.cfrags[0], origin=net.chain.origin_of(sealed)
            )
            net.proxies[1].pause()
            try:
                with pytest.raises(Unavailable) as info:
                    await client.reencrypt(
                        policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
                    )
            finally:
                net.proxies[1].resume()
    finally:
        slow.resume()
    assert info.value.failures == {
        net.proxies[1].keys.address: "timeout",
        slow.keys.address: "timeout",
    }


def test_sync_reads_reuse_a_passed_transport(net_up: Net) -> None:
    """Blocking callers (the roles layer) call ``reencrypt_sync`` again and again with one
    transport; each call runs its own event loop, so pooled connections must not leak from
    one call into the next."""
    net = net_up
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, policy = net.grant()
    _, gmap = threshold_policy(grant, net.grantee, net.patient, net.proxies)
    client = net.client(transport=httpx.AsyncHTTPTransport())
    for _ in range(3):
        result = client.reencrypt_sync(
            policy, [sealed.capsule], deadline=net.chain.chain_time() + 300
        )
        open_entry_as_grantee(
            sealed, net.grantee, gmap, result.cfrags[0], origin=net.chain.origin_of(sealed)
        )
