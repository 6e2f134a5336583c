"""Gas per emrshare contract operation vs the issue's budgets and vs published peer designs.

Starts its own anvil (``running_node``), deploys the contracts and measures real
transactions: a 350-byte sealed index entry (the issue's fixed size), and grants to 3
proxies with threshold 2 carrying the sealed kfrags and grantee map that
``emrshare.crypto.make_grant`` really makes (~627 and ~300 bytes), bound to the on-chain
policy id; writer authorizations carry a real sealed payload.

    .venv/bin/python benchmarks/gas_report.py [--entry-bytes 450]
"""

from __future__ import annotations

import argparse
import os
import sys

from web3 import Web3

from emrshare.chain import (
    AccessEntry,
    Action,
    ChainClient,
    Contracts,
    GrantCreated,
    GrantParams,
    Role,
    deploy_contracts,
    policy_id,
)
from emrshare.chain.devnode import dev_private_keys, running_node
from emrshare.crypto.grants import make_grant
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.writers import seal_writer_authorization

ENTRY_BYTES = 350
BATCH = 50

BUDGETS = {
    "single append": 60_000,
    "batch append of 50, per record": 15_000,
    "grant (3 proxies, M=2)": 200_000,
    "revoke": 40_000,
    "audit log of one served batch": 40_000,
}

# Two public EHR-sharing designs, as quoted in the issue (anvil 1.7.1, solc 0.8.30).
PEERS = {
    "add record": (162_277, 213_694),
    "grant, per record": (98_629, 169_567),
    "revoke, per record": (28_763, 54_495),
    "access log": (28_551, 37_252),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entry-bytes",
        type=int,
        default=ENTRY_BYTES,
        help="sealed entry size (the issue fixes 350; emrshare.crypto makes ~440-455)",
    )
    entry_bytes = parser.parse_args().entry_bytes
    keys = dev_private_keys(6)
    deployer, patient_key, hospital_key = keys[0], keys[1], keys[2]
    proxy_keys = keys[3:6]
    with running_node("anvil") as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        dep = deploy_contracts(w3, deployer)
        c = Contracts.from_deployment(ChainClient(w3, deployer), dep)
        patient = c.with_client(ChainClient(w3, patient_key))
        hospital = c.with_client(ChainClient(w3, hospital_key))
        proxies = [ChainClient(w3, k) for k in proxy_keys]
        p_addr = patient.grants.client.address
        h_addr = hospital.grants.client.address
        assert p_addr and h_addr
        patient_keys = PatientKeys(os.urandom(32), ethereum_key=patient_key)
        hospital_keys = MemberKeys.generate(ethereum_key=hospital_key)
        proxy_members = [MemberKeys.generate(ethereum_key=k) for k in proxy_keys]
        for pc, pm in zip(proxies, proxy_members, strict=True):
            pr = c.with_client(pc).registry
            pr.apply(
                pm.receiving_public_key.to_compressed_bytes(),
                bytes(pm.box_public_key),
                f"http://{pc.address}.proxy",
            )
            pid = c.registry.propose(Action.ADMIT, str(pc.address), Role.PROXY).events[0]
            c.registry.execute(pid.proposal_id)
        tag = patient_keys.tag("lab-results", 0)
        other = patient_keys.tag("imaging", 0)

        def writer_payload(category: str) -> bytes:
            return seal_writer_authorization(patient_keys, hospital_keys.public_keys(), category, 0)

        figures: dict[str, int] = {}

        def entry() -> bytes:
            return os.urandom(entry_bytes)

        # The patient authorizes the hospital; the first append of a (patient, writer, tag)
        # and of a patient pays for fresh slots, so steady state is measured after a warm-up.
        patient.index.authorize_writer(tag, h_addr, writer_payload("lab-results"))
        figures["authorize writer"] = patient.index.authorize_writer(
            other, h_addr, writer_payload("imaging")
        ).gas_used
        figures["first append (fresh patient)"] = hospital.index.append(
            p_addr, tag, 0, 0, entry()
        ).gas_used
        figures["single append"] = hospital.index.append(p_addr, tag, 0, 1, entry()).gas_used
        r = hospital.index.append_batch(p_addr, tag, 0, 2, [entry() for _ in range(BATCH)])
        figures["batch append of 50 (total)"] = r.gas_used
        figures["batch append of 50, per record"] = r.gas_used // BATCH
        r100 = hospital.index.append_batch(p_addr, other, 0, 0, [entry() for _ in range(100)])
        figures["batch append of 100 (total)"] = r100.gas_used

        def params(grantee: str) -> GrantParams:
            assert grantee == h_addr
            nonce = os.urandom(32)
            made = make_grant(
                patient_keys,
                category="lab-results",
                epoch=0,
                policy_id=policy_id(p_addr, nonce),
                grantee=hospital_keys.public_keys(),
                proxies=[pm.public_keys() for pm in proxy_members],
                threshold=2,
            )
            sizes.update(kfrag=len(made.sealed_kfrags[0]), map=len(made.sealed_grantee_map))
            return GrantParams(
                nonce=nonce,
                grantee=grantee,
                tag=tag,
                epoch=0,
                expiry=w3.eth.get_block("latest")["timestamp"] + 365 * 86400,
                proxies=[str(p.address) for p in proxies],
                threshold=2,
                sealed_kfrags=list(made.sealed_kfrags),
                sealed_grantee_map=made.sealed_grantee_map,
            )

        sizes: dict[str, int] = {}

        first = patient.grants.grant(params(h_addr))
        figures["first grant of a patient"] = first.gas_used
        g = patient.grants.grant(params(h_addr))
        figures["grant (3 proxies, M=2)"] = g.gas_used
        policy = g.event(GrantCreated).policy_id
        figures["revoke"] = patient.grants.revoke(policy).gas_used
        figures["revoke all grants of a tag (epoch bump)"] = patient.grants.revoke_tag(tag).gas_used
        live = patient.grants.grant(params(h_addr)).event(GrantCreated).policy_id
        log = c.with_client(proxies[0]).audit.log_accesses(
            live,
            [str(p.address) for p in proxies],
            [AccessEntry(h_addr, os.urandom(32), 100, w3.eth.block_number)],
        )
        figures["audit log of one served batch"] = log.gas_used
        figures["request access"] = (
            c.with_client(proxies[1])
            .grants.request_access(
                p_addr, os.urandom(32), b"TREAT".ljust(32, b"\0"), os.urandom(32)
            )
            .gas_used
        )

    print(
        f"emrshare gas on {node.kind} (shanghai), entry {entry_bytes} B, 3 proxies M=2, "
        f"sealed kfrag {sizes['kfrag']} B, grantee map {sizes['map']} B"
    )
    print()
    print(f"| {'operation':<42} | {'gas':>9} | {'budget':>9} | ok |")
    print(f"|{'-' * 44}|{'-' * 11}|{'-' * 11}|----|")
    for name, gas in figures.items():
        budget = BUDGETS.get(name)
        b = f"{budget:>9,}" if budget else f"{'':>9}"
        ok = ("yes" if gas <= budget else "NO") if budget else ""
        print(f"| {name:<42} | {gas:>9,} | {b} | {ok:<2} |")
    print()
    grant = figures["grant (3 proxies, M=2)"]
    revoke = figures["revoke"]
    add = figures["single append"]
    log_gas = figures["audit log of one served batch"]
    print("Share 100 records of one category with one hospital, and revoke it:")
    print()
    print(f"| {'scenario':<34} | {'emrshare':>10} | {'peer A':>11} | {'peer B':>11} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 13}|{'-' * 13}|")
    rows = [
        ("add one record", add, PEERS["add record"]),
        (
            "add 100 records (one batch)",
            figures["batch append of 100 (total)"],
            tuple(100 * g for g in PEERS["add record"]),
        ),
        (
            "share 100 records (one grant)",
            grant,
            tuple(100 * g for g in PEERS["grant, per record"]),
        ),
        ("revoke it", revoke, tuple(100 * g for g in PEERS["revoke, per record"])),
        ("log one served access", log_gas, PEERS["access log"]),
    ]
    for name, ours, (a, b) in rows:
        print(f"| {name:<34} | {ours:>10,} | {a:>11,} | {b:>11,} |")
    print()
    print(
        f"share 100 records: {grant:,} gas = {100 * PEERS['grant, per record'][0] / grant:.0f}x / "
        f"{100 * PEERS['grant, per record'][1] / grant:.0f}x less than the peers; "
        f"revoke it: {revoke:,} gas = {100 * PEERS['revoke, per record'][0] / revoke:.0f}x / "
        f"{100 * PEERS['revoke, per record'][1] / revoke:.0f}x less"
    )
    over = [n for n, b in BUDGETS.items() if figures[n] > b]
    if over:
        print("over budget: " + ", ".join(over))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
