"""Issue #10, hole 6: multi-transaction patient operations are resumable and idempotent.

Each operation (revoke with re-authorization, grant of every epoch, approve) runs in a child
process that SIGKILLs itself right after its k-th step was mined (through the library's
``progress=`` callback: the hook lives in the child script, never in the library), for
every k. A fresh process then finishes it, and the chain state must equal the one an
uninterrupted run leaves: same grants per grantee and epoch (none twice), writers on the
new tag only, the request answered once. Real anvil; every case starts from one snapshot.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from emrshare.chain import (
    AccessRequestAnswered,
    Action,
    GrantCreated,
    ProposalCreated,
    Role,
    WriterAuthorized,
)
from emrshare.chain.deploy import deploy_contracts
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.requests import open_answer
from emrshare.devnet import DevNode
from emrshare.errors import ConfigurationError, GrantRevoked
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.roles import ConsortiumAdmin, Patient, Provider, Requester

MASTER = b"\x0b" * 32
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from emrshare.crypto import PatientKeys
    from emrshare.network import Network
    from emrshare.roles import Patient

    config, state, master, eth, mode, kill_at, call = sys.argv[1:8]
    net = Network.from_config(Path(config))
    patient = Patient(
        net, PatientKeys(bytes.fromhex(master), ethereum_key=bytes.fromhex(eth)),
        state_dir=Path(state),
    )
    kill_at = int(kill_at)

    def progress(done, total):
        if done == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies: no cleanup runs

    call = json.loads(call)
    if mode == "resume":
        results = patient.resume()
    else:
        kind, args = call["kind"], call["args"]
        if kind == "revoke":
            patient.revoke(args["policy"], progress=progress)
        elif kind == "grant":
            patient.grant(args["grantee"], args["category"], expires=args["expires"],
                          progress=progress)
        else:
            patient.approve(args["request"], expires=args["expires"], progress=progress)
        results = patient.resumed
    print(json.dumps([
        {"kind": r.kind, "sent": r.sent, "steps": r.steps, "resumed": r.resumed}
        for r in results
    ]))
    """
)


@dataclass
class OpsWorld:
    node: DevNode
    net: Network
    config: Path
    base_state: Path
    tmp: Path
    eth: bytes
    members: dict[str, str]
    lab_grants: dict[str, bytes]
    request_id: int
    expiry: int
    admin_key: bytes
    snapshot: str = ""

    def reset(self, name: str) -> Path:
        """The chain and the patient's state dir as the setup left them."""
        self.node.rpc("evm_revert", [self.snapshot])
        self.snapshot = self.node.rpc("evm_snapshot")
        state = self.tmp / name
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(self.base_state, state)
        return state

    def child(self, state: Path, mode: str, call: dict[str, Any], kill_at: int = 0) -> Any:
        script = self.tmp / "child.py"
        script.write_text(CHILD)
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                str(self.config),
                str(state),
                MASTER.hex(),
                self.eth.hex(),
                mode,
                str(kill_at),
                json.dumps(call),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if kill_at:
            assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
            return None
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def patient(self, state: Path, net: Network | None = None) -> Patient:
        keys = PatientKeys(MASTER, ethereum_key=self.eth)
        return Patient(net or self.net, keys, state_dir=state)

    def fresh_network(self) -> Network:
        """A new connection: no nonce cached from before a revert to the snapshot."""
        return Network.from_config(self.config)

    def chain_state(self, state: Path) -> dict[str, Any]:
        """Everything the operations change, without ids that differ between runs."""
        patient = self.patient(state)
        keys = patient.keys
        grants = self.net.contracts.grants
        end = self.net.w3.eth.block_number
        names = {v: k for k, v in self.members.items()}
        tags = {
            bytes(keys.tag(c, e)): f"{c}@{e}" for c in ("lab-results", "imaging") for e in range(5)
        }
        created = list(grants.events(GrantCreated, patient=patient.address, to_block=end))
        by_id = {bytes(ev.policy_id): ev for ev in created}

        def grant_of(pid: bytes) -> tuple[Any, ...]:
            ev = by_id[pid]
            return (names[ev.grantee], tags[bytes(ev.tag)], ev.expiry, ev.threshold)

        grant_rows = Counter(
            (*grant_of(bytes(ev.policy_id)), grants.status(ev.policy_id).name) for ev in created
        )
        index = self.net.contracts.index
        writer_events = index.events(WriterAuthorized, patient=patient.address, to_block=end)
        writers = sorted(
            {
                (tags[bytes(ev.tag)], names[ev.writer])
                for ev in writer_events
                if index.is_authorized(patient.address, ev.tag, ev.writer)
            }
        )
        answers = list(grants.events(AccessRequestAnswered, patient=patient.address, to_block=end))
        opened = [
            open_answer(
                bytes(a.sealed_answer),
                keys.box_private_key,
                request_id=a.request_id,
                patient=patient.address,
                requester=a.requester,
            )
            for a in answers
        ]
        out = {
            "grants": sorted((list(k), n) for k, n in grant_rows.items()),
            "writers": writers,
            "request": grants.request(self.request_id).status.name,
            "answers": [
                (o.request_id, o.decision, [list(grant_of(bytes(p))) for p in o.policy_ids])
                for o in opened
            ],
            "epochs": {c: patient.epoch(c) for c in ("lab", "imaging")},
            "pending": len(patient.pending_operations()),
        }
        patient.close()
        return out


def _build_world(node: DevNode, dev_keys: list[bytes], tmp: Path) -> Iterator[OpsWorld]:
    anvil = node
    start = anvil.rpc("evm_snapshot")
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))
    config = NetworkConfig(
        rpc_url=anvil.rpc_url,
        deployment=deploy_contracts(w3, dev_keys[0]),
        store=StoreConfig(kind="local", path=str(tmp / "store")),
    )
    config.write(tmp / "network.json")
    net = Network.from_config(config)
    admin = ConsortiumAdmin(net, dev_keys[0])
    members: dict[str, str] = {}
    roles = [
        ("proxy0", Role.PROXY, Requester), ("proxy1", Role.PROXY, Requester),
        ("proxy2", Role.PROXY, Requester), ("hospital", Role.PROVIDER, Provider),
        ("clinic", Role.PROVIDER, Provider), ("insurer", Role.INSURER, Requester),
        ("pharmacy", Role.PHARMACY, Requester), ("researcher", Role.REGULATOR, Requester),
    ]  # fmt: skip
    actors: dict[str, Any] = {}
    for i, (name, role, cls) in enumerate(roles):
        eth = dev_keys[1 + i]
        actor = cls(net, MemberKeys(bytes([i + 1]) * 32, ethereum_key=eth), state_dir=tmp / name)
        actor.apply("http://127.0.0.1:9" if role is Role.PROXY else "")
        admin.admit(actor.address, role)
        members[name] = actor.address
        actors[name] = actor
    patient_eth = dev_keys[9]
    patient = Patient(net, PatientKeys(MASTER, ethereum_key=patient_eth), state_dir=tmp / "base")
    patient.register()
    expiry = net.chain_time() + 30 * 86400
    patient.authorize_writer(members["hospital"], "lab")
    patient.authorize_writer(members["clinic"], "lab")
    patient.authorize_writer(members["hospital"], "imaging")
    lab = {
        who: bytes(patient.grant(members[who], "lab", expires=expiry).policy_id)
        for who in ("insurer", "pharmacy", "researcher")
    }
    for _ in range(2):  # imaging moves to epoch 2
        patient.revoke(patient.grant(members["pharmacy"], "imaging", expires=expiry).policy_id)
    # The clinic is no longer a Provider: a revocation withdraws its authorization only.
    admin.admit(members["clinic"], Role.INSURER)
    rid = actors["insurer"].request_access(patient.address, "imaging", reason="claim")
    patient.close()
    for a in actors.values():
        a.close()
    world = OpsWorld(anvil, net, tmp / "network.json", tmp / "base", tmp, patient_eth, members,
                     lab, rid, expiry, dev_keys[0], anvil.rpc("evm_snapshot"))  # fmt: skip
    try:
        yield world
    finally:
        net.close()
        anvil.rpc("evm_revert", [start])


@pytest.fixture(scope="module")
def world(
    anvil: DevNode, dev_keys: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpsWorld]:
    yield from _build_world(anvil, dev_keys, tmp_path_factory.mktemp("ops"))


def _killed_between_every_pair(
    world: OpsWorld, call: dict[str, Any], steps: int, published: int = 0
) -> None:
    """The reference run, then one run killed after each step k and finished by a fresh
    process (``resume``; for one k, the same command run again). ``published``: the
    state-log entries the operation adds (one per epoch it moves), sent once too."""
    state = world.reset("reference")
    before = world.chain_state(state)
    account = world.patient(state).address
    nonce = world.net.w3.eth.get_transaction_count(account)
    assert world.child(state, "run", call) == []
    reference = world.chain_state(state)
    assert reference != before and reference["pending"] == 0
    # One transaction per step, so a kill after each step falls between every pair.
    assert world.net.w3.eth.get_transaction_count(account) - nonce == steps + published
    for k in range(1, steps + 1):
        state = world.reset(f"killed-{k}")
        world.child(state, "run", call, kill_at=k)
        assert world.chain_state(state)["pending"] == 1, f"killed at step {k}: not logged"
        # For k == 2 the same command again: it finishes the interrupted one, once.
        mode = "run" if k == 2 else "resume"
        finished = world.child(state, mode, call if mode == "run" else {})
        assert [(f["kind"], f["resumed"], f["steps"]) for f in finished] == [
            (call["kind"], True, steps)
        ], f"killed at step {k}"
        assert finished[0]["sent"] == steps - k, f"killed at step {k}: {finished}"
        assert world.chain_state(state) == reference, f"killed at step {k}"
        used = world.net.w3.eth.get_transaction_count(account) - nonce
        assert used == steps + published, f"killed at step {k}: {used} transactions"


def test_attack_revoke_killed_between_transactions(world: OpsWorld) -> None:
    # revoke → epoch bump + rekeyWriters (hospital) → revokeWriters (the clinic, no longer
    # a Provider) → re-issued grants to the pharmacy and the researcher: 5 transactions.
    call = {"kind": "revoke", "args": {"policy": world.lab_grants["insurer"].hex()}}
    # The epoch bump is also published to the sealed state log: one more transaction.
    _killed_between_every_pair(world, call, 5, published=1)
    state = world.reset("check")
    world.child(state, "run", call)
    after = world.chain_state(state)
    assert after["epochs"]["lab"] == 1
    assert after["writers"] == [("imaging@2", "hospital"), ("lab-results@1", "hospital")]
    issued = [g for g, _ in after["grants"] if g[1] == "lab-results@1"]
    assert sorted(g[0] for g in issued) == ["pharmacy", "researcher"]


def test_attack_grant_all_epochs_killed_between_transactions(world: OpsWorld) -> None:
    # imaging is at epoch 2: one grant per epoch, 3 transactions.
    call = {
        "kind": "grant",
        "args": {"grantee": world.members["researcher"], "category": "imaging",
                 "expires": world.expiry},
    }  # fmt: skip
    _killed_between_every_pair(world, call, 3)


def test_attack_approve_killed_between_transactions(world: OpsWorld) -> None:
    # grants of imaging epochs 0..2 to the insurer, then the sealed answer: 4 transactions.
    call = {"kind": "approve", "args": {"request": world.request_id, "expires": world.expiry}}
    _killed_between_every_pair(world, call, 4)
    state = world.reset("check")
    world.child(state, "run", call)
    after = world.chain_state(state)
    assert after["request"] == "ANSWERED"  # the decision is sealed
    ((_, decision, named),) = after["answers"]
    assert decision == "approved"
    assert [g[1] for g in named] == ["imaging@2", "imaging@1", "imaging@0"]


def test_finished_operation_run_again_does_nothing(world: OpsWorld) -> None:
    # Each operation, run to the end, then its logged plan put back and resumed: no step
    # sends anything (the chain shows every one done), and the state is unchanged.
    calls = [
        {"kind": "revoke", "args": {"policy": world.lab_grants["insurer"].hex()}},
        {"kind": "grant", "args": {"grantee": world.members["researcher"],
                                   "category": "imaging", "expires": world.expiry}},
        {"kind": "approve", "args": {"request": world.request_id, "expires": world.expiry}},
    ]  # fmt: skip
    for call in calls:
        state = world.reset(f"twice-{call['kind']}")
        # Killed after the last step: the log still holds the (finished) operation.
        steps = {"revoke": 5, "grant": 3, "approve": 4}[call["kind"]]
        world.child(state, "run", call, kill_at=steps)
        saved = {f.name: f.read_text() for f in (state / "operations").glob("*.json")}
        assert len(saved) == 1
        (first,) = world.child(state, "resume", {})
        assert first["sent"] == 0
        done = world.chain_state(state)
        for name, text in saved.items():
            (state / "operations" / name).write_text(text)
        nonce = world.net.w3.eth.get_transaction_count(world.patient(state).address)
        (again,) = world.child(state, "resume", {})
        assert again["sent"] == 0
        assert world.net.w3.eth.get_transaction_count(world.patient(state).address) == nonce
        assert world.chain_state(state) == done


def test_revoke_and_approve_twice_send_nothing_the_second_time(world: OpsWorld) -> None:
    state = world.reset("twice-direct")
    net = world.fresh_network()
    patient = world.patient(state, net)
    try:
        patient.revoke(world.lab_grants["insurer"])
        patient.approve(world.request_id, expires=world.expiry)
        done = world.chain_state(state)
        nonce = world.net.w3.eth.get_transaction_count(patient.address)
        with pytest.raises(GrantRevoked, match="already revoked"):
            patient.revoke(world.lab_grants["insurer"])
        with pytest.raises(ConfigurationError, match="already approved"):
            patient.approve(world.request_id, expires=world.expiry)
        assert world.net.w3.eth.get_transaction_count(patient.address) == nonce
        assert world.chain_state(state) == done
        assert patient.resume() == []
    finally:
        patient.close()
        net.close()


def test_resumed_step_the_chain_refuses_is_skipped_and_reported(world: OpsWorld) -> None:
    # Killed after the grant of epoch 0; then the researcher leaves the consortium, so the
    # other two grants can never be made. Retrying them forever would block every write:
    # the resume skips them, says why, and closes the operation.
    state = world.reset("refused")
    call = {"kind": "grant", "args": {"grantee": world.members["researcher"],
                                      "category": "imaging", "expires": world.expiry}}  # fmt: skip
    world.child(state, "run", call, kill_at=1)
    net = world.fresh_network()
    registry = net.contracts_for(world.admin_key).registry
    proposal = registry.propose(Action.REMOVE, world.members["researcher"])
    pid = int(proposal.event(ProposalCreated).proposal_id)
    if not registry.proposal(pid).executed:
        registry.execute(pid)
    patient = world.patient(state, net)
    try:
        (done,) = patient.resume()
        assert done.resumed and done.sent == 0 and len(done.notes) == 2
        assert all("was refused" in n and "not an admitted" in n for n in done.notes)
        assert patient.pending_operations() == []
        patient.authorize_writer(world.members["hospital"], "notes")  # writes work again
        assert patient.resumed == []
    finally:
        patient.close()
        net.close()


def test_operation_log_is_private(world: OpsWorld) -> None:
    state = world.reset("private")
    call = {"kind": "grant", "args": {"grantee": world.members["researcher"],
                                      "category": "imaging", "expires": world.expiry}}  # fmt: skip
    world.child(state, "run", call, kill_at=1)
    log = state / "operations"
    assert log.stat().st_mode & 0o777 == 0o700
    (op,) = log.glob("*.json")
    assert op.stat().st_mode & 0o777 == 0o600
    body = json.loads(op.read_text())
    assert body["kind"] == "grant" and [s["do"] for s in body["steps"]] == ["grant"] * 3
    # No nonce, key or sealed material in the log: nonces are derived when a step runs.
    assert "nonce" not in op.read_text() and MASTER.hex() not in op.read_text()
    assert (state / "patient.json").stat().st_mode & 0o777 == 0o600


def test_revoke_killed_mid_way_on_ganache_too(
    ganache: DevNode, dev_keys: list[bytes], tmp_path: Path
) -> None:
    for world in _build_world(ganache, dev_keys, tmp_path):
        call = {"kind": "revoke", "args": {"policy": world.lab_grants["insurer"].hex()}}
        state = world.reset("reference")
        world.child(state, "run", call)
        reference = world.chain_state(state)
        state = world.reset("killed")
        world.child(state, "run", call, kill_at=3)  # after revokeWriters, before the grants
        (finished,) = world.child(state, "resume", {})
        assert finished["sent"] == 2 and finished["resumed"]
        assert world.chain_state(state) == reference
