"""Issue #10, proxy accountability and hole 7, on a real anvil with real proxy processes
and a consortium of two admins (threshold 2): signed answers, evidence of a corrupting
proxy, its M-of-N suspension, false evidence, unsigned answers, and a failing read that
no longer inflates the audit trail."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from emrshare.chain import AccessEntry, Action, ChainClient, Contracts, Role
from emrshare.chain.deploy import Deployment, deploy_contracts
from emrshare.crypto import MemberKeys, PatientKeys, SealedEntry
from emrshare.devnet import DevNode, dev_private_keys, fund_account
from emrshare.errors import ContractRevert, InvalidEvidence, Unavailable
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.proxy.evidence import Evidence
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash
from emrshare.roles import ConsortiumAdmin, Patient, Provider, Requester

from .support import ProxyProcess, make_proxy


@dataclass
class World:
    node: DevNode
    deployment: Deployment
    net: Network
    admins: tuple[ConsortiumAdmin, ConsortiumAdmin]
    funder_key: bytes
    hospital: Provider
    proxies: list[ProxyProcess]
    tmp: Path
    closers: list[Any] = field(default_factory=list)

    def admit(self, account: str, role: Role) -> None:
        pid = self.admins[0].admit(account, role)
        self.admins[1].approve(pid)

    def new_patient(self, name: str) -> Patient:
        keys = PatientKeys.generate()
        fund_account(self.net, self.funder_key, keys.address, 10**20)
        patient = Patient(self.net, keys, state_dir=self.tmp / f"patient-{name}")
        patient.register()
        self.closers.append(patient)
        return patient

    def new_reader(self, name: str, **kw: Any) -> Requester:
        keys = MemberKeys.generate()
        fund_account(self.net, self.funder_key, keys.address, 10**20)
        reader = Requester(self.net, keys, state_dir=self.tmp / f"reader-{name}", **kw)
        reader.apply()
        self.admit(reader.address, Role.INSURER)
        self.closers.append(reader)
        return reader

    def sync(self) -> None:
        head = self.net.w3.eth.block_number
        for p in self.proxies:
            if p.running:
                p.wait_cursor(head)

    def ensure_honest(self) -> None:
        for p in self.proxies:
            if p.running and p.evil:
                p.stop()
            if not p.running:
                p.start()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("accountability")
    node = DevNode.start("anvil", log_dir=tmp)
    proxies: list[ProxyProcess] = []
    w: World | None = None
    try:
        keys = dev_private_keys(10)
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
        admins = [Account.from_key(keys[0]).address, Account.from_key(keys[8]).address]
        deployment = deploy_contracts(w3, keys[0], admins=admins, admin_threshold=2)
        config = NetworkConfig(
            rpc_url=node.rpc_url,
            deployment=deployment,
            store=StoreConfig(kind="local", path=str(tmp / "store")),
        )
        net = Network.from_config(config)
        first, second = ConsortiumAdmin(net, keys[0]), ConsortiumAdmin(net, keys[8])
        hospital = Provider(
            net, MemberKeys(os.urandom(32), ethereum_key=keys[2]), state_dir=tmp / "hospital"
        )
        w = World(node, deployment, net, (first, second), keys[9], hospital, proxies, tmp)
        for i in range(3):
            member = MemberKeys(os.urandom(32), ethereum_key=keys[4 + i])
            proxy = make_proxy(tmp / f"proxy{i}", member, node, deployment)
            Requester(net, member, state_dir=tmp / f"proxy{i}" / "member").apply(proxy.url)
            w.admit(member.address, Role.PROXY)
            proxies.append(proxy)
        for p in proxies:
            p.start()
        hospital.apply()
        w.admit(hospital.address, Role.PROVIDER)
        yield w
    finally:
        if w is not None:
            for c in w.closers:
                c.close()
            w.net.close()
        for p in proxies:
            p.stop()
        node.stop()


@pytest.fixture
def world_up(world: World) -> Iterator[World]:
    world.ensure_honest()
    yield world
    world.ensure_honest()


def _shared_record(world: World, name: str, reader: Requester) -> tuple[Patient, bytes, Any]:
    patient = world.new_patient(name)
    patient.authorize_writer(world.hospital.address, "lab")
    record = world.hospital.add_record(patient.address, "lab", b"Hb 14", media_type="text/plain")
    grant = patient.grant(reader.address, "lab", expires=timedelta(days=1))
    world.sync()
    return patient, bytes(record), grant


def _accesses(world: World, policy_id: bytes, proxy: str | None = None) -> list[Any]:
    from emrshare.chain import AccessLogged

    audit = world.net.contracts.audit
    head = world.net.w3.eth.block_number
    out = [
        ev
        for ev in audit.events(AccessLogged, policy_id=policy_id, to_block=head)
        if proxy is None or ev.proxy.lower() == proxy.lower()
    ]
    return out


def _journal(proxy: ProxyProcess, policy_id: bytes) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(proxy.config.database)
    try:
        return db.execute(
            "SELECT capsule_hashes, nonce, deadline, signature, block, block_time FROM journal "
            "WHERE policy_id = ?",
            (policy_id,),
        ).fetchall()
    finally:
        db.close()


def _read_with_evil_answering(
    world: World, reader: Requester, patient: str, record: bytes
) -> bytes:
    """Read while one honest proxy is paused for a moment, so the corrupting proxy's
    answer is among the first two (the read then waits for the paused honest one)."""
    honest = world.proxies[0]
    honest.pause()
    timer = threading.Timer(1.5, honest.resume)
    timer.start()
    try:
        return reader.read(patient, record)
    finally:
        timer.join()


def test_attack_corrupt_cfrag_proxy_suspended(world_up: World) -> None:
    world = world_up
    reader = world.new_reader("corrupt", proxy_timeout=20.0)
    patient, record, grant = _shared_record(world, "corrupt", reader)
    evil = world.proxies[2]
    evil.stop()
    evil.start(evil="corrupt")
    # The read still succeeds with the two honest proxies, and the corrupting proxy's
    # signed answer is kept as evidence (0600, named by the reader).
    assert _read_with_evil_answering(world, reader, patient.address, record) == b"Hb 14"
    (path,) = reader.last_evidence
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    evidence = Evidence.from_bytes(path.read_bytes())
    assert evidence.proxy == evil.keys.address
    assert evidence.policy_id == bytes(grant.policy_id)
    assert bytes(Evidence.from_bytes(bytes(evidence))) == bytes(evidence)  # canonical

    # Any member reports it; each admin verifies it locally, then M-of-N suspend.
    report_id = reader.report_proxy(path)
    first, second = world.admins
    verified = first.verify_report(report_id)
    assert (verified.proxy, verified.evidence_hash) == (evil.keys.address, evidence.evidence_hash)
    proposal_id = first.suspend(evil.keys.address, report_id)
    proposal = world.net.contracts.registry.proposal(proposal_id)
    assert proposal.action is Action.SUSPEND and proposal.reference == evidence.evidence_hash
    assert not proposal.executed  # one of two approvals
    assert world.net.contracts.registry.member(evil.keys.address).suspended_at == 0
    second.approve(proposal_id)
    assert world.net.contracts.registry.proposal(proposal_id).executed
    assert world.net.contracts.registry.member(evil.keys.address).suspended_at != 0
    assert not world.net.contracts.registry.has_role(evil.keys.address, Role.PROXY)
    world.sync()

    # Its next serve is ignored: readers do not ask it (nor count it), and it refuses.
    evil.stop()
    evil.start()
    before = evil.health()
    assert reader.read(patient.address, record) == b"Hb 14"
    after = evil.health()
    assert after["served_cfrags"] == before["served_cfrags"] == 0
    assert after["refused"] == before["refused"]
    sealed = _sealed_of(world, patient.address, record)
    resp = evil.post(_signed_body(world, reader, evil, bytes(grant.policy_id), sealed))
    assert resp.status_code == 503 and resp.json()["refused"] == "proxy_suspended"

    # And the chain refuses its audit entries from the suspension on (a request an honest
    # proxy served, sent by the suspended one, which is also a proxy of the grant).
    (served,) = _journal(world.proxies[1], bytes(grant.policy_id))[:1]
    entry = AccessEntry(
        capsule_hashes=[bytes.fromhex(h) for h in json.loads(served[0])],
        nonce=int(served[1]),
        deadline=int(served[2]),
        evaluated_at=int(served[4]),
        evaluated_time=int(served[5]),
        signature=bytes(served[3]),
    )
    sender = Contracts.from_deployment(
        ChainClient(world.net.w3, evil.keys.ethereum_key), world.deployment
    ).audit
    with pytest.raises(ContractRevert) as info:
        sender.log_accesses(grant.policy_id, grant.grantee, grant.proxies, [entry])
    assert info.value.name == "AuditLog_NotProxy"
    assert info.value.args_by_name["account"] == evil.keys.address
    _reinstate(world, evil.keys.address)


def _reinstate(world: World, proxy: str) -> None:
    """M-of-N reinstatement, so the next tests have three active proxies again."""
    from emrshare.chain import ProposalCreated

    first = world.net.contracts_for(dev_private_keys(10)[0]).registry
    pid = first.propose(Action.REINSTATE, proxy).event(ProposalCreated).proposal_id
    world.admins[1].approve(pid)
    assert world.net.contracts.registry.has_role(proxy, Role.PROXY)


def _sealed_of(world: World, patient: str, record: bytes) -> SealedEntry:
    (ev,) = [e for e in world.net.contracts.index.entries(patient) if bytes(e.record_id) == record]
    return SealedEntry.from_bytes(bytes(ev.entry))


def _signed(
    world: World, reader: Requester, proxy: ProxyProcess, policy_id: bytes, sealed: SealedEntry
) -> SignedRequest:
    cap = sealed.capsule_bytes
    chain_id = world.deployment.chain_id
    grants = world.deployment.address_of("Grants")
    req = ReencryptRequest.new(
        proxy.keys.address, policy_id, [capsule_hash(cap)], world.net.chain_time() + 300
    )
    return SignedRequest(
        request=req,
        chain_id=chain_id,
        verifying_contract=grants,  # type: ignore[arg-type]
        signature=req.sign(reader.keys.ethereum_key, chain_id, grants),
        capsules=(cap,),
    )


def _signed_body(
    world: World, reader: Requester, proxy: ProxyProcess, policy_id: bytes, sealed: SealedEntry
) -> dict[str, Any]:
    return _signed(world, reader, proxy, policy_id, sealed).to_json()


def test_attack_false_evidence_refused(world_up: World) -> None:
    world = world_up
    reader = world.new_reader("false")
    patient, record, grant = _shared_record(world, "false", reader)
    honest = world.proxies[1]
    sealed = _sealed_of(world, patient.address, record)
    # The reporter asks the honest proxy itself and keeps its genuine signed answer.
    signed = _signed(world, reader, honest, bytes(grant.policy_id), sealed)
    body = honest.post(signed.to_json()).json()
    cfrag = bytes.fromhex(body["cfrags"][0][2:])
    genuine = Evidence.build(
        signed,
        block=body["block"],
        delegating_pk=bytes.fromhex(body["delegating_pk"][2:]),
        cfrags=(cfrag,),
        response_signature=bytes.fromhex(body["signature"][2:]),
        index=0,
        verifying_pk=bytes(patient.keys.verifying_key.to_compressed_bytes()),
        receiving_pk=reader.keys.receiving_public_key.to_compressed_bytes(),
    )
    swapped_cfrag = replace(genuine, cfrag=cfrag[:-1] + bytes([cfrag[-1] ^ 1]))
    other_key = replace(
        genuine, delegating_pk=PatientKeys.generate().verifying_key.to_compressed_bytes()
    )
    cases = {
        "the cfrag verifies": genuine,
        "the cfrag is not the one the proxy signed": swapped_cfrag,
        "the response is not signed by the reported proxy": other_key,
    }
    first, second = world.admins
    for why, ev in cases.items():
        folder = world.tmp / "false-evidence"
        folder.mkdir(exist_ok=True)
        path = folder / f"{secrets.token_hex(4)}.emev"
        path.write_bytes(bytes(ev))
        report_id = reader.report_proxy(path)
        with pytest.raises(InvalidEvidence, match=why):
            first.verify_report(report_id)
        with pytest.raises(InvalidEvidence, match=why):
            first.suspend(honest.keys.address, report_id)
    # An admin who skips verification and proposes anyway is not seconded.
    rogue = world.net.contracts_for(dev_private_keys(10)[0]).registry
    from emrshare.chain import ProposalCreated

    pid = (
        rogue.propose(Action.SUSPEND, honest.keys.address, reference=swapped_cfrag.evidence_hash)
        .event(ProposalCreated)
        .proposal_id
    )
    with pytest.raises(InvalidEvidence, match="not the one the proxy signed"):
        second.approve(pid)
    assert world.net.contracts.registry.member(honest.keys.address).suspended_at == 0
    assert world.net.contracts.registry.has_role(honest.keys.address, Role.PROXY)


def test_attack_unsigned_response_ignored(world_up: World) -> None:
    world = world_up
    reader = world.new_reader("unsigned", retry_for=0.5)
    patient, record, _ = _shared_record(world, "unsigned", reader)
    evil = world.proxies[2]
    evil.stop()
    evil.start(evil="unsigned")
    world.proxies[0].kill()
    with pytest.raises(Unavailable) as info:
        reader.read(patient.address, record)
    # The unsigned cfrags are genuine, but nobody vouches for them: they do not count.
    assert info.value.failures[evil.keys.address] == "bad_response_signature"
    assert (info.value.needed, info.value.got) == (2, 1)
    assert reader.last_evidence == []


def test_attack_failed_read_inflates_audit(world_up: World) -> None:
    world = world_up
    reader = world.new_reader("inflate", retry_for=5.0)
    patient, record, grant = _shared_record(world, "inflate", reader)
    live = world.proxies[1]
    world.proxies[0].kill()
    world.proxies[2].kill()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        reader.read(patient.address, record)
    assert time.monotonic() - started >= 5.0  # it really was retried for ~5 s
    live.wait_audit_drained()
    journaled = _journal(live, bytes(grant.policy_id))
    logged = _accesses(world, bytes(grant.policy_id), live.keys.address)
    # The read was served once by the live proxy, and that is what the trail records.
    assert len(journaled) == 1
    assert len(logged) == 1
    assert live.health()["refused"].get("replayed_nonce", 0) == 0


def test_repeated_request_logged_once(world_up: World) -> None:
    world = world_up
    reader = world.new_reader("repeat")
    patient, record, grant = _shared_record(world, "repeat", reader)
    proxy = world.proxies[0]
    sealed = _sealed_of(world, patient.address, record)
    body = _signed_body(world, reader, proxy, bytes(grant.policy_id), sealed)
    answers = [proxy.post(body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Each answer is signed and verifies (the cfrags differ: re-encryption is randomised).
    assert len({a.json()["signature"] for a in answers}) == 3
    proxy.wait_audit_drained()
    assert len(_journal(proxy, bytes(grant.policy_id))) == 1
    logged = _accesses(world, bytes(grant.policy_id), proxy.keys.address)
    assert [ev.nonce for ev in logged] == [int(body["nonce"])]
    # Another request (signed by the grantee) reusing the nonce is refused.
    first = SignedRequest.from_json(body)
    req = replace(first.request, deadline=first.request.deadline + 1)
    chain_id, grants = world.deployment.chain_id, world.deployment.address_of("Grants")
    other = replace(
        first, request=req, signature=req.sign(reader.keys.ethereum_key, chain_id, grants)
    )
    resp = proxy.post(other.to_json())
    assert resp.status_code == 403 and resp.json()["refused"] == "replayed_nonce"
    assert len(_journal(proxy, bytes(grant.policy_id))) == 1
