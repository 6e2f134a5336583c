"""Gas per emrshare contract operation vs the issue's budgets and vs published peer designs.

Starts its own anvil (``running_node``), deploys the contracts and measures real
transactions: index entries sealed by ``emrshare.crypto`` (``IndexEntry.create`` +
``seal_entry``: the real size the code writes, printed in the header and as ``entry_bytes``;
``--entry-bytes N`` uses random entries of N bytes instead), grants to 3 proxies with
threshold 2 carrying the sealed kfrags and grantee map that ``emrshare.crypto.make_grant``
really makes, bound to the on-chain policy id; writer authorizations carry a real sealed
payload; access requests and answers are really sealed (``seal_request``, ``seal_answer``);
audit entries carry the grantee's real EIP-712 signature of the ProxyRequest the proxy
served.

The drug rows (issue 17) register a batch (and a serialized one of 1,024 units: its
Merkle root), ship with waybill and invoice digests, confirm, dispense by quantity and one
serialized unit with its 10-hash proof, recall, and send 256 recall notices.

The emergency rows (issue 15) opt in 3 categories to the 3 proxies with real kfrags to
the consortium emergency key, declare with a justification really sealed to the patient, and
log one proxy serve.

Then every patient operation twice in the same run, on twin patients in the same state:
sent directly by a funded patient, and signed by an unfunded patient and relayed through
the PatientForwarder (issue 13: a relayer's ``execute`` carries it); the table shows the
gas of both and the relay's overhead. The last line is one JSON object, whose headline
keys are issue 19's: ``entry_bytes`` (goal ≤ 350), ``single_append`` (≤ 55,000),
``first_append`` (a fresh patient's, ≤ 65,000) and ``batch50_per_record`` (≤ 14,000).
The exit status is 1 while any budget is missed.

    .venv/bin/python benchmarks/gas_report.py [--json] [--entry-bytes 350]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import replace

from eth_account import Account
from web3 import Web3

from emrshare.chain import (
    AccessEntry,
    AccessRequested,
    Action,
    BatchRegistered,
    Capability,
    ChainClient,
    ClaimFiled,
    Contracts,
    Deployment,
    EmergencyDeclared,
    EmergencyOptInParams,
    GrantCreated,
    GrantParams,
    ParticipantKey,
    PrescriptionIssued,
    ProposalCreated,
    ReaderKey,
    Role,
    Shipped,
    StudyPublished,
    batch_id_of,
    deploy_contracts,
    link_of,
    policy_id,
)
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient
from emrshare.crypto.entry import IndexEntry, seal_entry
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.grants import make_grant
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.requests import AccessAnswer, AccessRequestBody, seal_answer, seal_request
from emrshare.crypto.sealing import seal
from emrshare.crypto.writers import seal_writer_authorization
from emrshare.devnet import dev_private_keys, running_node
from emrshare.trace import SerialList, gtin14
from emrshare.types import Cid, PolicyId, RecordId

BATCH = 50
CID = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")

#: The index entry on chain (issue #19): the real sealed entry the code writes.
ENTRY_GOAL = 350

BUDGETS = {
    "single append": 55_000,  # issue 19, at the real entry size
    "first append (fresh patient)": 65_000,
    "batch append of 50, per record": 14_000,
    "grant (3 proxies, M=2)": 200_000,
    "revoke": 40_000,
    "audit log of one served access": 40_000,
    "rx issue": 80_000,  # issue 15
    "rx dispense": 50_000,
    "study join": 65_000,  # issue 16
    "drug ship": 60_000,  # issue 17
    "drug dispense": 50_000,
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
        default=0,
        help="random entries of this size instead of real sealed ones (the issue fixed 350)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only the JSON line (entry_bytes, single_append, first_append, …)",
    )
    args = parser.parse_args()
    entry_bytes = args.entry_bytes
    keys = dev_private_keys(12)
    deployer, patient_key, hospital_key, clinic_key = keys[0], keys[1], keys[2], keys[3]
    proxy_keys = keys[4:7]
    insurer_key = keys[7]
    with running_node("anvil") as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        dep = deploy_contracts(w3, deployer)
        c = Contracts.from_deployment(ChainClient(w3, deployer), dep)
        patient = c.with_client(ChainClient(w3, patient_key))
        hospital = c.with_client(ChainClient(w3, hospital_key))
        clinic = c.with_client(ChainClient(w3, clinic_key))
        insurer = c.with_client(ChainClient(w3, insurer_key))
        proxies = [ChainClient(w3, k) for k in proxy_keys]
        p_addr = patient.grants.client.address
        h_addr = hospital.grants.client.address
        assert p_addr and h_addr and clinic.grants.client.address
        patient_keys = PatientKeys(os.urandom(32), ethereum_key=patient_key)
        hospital_keys = MemberKeys.generate(ethereum_key=hospital_key)
        clinic_keys = MemberKeys.generate(ethereum_key=clinic_key)
        insurer_keys = MemberKeys.generate(ethereum_key=insurer_key)
        proxy_members = [MemberKeys.generate(ethereum_key=k) for k in proxy_keys]

        def admit(client: ChainClient, member: MemberKeys, role: Role, endpoint: str = "") -> None:
            c.with_client(client).registry.apply(
                member.receiving_public_key.to_compressed_bytes(),
                bytes(member.box_public_key),
                endpoint,
            )
            r = c.registry.propose(Action.ADMIT, str(client.address), role)
            c.registry.execute(r.event(ProposalCreated).proposal_id)

        for pc, pm in zip(proxies, proxy_members, strict=True):
            admit(pc, pm, Role.PROXY, f"http://{pc.address}.proxy")
        admit(hospital.grants.client, hospital_keys, Role.PROVIDER)
        admit(clinic.grants.client, clinic_keys, Role.PROVIDER)
        admit(insurer.grants.client, insurer_keys, Role.INSURER)
        pharmacy = c.with_client(ChainClient(w3, keys[9]))
        admit(pharmacy.grants.client, MemberKeys.generate(ethereum_key=keys[9]), Role.PHARMACY)
        pub = patient_keys.public_keys()
        patient.profiles.register(pub.verifying_key_bytes, pub.box_key_bytes)
        tag = patient_keys.tag("lab-results", 0)
        other = patient_keys.tag("imaging", 0)

        def writer_payload(member: MemberKeys, category: str, epoch: int = 0) -> bytes:
            return seal_writer_authorization(patient_keys, member.public_keys(), category, epoch)

        figures: dict[str, int] = {}
        sizes: dict[str, int] = {}
        serial = iter(range(1_000_000))

        def entry(category: str = "lab-results") -> bytes:
            if entry_bytes:
                return os.urandom(entry_bytes)
            body = os.urandom(64)
            made = IndexEntry.create(
                patient=p_addr,
                record_id=RecordId(hashlib.sha256(b"%d" % next(serial)).digest()),
                cid=CID,
                data_key=DataKey.generate(),
                plaintext_sha256=hashlib.sha256(body).digest(),
                size=48_213,
                media_type="application/fhir+json",
                category=category,
                epoch=0,
                created_at=int(time.time()),
                author_key=hospital_key,
            )
            sealed = bytes(seal_entry(made, patient_keys.category_public_key(category, 0)))
            sizes["entry"] = len(sealed)
            return sealed

        # The patient authorizes the hospital; the first append of a (patient, writer, tag)
        # and of a patient pays for fresh slots, so steady state is measured after a warm-up.
        patient.index.authorize_writer(tag, h_addr, writer_payload(hospital_keys, "lab-results"))
        figures["authorize writer"] = patient.index.authorize_writer(
            other, h_addr, writer_payload(hospital_keys, "imaging")
        ).gas_used
        figures["first append (fresh patient)"] = hospital.index.append(
            p_addr, tag, 0, entry()
        ).gas_used
        figures["single append"] = hospital.index.append(p_addr, tag, 1, entry()).gas_used
        r = hospital.index.append_batch(p_addr, tag, 2, [entry() for _ in range(BATCH)])
        figures["batch append of 50 (total)"] = r.gas_used
        figures["batch append of 50, per record"] = r.gas_used // BATCH
        r100 = hospital.index.append_batch(p_addr, other, 0, [entry("imaging") for _ in range(100)])
        figures["batch append of 100 (total)"] = r100.gas_used

        def params(grantee: str, grant_tag: bytes = tag) -> GrantParams:
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
                tag=grant_tag,
                expiry=w3.eth.get_block("latest")["timestamp"] + 365 * 86400,
                proxies=[str(p.address) for p in proxies],
                threshold=2,
                sealed_kfrags=list(made.sealed_kfrags),
                sealed_grantee_map=made.sealed_grantee_map,
            )

        first = patient.grants.grant(params(h_addr))
        figures["first grant of a patient"] = first.gas_used
        g = patient.grants.grant(params(h_addr))
        figures["grant (3 proxies, M=2)"] = g.gas_used
        # A grant scoped to records (one prescription; a claim's records): + one slot and
        # the ids in the event.
        for n in (1, 10):
            scoped = replace(params(h_addr), records=sorted(os.urandom(32) for _ in range(n)))
            figures[f"grant scoped to {n} record(s)"] = patient.grants.grant(scoped).gas_used
        policy = g.event(GrantCreated).policy_id
        figures["revoke"] = patient.grants.revoke(policy).gas_used
        figures["revoke all grants of a tag (revokeTag)"] = patient.grants.revoke_tag(tag).gas_used
        # A new epoch: both writers move to the new tag in one transaction.
        patient.index.authorize_writer(
            tag, str(clinic.grants.client.address), writer_payload(clinic_keys, "lab-results")
        )
        new_tag = patient_keys.tag("lab-results", 1)
        figures["rekeyWriters (2 writers)"] = patient.index.rekey_writers(
            tag,
            new_tag,
            [h_addr, str(clinic.grants.client.address)],
            [
                writer_payload(hospital_keys, "lab-results", 1),
                writer_payload(clinic_keys, "lab-results", 1),
            ],
        ).gas_used
        live = patient.grants.grant(params(h_addr, new_tag)).event(GrantCreated).policy_id

        def served(proxy: ChainClient, pid: PolicyId) -> AccessEntry:
            block = w3.eth.get_block("latest")
            caps = [os.urandom(32)]
            nonce, deadline = int.from_bytes(os.urandom(8), "big"), block["timestamp"] + 300
            digest = hospital.grants.hash_proxy_request(
                str(proxy.address), pid, caps, nonce, deadline
            )
            signature = bytes(Account.unsafe_sign_hash(digest, hospital_key).signature)
            return AccessEntry(
                caps, nonce, deadline, block["number"], block["timestamp"], signature
            )

        plist = [str(p.address) for p in proxies]
        audit = c.with_client(proxies[0]).audit
        one = audit.log_accesses(live, h_addr, plist, [served(proxies[0], live)])
        figures["audit log of one served access"] = one.gas_used
        ten = audit.log_accesses(live, h_addr, plist, [served(proxies[0], live) for _ in range(10)])
        figures["audit log of 10 served accesses (total)"] = ten.gas_used
        figures["audit log of 10, per access"] = ten.gas_used // 10
        i_addr = str(insurer.grants.client.address)
        body = AccessRequestBody(p_addr, i_addr, "lab-results", "HPAYMT", "claim 2291", 0)
        req = insurer.grants.request_access(p_addr, seal_request(pub.box_key, body))
        figures["requestAccess (sealed)"] = req.gas_used
        answer = AccessAnswer(
            req.event(AccessRequested).request_id, p_addr, i_addr, "denied", (), 0
        )
        blob = seal_answer(
            answer,
            requester_box_key=insurer_keys.public_keys().box_key,
            patient_box_key=pub.box_key,
        )
        sizes["request"], sizes["answer"] = len(seal_request(pub.box_key, body)), len(blob)
        figures["answerRequest (sealed)"] = patient.grants.answer_request(
            answer.request_id, blob
        ).gas_used

        commitment, reader = os.urandom(32), ReaderKey(os.urandom(32))
        until = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86_400
        issued = hospital.prescriptions.issue(commitment, reader.address, until, 2)
        figures["rx issue"] = issued.gas_used
        rx = bytes(issued.event(PrescriptionIssued).prescription_id)
        figures["rx review"] = clinic.prescriptions.review(
            rx, _read(reader, clinic, rx, "review")
        ).gas_used
        proof = _read(reader, pharmacy, rx, "dispense")
        figures["rx dispense"] = pharmacy.prescriptions.dispense(rx, proof).gas_used
        figures["rx dispense (last fill)"] = pharmacy.prescriptions.dispense(rx, proof).gas_used
        figures["rx cancel"] = hospital.prescriptions.cancel(_issued(hospital, until)).gas_used
        # Research studies (issue 16): publish, a join by a participant key's proof (sent by
        # the study's service, here the hospital), a release crediting that participant.
        researcher_client = ChainClient(w3, dev_private_keys(12)[10])
        admit(researcher_client, MemberKeys.generate(), Role.RESEARCHER)
        researcher = c.with_client(researcher_client)
        published = researcher.studies.publish(
            os.urandom(32), os.urandom(32), os.urandom(32), until, h_addr, ["lab-results"]
        )
        figures["study publish"] = published.gas_used
        sid = bytes(published.event(StudyPublished).study_id)
        participant = ParticipantKey(os.urandom(32))
        join_proof = participant.join_proof(sid, 0, w3.eth.chain_id, c.studies.address)
        figures["study join"] = hospital.studies.join(sid, participant.address, join_proof).gas_used
        figures["study release (1 participant)"] = hospital.studies.release(
            sid, str(CID), os.urandom(32), 120, [participant.address], 10
        ).gas_used
        # Insurance claims (issue 16): file 3 records and 2 billed prescriptions, the
        # patient's consent (a grant scoped to exactly those records, then the link) and
        # a partial approval with its settlement event.
        claim_records = sorted(os.urandom(32) for _ in range(3))
        filed = hospital.claims.file(
            p_addr, i_addr, new_tag, os.urandom(32), 125_000, claim_records, [rx, os.urandom(32)]
        )
        figures["claim file (3 records, 2 items)"] = filed.gas_used
        claim = bytes(filed.event(ClaimFiled).claim_id)
        scoped_grant = patient.grants.grant(replace(params(i_addr, new_tag), records=claim_records))
        link = patient.claims.consent(claim, scoped_grant.event(GrantCreated).policy_id, plist)
        figures["claim consent: scoped grant + link (total)"] = (
            scoped_grant.gas_used + link.gas_used
        )
        figures["claim consent: link alone"] = link.gas_used
        figures["claim adjudicate (partial, with settlement)"] = insurer.claims.adjudicate(
            claim, 100_000, 5
        ).gas_used
        figures.update(_drug_rows(c, w3, keys[11], pharmacy))
        # Emergency access (issue 15): an opt-in of 3 categories through the 3 proxies (real
        # kfrags to the consortium emergency key, one make_grant and sealed map per category
        # epoch: a new patient's epoch 0 and the next, as Patient.emergency.opt_in does), a
        # declaration with sealed justifications, and one proxy's log of a serve.
        emergency_keys = MemberKeys.generate()
        c.emergency.set_emergency_keys(
            emergency_keys.receiving_public_key.to_compressed_bytes(),
            bytes(emergency_keys.box_public_key),
        )
        r = c.registry.propose_capabilities(h_addr, Capability.EMERGENCY)
        c.registry.execute(r.event(ProposalCreated).proposal_id)
        kfrags: list[bytes] = []
        maps: list[bytes] = []
        emergency_tags = []
        for category, epoch in [
            (c, e) for c in ("allergies", "medications", "conditions") for e in (0, 1)
        ]:
            made = make_grant(
                patient_keys,
                category=category,
                epoch=epoch,
                policy_id=PolicyId(hashlib.sha256(f"{category}/{epoch}".encode()).digest()),
                grantee=emergency_keys.public_keys(),
                proxies=[pm.public_keys() for pm in proxy_members],
                threshold=2,
            )
            kfrags += made.sealed_kfrags
            maps.append(made.sealed_grantee_map)
            emergency_tags.append(patient_keys.tag(category, epoch))
        opt = EmergencyOptInParams(emergency_tags, 86400, plist, 2, kfrags, maps)
        figures["emergency opt-in"] = patient.emergency.opt_in(opt).gas_used
        why = b"unconscious on arrival, allergy check before anaesthesia"
        sealed_why = seal(pub.box_key, b"EMRJ", why)
        decl = hospital.emergency.declare(p_addr, 1, sealed_why, sealed_why)
        figures["emergency declare"] = decl.gas_used
        did = decl.event(EmergencyDeclared).declaration_id
        figures["emergency serve log"] = (
            c.with_client(proxies[0])
            .emergency.log_access(
                did,
                plist,
                emergency_tags[0],
                [os.urandom(32)],
                served_at=hospital.emergency.declaration(did).declared_at,
            )
            .gas_used
        )

        relayed = relayed_overhead(
            w3,
            dep,
            relayer_key=keys[8],
            hospital=(h_addr, hospital_keys),
            insurer=(insurer, insurer_keys),
            proxies=proxy_members,
            entry_size=sizes.get("entry", entry_bytes or 450),
        )

    real_stdout = sys.stdout
    if args.json:
        sys.stdout = io.StringIO()  # the tables are left out; the JSON line is printed
    kind = "random" if entry_bytes else "real sealed"
    entry_size = sizes.get("entry", entry_bytes)
    print(
        f"emrshare gas on {node.kind} (shanghai), {kind} entry {entry_size}"
        f" B, 3 proxies M=2, sealed kfrag {sizes['kfrag']} B, grantee map {sizes['map']} B, "
        f"sealed request {sizes['request']} B, sealed answer {sizes['answer']} B"
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
    log_gas = figures["audit log of one served access"]
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
    print()
    print("Patient operations sent directly vs signed by the patient and relayed")
    print(f"(goal: overhead <= {RELAY_GOAL:.0%}):")
    print()
    print(f"| {'patient operation':<26} | {'direct':>9} | {'relayed':>9} | {'overhead':>8} |")
    print(f"|{'-' * 28}|{'-' * 11}|{'-' * 11}|{'-' * 10}|")
    for name, (direct, via) in relayed.items():
        print(f"| {name:<26} | {direct:>9,} | {via:>9,} | {(via - direct) / direct:>8.1%} |")
    over_goal = [n for n, (d, v) in relayed.items() if (v - d) / d > RELAY_GOAL]
    total_d = sum(d for d, _ in relayed.values())
    total_v = sum(v for _, v in relayed.values())
    print()
    print(
        f"all {len(relayed)} operations: {total_d:,} direct, {total_v:,} relayed "
        f"({(total_v - total_d) / total_d:.1%}); over the {RELAY_GOAL:.0%} goal: "
        + (", ".join(over_goal) or "none")
    )
    over = [n for n, b in BUDGETS.items() if figures[n] > b]
    if over:
        print("over budget: " + ", ".join(over))
    if entry_size > ENTRY_GOAL:
        over.append(f"entry bytes ({entry_size} > {ENTRY_GOAL})")
        print(f"the sealed index entry is {entry_size} B; the goal is <= {ENTRY_GOAL} B")
    result = {
        "benchmark": "gas_report",
        "entry_bytes": entry_size,
        "single_append": figures["single append"],
        "first_append": figures["first append (fresh patient)"],
        "batch50_per_record": figures["batch append of 50, per record"],
        "node": node.kind,
        "gas": figures,
        "relayed": {
            n: {"direct": d, "relayed": v, "overhead_pct": round(100 * (v - d) / d, 1)}
            for n, (d, v) in relayed.items()
        },
        "relayed_overhead_pct_total": round(100 * (total_v - total_d) / total_d, 1),
        "relayed_over_goal": over_goal,
        "over_budget": over,
    }
    sys.stdout = real_stdout
    print(json.dumps(result, sort_keys=True))
    return 1 if over else 0


def _drug_rows(c: Contracts, w3: Web3, maker_key: bytes, pharmacy: Contracts) -> dict[str, int]:
    """Issue 17's DrugTrace operations, by a manufacturer, a distributor (a fresh account
    the node's first account funds) and a pharmacy."""
    dist_key = os.urandom(32)
    w3.eth.send_transaction(
        {
            "from": w3.eth.accounts[0],
            "to": Account.from_key(dist_key).address,
            "value": Web3.to_wei(10, "ether"),
        }
    )
    maker = c.with_client(ChainClient(w3, maker_key))
    dist = c.with_client(ChainClient(w3, dist_key))
    for who, role in ((maker, Role.MANUFACTURER), (dist, Role.DISTRIBUTOR)):
        who.registry.apply(os.urandom(33), os.urandom(32), "")
        r = c.registry.propose(Action.ADMIT, str(who.registry.client.address), role)
        c.registry.execute(r.event(ProposalCreated).proposal_id)
    out: dict[str, int] = {}
    gtin, until = gtin14("09506000134352"), int(time.time()) + 365 * 86_400
    r = maker.drug_trace.register_batch(gtin, "L1", until, 10_000, "pack", os.urandom(32))
    out["drug register batch"] = r.gas_used
    batch = bytes(r.event(BatchRegistered).batch_id)
    serials = SerialList.of(f"SN{i:06d}" for i in range(1024))
    out["drug register serialized (1,024 units)"] = maker.drug_trace.register_batch(
        gtin, "L2", until, 1024, "pack", os.urandom(32), serials.root, 1024
    ).gas_used
    serialized = batch_id_of(gtin, "L2")

    def move(src: Contracts, dst: Contracts, bid: bytes, qty: int, name: str) -> None:
        r = src.drug_trace.ship(
            str(dst.drug_trace.client.address), bid, qty, os.urandom(32), os.urandom(32)
        )
        out.setdefault(name, r.gas_used)
        got = dst.drug_trace.confirm_receipt(bytes(r.event(Shipped).shipment_id), qty)
        out.setdefault(name.replace("ship", "receive"), got.gas_used)

    move(maker, dist, batch, 5_000, "drug ship")
    move(dist, pharmacy, batch, 1_000, "drug ship (distributor to pharmacy)")
    move(maker, pharmacy, serialized, 1024, "drug ship (serialized)")
    out["drug dispense"] = pharmacy.drug_trace.dispense(batch, 2, link_of(os.urandom(32))).gas_used
    proof = serials.proof(700)
    out[f"drug dispense one unit ({len(proof)}-hash proof)"] = pharmacy.drug_trace.dispense_unit(
        serialized, 700, "SN000700", proof, link_of(os.urandom(32))
    ).gas_used
    out["drug recall"] = maker.drug_trace.recall(batch, os.urandom(32)).gas_used
    links = [link_of(os.urandom(32)) for _ in range(256)]
    out["drug recall notices (256 links)"] = maker.drug_trace.notify_recall(batch, links).gas_used
    return out


def _issued(c: Contracts, until: int) -> bytes:
    """A new prescription of ``c``'s account (a provider), valid until ``until``."""
    r = c.prescriptions.issue(os.urandom(32), ReaderKey(os.urandom(32)).address, until, 1)
    return bytes(r.event(PrescriptionIssued).prescription_id)


def _read(reader: ReaderKey, c: Contracts, rx: bytes, kind: str) -> bytes:
    """The reader key's proof for ``c``'s account to review or dispense ``rx``."""
    sign = reader.review_proof if kind == "review" else reader.dispense_proof
    p = c.prescriptions
    return sign(rx, p.client.address or "", p.client.chain_id, p.address)


#: Issue 13's goal for the gas a relayed patient operation costs over its direct form.
RELAY_GOAL = 0.15


def relayed_overhead(
    w3: Web3,
    dep: Deployment,
    *,
    relayer_key: bytes,
    hospital: tuple[str, MemberKeys],
    insurer: tuple[Contracts, MemberKeys],
    proxies: list[MemberKeys],
    entry_size: int,
) -> dict[str, tuple[int, int]]:
    """(direct gas, relayed gas) of each patient operation. Twin patients do the same
    operations in the same order with the same sizes: one funded and sending itself, one
    holding no ETH whose signed requests a relayer (a hospital's funded key) sends."""
    direct_key, relayed_key = os.urandom(32), os.urandom(32)
    funder = ChainClient(w3, relayer_key)
    funder.send(Account.from_key(direct_key).address, value=10**18, with_logs=False)
    fwd = dep.address_of("PatientForwarder")
    forwarding = ForwardingClient(
        ChainClient(w3),
        relayed_key,
        Account.from_key(relayed_key).address,
        fwd,
        DirectSubmitter(funder, fwd),
    )
    twins = [
        (PatientKeys(os.urandom(32), ethereum_key=direct_key), ChainClient(w3, direct_key)),
        (PatientKeys(os.urandom(32), ethereum_key=relayed_key), forwarding),
    ]
    assert w3.eth.get_balance(forwarding.patient) == 0
    entry = os.urandom(entry_size)
    direct, via = (
        _patient_ops(w3, dep, keys, client, hospital, insurer, proxies, entry)
        for keys, client in twins
    )
    assert w3.eth.get_balance(forwarding.patient) == 0, "the relayed patient spent nothing"
    return {name: (direct[name], via[name]) for name in direct}


def _patient_ops(
    w3: Web3,
    dep: Deployment,
    keys: PatientKeys,
    client: ChainClient,
    hospital: tuple[str, MemberKeys],
    insurer: tuple[Contracts, MemberKeys],
    proxies: list[MemberKeys],
    entry: bytes,
) -> dict[str, int]:
    """The gas of each patient operation, sent through ``client``."""
    h_addr, h_keys = hospital
    ins, ins_keys = insurer
    i_addr = str(ins.grants.client.address)
    c = Contracts.from_deployment(client, dep)
    me, pub = keys.address, keys.public_keys()

    def grant_params() -> GrantParams:
        nonce = os.urandom(32)
        made = make_grant(
            keys,
            category="lab-results",
            epoch=0,
            policy_id=policy_id(me, nonce),
            grantee=h_keys.public_keys(),
            proxies=[pm.public_keys() for pm in proxies],
            threshold=2,
        )
        return GrantParams(
            nonce=nonce,
            grantee=h_addr,
            tag=keys.tag("lab-results", 0),
            expiry=w3.eth.get_block("latest")["timestamp"] + 365 * 86400,
            proxies=[str(pm.address) for pm in proxies],
            threshold=2,
            sealed_kfrags=list(made.sealed_kfrags),
            sealed_grantee_map=made.sealed_grantee_map,
        )

    def request(decision: str, policies: tuple[PolicyId, ...]) -> tuple[int, bytes]:
        body = AccessRequestBody(me, i_addr, "lab-results", "HPAYMT", "claim 2291", 0)
        r = ins.grants.request_access(me, seal_request(pub.box_key, body))
        rid = r.event(AccessRequested).request_id
        made = AccessAnswer(rid, me, i_addr, decision, policies, 0)
        box = ins_keys.public_keys().box_key
        return rid, seal_answer(made, requester_box_key=box, patient_box_key=pub.box_key)

    lab, own = keys.tag("lab-results", 0), keys.tag("vitals", 0)
    payload = seal_writer_authorization(keys, h_keys.public_keys(), "lab-results", 0)
    gas: dict[str, int] = {}
    gas["register"] = c.profiles.register(pub.verifying_key_bytes, pub.box_key_bytes).gas_used
    gas["authorize writer"] = c.index.authorize_writer(lab, h_addr, payload).gas_used
    gas["deauthorize writer"] = c.index.revoke_writer(lab, h_addr).gas_used
    c.grants.grant(grant_params())  # a patient's first grant creates its list: warm up
    g = c.grants.grant(grant_params())
    gas["grant (3 proxies, M=2)"] = g.gas_used
    gas["revoke"] = c.grants.revoke(g.event(GrantCreated).policy_id).gas_used
    gas["revoke tag"] = c.grants.revoke_tag(lab).gas_used
    kept = c.grants.grant(grant_params()).event(GrantCreated).policy_id
    rid, blob = request("approved", (kept,))
    gas["answer request (approve)"] = c.grants.answer_request(rid, blob).gas_used
    rid, blob = request("denied", ())
    gas["deny"] = c.grants.answer_request(rid, blob).gas_used
    c.index.append(me, own, 0, entry)  # the first append of a stream creates it
    gas["own append"] = c.index.append(me, own, 1, entry).gas_used
    return gas


if __name__ == "__main__":
    sys.exit(main())
