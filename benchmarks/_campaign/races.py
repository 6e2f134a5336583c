"""Section ``races``: revocation against reads, both orders in one block, automine off.

On anvil and on ganache, with automine off (anvil: ``evm_setAutomine false``; ganache
7.9.2 has no such method, so ``miner_stop`` / ``miner_start``), a grantee reads while
the patient's ``revoke`` waits in the pool, in two orders:

- *revoke first*: the revoke is sent, then the read is served (evaluated at the last
  mined block, before the revoke) and its audit transactions join the pool behind it;
- *log first*: the read is served and the proxies' audit transactions reach the pool,
  then the revoke is sent behind them.

One ``evm_mine`` puts them in one block; the grantee reads again at once (the proxies
have not polled yet). A read served for a request evaluated at or after the revoke's
block counts in ``served_after_revoke``: client-side (the read after the mine
succeeded), in the proxies' journals (a serve at block >= revoke block) and on chain
(an ``AccessLogged`` with ``evaluatedAt >= revokedAt``).
"""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account
from web3 import Web3

from emrshare.chain import AccessLogged
from emrshare.chain.artifacts import load_artifact
from emrshare.errors import EmrShareError

from .world import World, section_world

Result = tuple[dict[str, int], list[list[str]], list[str]]
#: Trials per (node, order): (full, quick).
TRIALS = (2, 1)
ORDERS = ("revoke first", "log first")


def _automine(w: World, on: bool) -> None:
    try:
        w.rpc("evm_setAutomine", [on])
    except Exception:
        w.rpc("miner_start" if on else "miner_stop", [])


def _send_revoke(w: World, patient: Any, policy_id: bytes, *, first: bool) -> bytes:
    """The patient's revoke, signed here and sent raw: it waits in the pool. Nodes order
    a block by fee: ``first`` pays ten times the gas price, otherwise the base fee only
    (no tip), behind the proxies' audit transactions."""
    w3 = w.net.w3
    grants = w3.eth.contract(
        address=Web3.to_checksum_address(w.deployment.address_of("Grants")),
        abi=load_artifact("Grants").abi,
    )
    acct = Account.from_key(patient.keys.ethereum_key)
    tx = grants.functions.revoke(policy_id).build_transaction(
        {
            "from": acct.address,
            "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
            "gas": 300_000,
            "gasPrice": 10 * int(w3.eth.gas_price)
            if first
            else int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or w3.eth.gas_price),
            "chainId": w.deployment.chain_id,
        }
    )
    signed = acct.sign_transaction(tx)
    return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))


def _wait_pool(w: World, timeout: float = 20.0) -> bool:
    """Until every proxy with a journaled serve has its audit batch sent (pending)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.health()["audit_backlog"] == 0 for p in w.proxies if p.running) and any(
            p.health()["audit_pending_batches"] for p in w.proxies
        ):
            return True
        time.sleep(0.1)
    return False


def _read(w: World, patient: str, record: Any, body: bytes) -> bool:
    try:
        return w.insurer.read(patient, record) == body
    except EmrShareError:
        return False


def _trial(w: World, order: str, name: str) -> dict[str, int]:
    patient, record, body = w.patient_with_record(name)
    (grant,) = patient.grants()
    pid = bytes(grant.policy_id)
    out = {"served_before": 0, "after_client": 0, "same_block": 0, "log_first": 0}
    _automine(w, False)
    try:
        if order == "revoke first":
            tx = _send_revoke(w, patient, pid, first=True)
            out["served_before"] = int(_read(w, patient.address, record, body))
            _wait_pool(w)
        else:
            out["served_before"] = int(_read(w, patient.address, record, body))
            _wait_pool(w)
            tx = _send_revoke(w, patient, pid, first=False)
        w.rpc("evm_mine", [])
        out["after_client"] = int(_read(w, patient.address, record, body))
    finally:
        _automine(w, True)
    receipt = w.net.w3.eth.wait_for_transaction_receipt(tx, timeout=60)  # type: ignore[arg-type]
    revoked_at = int(receipt["blockNumber"])
    w.sync_proxies()
    w.drain()
    out["after_client"] += int(_read(w, patient.address, record, body))  # later: still refused
    logs = [e for e in w.net.contracts.audit.events(AccessLogged) if bytes(e.policy_id) == pid]
    out["after_chain"] = sum(1 for e in logs if e.evaluated_at >= revoked_at)
    out["after_journal"] = sum(
        int(p.query(f"SELECT count(*) FROM journal WHERE block >= {revoked_at} AND "
                    f"policy_id = x'{pid.hex()}'")[0][0])
        for p in w.proxies
    )  # fmt: skip
    same = [e for e in logs if e.block_number == revoked_at]
    out["same_block"] = int(bool(same))
    if same:
        out["log_first"] = int(
            min(int(w.net.w3.eth.get_transaction(e.tx_hash)["transactionIndex"]) for e in same)
            < int(receipt["transactionIndex"])
        )
    out["logged"] = len(logs)
    return out


def races(opts: Any) -> Result:
    trials = TRIALS[1] if opts.quick else TRIALS[0]
    rows: list[list[str]] = []
    counters = {"served_after_revoke": 0, "race_trials": 0, "race_served_before_revoke": 0}
    notes: list[str] = []
    # --quick: anvil only (ganache's world alone takes longer than the rest of a slice)
    for kind in ("anvil",) if opts.quick else ("anvil", "ganache"):
        with section_world(f"emrshare-races-{kind}-", kind) as w:  # type: ignore[arg-type]
            for order in ORDERS:
                agg: dict[str, int] = {}
                for i in range(trials):
                    res = _trial(w, order, f"{order.replace(' ', '-')}-{i}")
                    for k, v in res.items():
                        agg[k] = agg.get(k, 0) + v
                after = agg["after_client"] + agg["after_chain"] + agg["after_journal"]
                counters["served_after_revoke"] += after
                counters["race_trials"] += trials
                counters["race_served_before_revoke"] += agg["served_before"]
                rows.append([
                    f"{kind}: {order}", str(trials), str(agg["served_before"]),
                    str(agg["logged"]), str(agg["same_block"]), str(agg["log_first"]), str(after),
                ])  # fmt: skip
    notes.append(
        "served before = reads served while the revoke waited in the pool (evaluated at "
        "the block before it: allowed); same block = trials whose audit entries were mined "
        "in the revoke's block; log first = of those, the audit transaction came first"
    )
    return counters, rows, notes
