"""Issue #10 attacks, on a real anvil with real proxy processes: what an observer learns
from access requests, forged audit entries, expelled writers, withheld index tails, and
writers left on a revoked epoch's tag."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from emrshare.chain import (
    AccessEntry,
    AccessRequestAnswered,
    AccessRequested,
    Action,
    ChainClient,
    Contracts,
    MemberAdmitted,
    ProposalCreated,
    Role,
)
from emrshare.crypto import SealedEntry, open_entry
from emrshare.crypto.requests import SEALED_REQUEST_SIZE
from emrshare.errors import ContractRevert, IndexIntegrityError, VerificationError
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash
from emrshare.roles import Patient, Provider, Requester
from emrshare.roles._reads import MembershipCache, check_entry
from tests.integration.roles.trust_world import TrustWorld, start_world

#: 50 category names a dictionary attacker would try (all at least 5 bytes, so a chance
#: match inside random ciphertext is out of the question).
DICTIONARY = (
    "allergies", "imaging", "medications", "immunizations", "discharge", "genomics",
    "radiology", "pathology", "cardiology", "oncology", "psychiatry", "mental-health",
    "hiv-status", "substance-use", "reproductive", "pregnancy", "sexual-health",
    "dermatology", "neurology", "pediatrics", "dental", "ophthalmology", "orthopedics",
    "surgery", "anesthesia", "vitals", "notes", "progress-notes", "lab-results",
    "microbiology", "hematology", "endocrinology", "diabetes", "nephrology", "urology",
    "gastroenterology", "hepatology", "pulmonology", "rheumatology", "infectious",
    "vaccines", "prescriptions", "referrals", "insurance", "billing", "claims",
    "emergency", "icu-records", "genetic-tests", "family-history",
)  # fmt: skip
assert len(DICTIONARY) == 50 and len(set(DICTIONARY)) == 50
#: The domain the old release hashed category names under (``category_ref``).
OLD_DOMAIN = b"emrshare/access-request-category/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustWorld]:
    yield from start_world(tmp_path_factory.mktemp("trust"))


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in reply, reply
    return reply["result"]


def _raw_chain_bytes(w3: Web3, first: int, last: int) -> list[bytes]:
    """Every transaction input and every log (topics and data) in blocks first..last,
    raw from JSON-RPC."""
    out: list[bytes] = []
    for n in range(first, last + 1):
        block = _rpc(w3, "eth_getBlockByNumber", [hex(n), True])
        out += [bytes.fromhex(tx["input"][2:]) for tx in block["transactions"]]
    logs = _rpc(w3, "eth_getLogs", [{"fromBlock": hex(first), "toBlock": hex(last)}])
    for lg in logs:
        out += [bytes.fromhex(t[2:]) for t in lg["topics"]]
        out.append(bytes.fromhex(lg["data"][2:]))
    return out


def _hits(blobs: list[bytes], needles: dict[str, bytes]) -> list[str]:
    return [name for name, needle in needles.items() if any(needle in b for b in blobs)]


def test_attack_dictionary_recovers_category_from_request(world: TrustWorld) -> None:
    patient = world.new_patient("dictionary")
    reason = "prior authorisation, claim 4471, knee MRI"
    w3 = world.net.w3
    first = w3.eth.block_number + 1
    rid = world.insurer.request_access(
        patient.address, "medications", purpose="HPAYMT", reason=reason
    )
    (req,) = patient.requests()
    assert (req.category, req.purpose, req.reason) == ("medications", "HPAYMT", reason)
    patient.approve(rid, expires=timedelta(days=1))
    blobs = _raw_chain_bytes(w3, first, w3.eth.block_number)
    raw_patient = bytes.fromhex(patient.address[2:])
    needles: dict[str, bytes] = {f"name:{c}": c.encode() for c in DICTIONARY}
    needles |= {f"old-ref:{c}": keccak(OLD_DOMAIN + raw_patient + c.encode()) for c in DICTIONARY}
    needles |= {
        "reason": reason.encode(),
        "reason-hash": keccak(reason.encode()),
        "purpose": b"HPAYMT",
    }
    assert _hits(blobs, needles) == []


def test_attack_request_linked_to_policy(world: TrustWorld) -> None:
    patient = world.new_patient("linked")
    patient.authorize_writer(world.hospital.address, "imaging")
    world.hospital.add_record(patient.address, "imaging", b"x-ray", media_type="text/plain")
    first = patient.grant(world.insurer.address, "imaging", expires=timedelta(days=1))
    patient.revoke(first.policy_id)  # imaging is now at epoch 1
    rid = world.insurer.request_access(patient.address, "imaging", purpose="TREAT")
    current = patient.approve(rid, expires=timedelta(days=1))
    (mine,) = [r for r in world.insurer.my_requests() if r.request_id == rid]
    assert mine.status == "approved" and current.policy_id in mine.policy_ids
    granted = {bytes(p) for p in mine.policy_ids}
    assert len(granted) == 2, "both epochs were granted and named in the sealed answer"
    tags = {bytes(patient.keys.tag("imaging", e)) for e in (0, 1)}
    (answer,) = [
        ev
        for ev in world.net.contracts.grants.events(AccessRequestAnswered, patient=patient.address)
        if ev.request_id == rid
    ]
    w3 = world.net.w3
    tx = w3.eth.get_transaction(answer.tx_hash)  # type: ignore[arg-type]
    receipt = w3.eth.get_transaction_receipt(answer.tx_hash)  # type: ignore[arg-type]
    blobs = [bytes(tx["input"])]
    for lg in receipt["logs"]:
        blobs += [bytes(t) for t in lg["topics"]] + [bytes(lg["data"])]
    needles = {f"policy:{p.hex()}": p for p in granted} | {f"tag:{t.hex()}": t for t in tags}
    assert _hits(blobs, needles) == []


def test_attack_request_length_reveals_category(world: TrustWorld) -> None:
    patient = world.new_patient("length")
    w3 = world.net.w3
    short = world.insurer.request_access(patient.address, "lab", purpose="TREAT")
    long = world.insurer.request_access(
        patient.address, "x" * 64, purpose="HRESCH", reason="r" * 200, new_category=True
    )
    opened = {r.request_id: r for r in patient.requests()}
    assert (opened[short].category, opened[long].category) == ("lab-results", "x" * 64)
    raw = {
        ev.request_id: ev
        for ev in world.net.contracts.grants.events(AccessRequested, patient=patient.address)
    }
    # The request is one sealed box of a fixed size, whatever it asks for and why.
    assert len(bytes(raw[short].sealed_request)) == SEALED_REQUEST_SIZE
    assert len(bytes(raw[long].sealed_request)) == SEALED_REQUEST_SIZE
    inputs = [
        bytes(w3.eth.get_transaction(raw[r].tx_hash)["input"])  # type: ignore[arg-type]
        for r in (short, long)
    ]
    assert len(inputs[0]) == len(inputs[1])
    logs = [
        bytes(lg["data"])
        for r in (short, long)
        for lg in w3.eth.get_transaction_receipt(raw[r].tx_hash)["logs"]  # type: ignore[arg-type]
    ]
    assert len(logs) == 2 and len(logs[0]) == len(logs[1])


def test_attack_proxy_forged_audit_not_shown(world: TrustWorld) -> None:
    patient = world.new_patient("audit")
    patient.authorize_writer(world.hospital.address, "lab")
    record = world.hospital.add_record(patient.address, "lab", b"Hb 14", media_type="text/plain")
    grant = patient.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    world.sync_proxies()
    assert world.insurer.read(patient.address, record) == b"Hb 14"
    for p in world.proxies:
        p.wait_audit_drained()
    honest = patient.audit()
    assert honest and all(e.record_ids == (record,) for e in honest)
    assert patient.audit_anomalies() == []
    # A proxy re-sends a request it really served, with a made-up evaluation time: the
    # grantee's signature is genuine, so the contract accepts it.
    proxy = world.proxies[0]
    db = sqlite3.connect(proxy.config.database)
    row = db.execute(
        "SELECT capsule_hashes, nonce, deadline, signature, block, block_time FROM journal "
        "WHERE policy_id = ?",
        (bytes(grant.policy_id),),
    ).fetchone()
    db.close()
    assert row is not None
    forged = AccessEntry(
        capsule_hashes=[bytes.fromhex(h) for h in json.loads(row[0])],
        nonce=int(row[1]),
        deadline=int(row[2]),
        evaluated_at=int(row[4]),
        evaluated_time=int(row[5]) - 1000,
        signature=bytes(row[3]),
    )
    # A fresh client: the proxy process sends from this key too (its nonce moved on).
    client = ChainClient(world.net.w3, proxy.keys.ethereum_key)
    sender = Contracts.from_deployment(client, world.deployment).audit
    sender.log_accesses(grant.policy_id, grant.grantee, grant.proxies, [forged])
    # And it logs a read it really served a second time, unchanged.
    sender.log_accesses(
        grant.policy_id,
        grant.grantee,
        grant.proxies,
        [dataclasses.replace(forged, evaluated_time=int(row[5]))],
    )
    shown = patient.audit()
    assert len(shown) == len(honest)
    assert all(e.evaluated_time != forged.evaluated_time for e in shown)
    timed, repeated = patient.audit_anomalies()
    assert timed.evaluated_time == forged.evaluated_time and "not the time" in timed.anomaly
    assert timed.record_ids is None
    assert repeated.evaluated_time == int(row[5]) and "repeat" in repeated.anomaly


def _remove(world: TrustWorld, account: str) -> None:
    registry = world.net.contracts_for(world.admin_key).registry
    pid = registry.propose(Action.REMOVE, account).event(ProposalCreated).proposal_id
    proposal = registry.proposal(pid)
    if not proposal.executed:
        registry.execute(pid)


def test_attack_expelled_writer_record_rejected_by_reader(world: TrustWorld) -> None:
    patient = world.new_patient("expelled")
    writer: Provider = world.new_member("expelled-writer", Role.PROVIDER)
    patient.authorize_writer(writer.address, "clinical-notes")
    record = writer.add_record(patient.address, "clinical-notes", b"written while a member")
    admitted = max(
        ev.block_number
        for ev in world.net.contracts.registry.events(MemberAdmitted, account=writer.address)
    )
    _remove(world, writer.address)
    assert world.net.contracts.registry.role_of(writer.address) is Role.NONE
    # It was an active Provider when it wrote: its earlier record still reads.
    assert patient.read(record) == b"written while a member"
    # The reader judges membership at the entry's block, not "was ever admitted": the
    # same entry presented as appended before the writer's admission is refused.
    (ev,) = [
        e
        for e in world.net.contracts.index.entries(patient.address)
        if bytes(e.record_id) == bytes(record)
    ]
    entry = open_entry(
        SealedEntry.from_bytes(bytes(ev.entry)), patient.keys, "clinical-notes", 0, origin=ev
    )
    members = MembershipCache(world.net.contracts.registry)
    check_entry(entry, ev, patient.address, 0, members)
    earlier = dataclasses.replace(ev, block_number=admitted - 1)
    with pytest.raises(VerificationError, match="not an active Provider member at block"):
        check_entry(entry, earlier, patient.address, 0, members)


def test_attack_withheld_tail_detected_by_patient(world: TrustWorld) -> None:
    patient = world.new_patient("tail-patient")
    patient.authorize_writer(world.hospital.address, "lab")
    for i in range(3):
        world.hospital.add_record(patient.address, "lab", b"r%d" % i)
    assert len(patient.records()) == 3
    net, provider = world.faulty_network(drop=1)
    try:
        same = Patient(net, patient.keys, state_dir=world.tmp / "tail-patient-2")
        with pytest.raises(IndexIntegrityError, match="withheld or altered"):
            same.records()
        assert provider.dropped >= 1
    finally:
        net.close()


def _granted_reader(world: TrustWorld, name: str) -> tuple[Patient, list[Any], Requester]:
    patient = world.new_patient(name)
    patient.authorize_writer(world.hospital.address, "lab")
    patient.authorize_writer(world.hospital.address, "imaging")
    records = [world.hospital.add_record(patient.address, "lab", b"lab %d" % i) for i in range(2)]
    patient.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    # The newest entry is of a category the insurer was not granted.
    world.hospital.add_record(patient.address, "imaging", b"not granted")
    world.sync_proxies()
    return patient, records, world.insurer


def test_attack_withheld_tail_detected_by_grantee(world: TrustWorld) -> None:
    patient, records, insurer = _granted_reader(world, "tail-grantee")
    assert {r.record_id for r in insurer.records(patient.address)} == set(records)
    net, provider = world.faulty_network(drop=1)
    try:
        same = Requester(net, insurer.keys, state_dir=world.tmp / "tail-grantee-2")
        with pytest.raises(IndexIntegrityError, match="withheld or altered"):
            same.records(patient.address)
        assert provider.dropped >= 1
    finally:
        net.close()


def test_attack_grantee_read_skips_chain_verification(world: TrustWorld) -> None:
    patient, records, insurer = _granted_reader(world, "grantee-read")
    assert insurer.read(patient.address, records[0]) == b"lab 0"
    net, provider = world.faulty_network(drop=1)
    try:
        same = Requester(net, insurer.keys, state_dir=world.tmp / "grantee-read-2")
        with pytest.raises(IndexIntegrityError):
            same.read(patient.address, records[0])
        assert provider.dropped >= 1
    finally:
        net.close()


def test_attack_revoke_leaves_writer_on_old_tag(world: TrustWorld) -> None:
    patient = world.new_patient("rekey")
    hospital = world.hospital
    patient.authorize_writer(hospital.address, "allergies")
    # A second writer the consortium removed since: it cannot be re-keyed, but its old
    # authorization must not survive either (it would write again if re-admitted).
    gone: Provider = world.new_member("rekey-removed", Role.PROVIDER)
    patient.authorize_writer(gone.address, "allergies")
    _remove(world, gone.address)
    hospital.add_record(patient.address, "allergies", b"penicillin")
    grant = patient.grant(world.insurer.address, "allergies", expires=timedelta(days=1))
    old_tag = patient.keys.tag("allergies", 0)
    patient.revoke(grant.policy_id)
    assert patient.epoch("allergies") == 1
    index = world.net.contracts.index
    assert not index.is_authorized(patient.address, old_tag, hospital.address)
    assert not index.is_authorized(patient.address, old_tag, gone.address)
    assert not index.is_authorized(patient.address, patient.keys.tag("allergies", 1), gone.address)
    seq = index.next_sequence(patient.address, old_tag, hospital.address)
    with pytest.raises(ContractRevert) as exc:
        hospital._contracts.index.append(patient.address, old_tag, seq, b"\x01" * 100)
    assert exc.value.name == "RecordIndex_NotAuthorized"
    assert exc.value.args_by_name == {
        "patient": patient.address,
        "tag": bytes(old_tag),
        "writer": hospital.address,
    }
    # The writer moved to the new epoch with the same transaction.
    assert hospital.writable_categories(patient.address) == {"allergies": 1}
    new = hospital.add_record(patient.address, "allergies", b"latex")
    assert patient.read(new) == b"latex"


def test_attack_suspended_proxy_keeps_serving(world: TrustWorld) -> None:
    """A proxy the consortium suspended refuses to serve, and a grantee's read does not
    count on it (runs last: it reinstates the proxy afterwards)."""
    patient = world.new_patient("suspended")
    patient.authorize_writer(world.hospital.address, "lab")
    record = world.hospital.add_record(patient.address, "lab", b"K 4.1", media_type="text/plain")
    grant = patient.grant(world.insurer.address, "lab", expires=timedelta(days=1))
    world.sync_proxies()
    proxy = world.proxies[0]
    admin = world.net.contracts_for(world.admin_key).registry
    pid = admin.propose(Action.SUSPEND, proxy.keys.address).event(ProposalCreated).proposal_id
    if not admin.proposal(pid).executed:
        admin.execute(pid)
    try:
        assert not world.net.contracts.registry.has_role(proxy.keys.address, Role.PROXY)
        (ev,) = [
            e
            for e in world.net.contracts.index.entries(patient.address)
            if bytes(e.record_id) == bytes(record)
        ]
        capsule = SealedEntry.from_bytes(bytes(ev.entry)).capsule_bytes
        chain_id = world.deployment.chain_id
        grants = world.deployment.address_of("Grants")
        req = ReencryptRequest.new(
            proxy.keys.address,
            grant.policy_id,
            [capsule_hash(capsule)],
            world.net.chain_time() + 300,
        )
        signed = SignedRequest(
            request=req,
            chain_id=chain_id,
            verifying_contract=grants,  # type: ignore[arg-type]
            signature=req.sign(world.insurer.keys.ethereum_key, chain_id, grants),
            capsules=(capsule,),
        )
        resp = proxy.post(signed.to_json())
        # The dedicated reason (issue #10): "not now, ask the others", signed.
        assert resp.status_code == 503, resp.text
        assert resp.json()["refused"] == "proxy_suspended"
        assert resp.json()["signature"].startswith("0x")
        # The two active proxies still meet the threshold; the suspended one is not asked.
        before = proxy.query("SELECT count(*) FROM journal")[0][0]
        assert world.insurer.read(patient.address, record) == b"K 4.1"
        assert proxy.query("SELECT count(*) FROM journal")[0][0] == before
    finally:
        pid = admin.propose(Action.REINSTATE, proxy.keys.address).event(ProposalCreated)
        if not admin.proposal(pid.proposal_id).executed:
            admin.execute(pid.proposal_id)
