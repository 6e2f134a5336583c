"""Issue #10: proxies across chain reorganisations deeper than their confirmation depth
(0 here), made by anvil's ``anvil_reorg`` (replace the newest blocks, optionally with
given transactions) on real proxy processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from emrshare.proxy.request import capsule_hash

from .conftest import CATEGORY, Net
from .support import ProxyProcess
from .test_policy_checks import body


def _wait(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")


def _reorg(net: Net, depth: int, txs: list[tuple[bytes, int]] | None = None) -> None:
    """Replace the newest ``depth`` blocks (with ``txs``: (raw signed tx, block offset))."""
    params: list[Any] = [depth, [["0x" + raw.hex(), offset] for raw, offset in txs or []]]
    net.node.rpc("anvil_reorg", params)


def _raw_tx(net: Net, tx_hash: bytes) -> bytes:
    raw = net.node.rpc("eth_getRawTransactionByHash", ["0x" + bytes(tx_hash).hex()])
    return bytes.fromhex(str(raw).removeprefix("0x"))


def _policy_row(p: ProxyProcess, pid: bytes) -> list[tuple[Any, ...]]:
    return p.query(f"SELECT revoked_block FROM policies WHERE policy_id = x'{pid.hex()}'")


def _kfrags(p: ProxyProcess, pid: bytes) -> int:
    return int(p.query(f"SELECT count(*) FROM kfrags WHERE policy_id = x'{pid.hex()}'")[0][0])


def _quiet(net: Net) -> None:
    """No proxy has an audit batch left to send: the blocks these tests replace then hold
    only their own transactions (the network is shared with earlier tests, whose reads
    the proxies log on chain in batches, at any moment)."""
    for p in net.proxies:
        p.wait_audit_drained()


def _head_hash(net: Net) -> bytes:
    return bytes(net.chain.w3.eth.get_block("latest")["hash"])


def test_reorg_drops_rolled_back_kfrag(net_up: Net) -> None:
    net = net_up
    _quiet(net)
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    before = net.chain.w3.eth.block_number
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    granted_at = net.chain.w3.eth.block_number
    assert granted_at == before + 1
    for p in net.proxies:
        assert _kfrags(p, pid) == 1
    old_head = _head_hash(net)
    # The grant's block is replaced by an empty one: the grant never happened.
    _reorg(net, 1)
    assert _head_hash(net) != old_head
    assert net.chain.c["Grants"].functions.statusOf(pid).call() == 0
    for p in net.proxies:
        _wait(f"{p.keys.address} drops the orphaned grant", lambda p=p: not _policy_row(p, pid))
        assert _kfrags(p, pid) == 0
    p = net.proxies[0]
    resp = p.post(body(net, p, pid, [sealed.capsule_bytes]))
    assert resp.json()["refused"] == "policy_unknown"
    # The watcher followed the new chain on: a new grant is served as usual.
    net.grant()


def test_reorg_revocation_mined_again_holds(net_up: Net) -> None:
    net = net_up
    _quiet(net)
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    receipt = net.chain.revoke(net.patient, pid)
    revoked_at = int(receipt["blockNumber"])
    raw = _raw_tx(net, receipt["transactionHash"])
    net.node.rpc("evm_mine")  # one more block, so the revocation can move into it
    net.sync()
    for p in net.proxies:
        assert _policy_row(p, pid) == [(revoked_at,)]
    # The revocation's block and the next are replaced; the revocation is mined again,
    # one block later.
    _reorg(net, 2, [(raw, 1)])
    assert net.chain.c["Grants"].functions.statusOf(pid).call() == 2
    for p in net.proxies:
        _wait(
            f"{p.keys.address} re-applies the revocation at its new block",
            lambda p=p: _policy_row(p, pid) == [(revoked_at + 1,)],
        )
        assert _kfrags(p, pid) == 0
        resp = p.post(body(net, p, pid, [sealed.capsule_bytes]))
        assert resp.status_code == 403 and resp.json()["refused"] == "policy_revoked"


def test_reorg_revocation_rolled_back_fails_closed(net_up: Net) -> None:
    """A revocation rolled back and not mined again: the grant is active on chain, but the
    kfrag the proxy deleted is not resurrected (documented: kfrag_unavailable)."""
    net = net_up
    _quiet(net)
    (sealed,) = net.chain.append(net.patient, CATEGORY, 0)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    receipt = net.chain.revoke(net.patient, pid)
    net.sync()
    _reorg(net, 1)
    assert net.chain.c["Grants"].functions.statusOf(pid).call() == 1
    for p in net.proxies:
        _wait(
            f"{p.keys.address} undoes the revocation", lambda p=p: _policy_row(p, pid) == [(None,)]
        )
        assert _kfrags(p, pid) == 0
        resp = p.post(body(net, p, pid, [sealed.capsule_bytes]))
        assert resp.status_code == 503 and resp.json()["refused"] == "kfrag_unavailable"
    del receipt


async def test_reorg_audit_entries_resent(net_up: Net) -> None:
    net = net_up
    entries = net.chain.append(net.patient, CATEGORY, 0, count=2)
    grant, policy = net.grant()
    pid = bytes(grant.binding.policy_id)
    async with net.client() as client:
        result = await client.reencrypt(
            policy, [e.capsule for e in entries], deadline=net.chain.chain_time() + 300
        )
    for p in net.proxies:
        p.wait_audit_drained()
    logged = [e for e in net.chain.access_logs() if bytes(e["policyId"]) == pid]
    # (A third proxy may have served too, after the client had its two.)
    assert set(result.served_by) <= {e["proxy"] for e in logged}
    first_block = min(e["block"] for e in logged)
    head = net.chain.w3.eth.block_number
    # Every block from the first audit transaction on is replaced by an empty one.
    _reorg(net, head - first_block + 1)
    assert [e for e in net.chain.access_logs() if bytes(e["policyId"]) == pid] == []

    def relogged() -> bool:
        now = [e for e in net.chain.access_logs() if bytes(e["policyId"]) == pid]
        return len(now) == len(logged)

    _wait("the orphaned audit entries are logged again", relogged, timeout=60.0)
    for p in net.proxies:
        p.wait_audit_drained()
    again = [e for e in net.chain.access_logs() if bytes(e["policyId"]) == pid]
    # Exactly once each: the same requests (nonces, capsules) by the same proxies.
    key = lambda e: (e["proxy"], e["nonce"], tuple(bytes(h) for h in e["capsuleHashes"]))  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, logged))
    assert {tuple(bytes(h) for h in e["capsuleHashes"]) for e in again} == {
        tuple(capsule_hash(e.capsule_bytes) for e in entries)
    }
