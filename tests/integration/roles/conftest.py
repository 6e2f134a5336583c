"""A fresh deployment on the session's real anvil, a LocalStore, a patient and a hospital."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from emrshare.chain import Role
from emrshare.chain.deploy import deploy_contracts
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import DevNode
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.roles import ConsortiumAdmin, Patient, Provider


@dataclass
class Stack:
    config_path: Path
    net: Network
    patient: Patient
    hospital: Provider
    hospital_seed: bytes
    hospital_eth: bytes
    tmp: Path


def make_stack(node: DevNode, dev_keys: list[bytes], tmp: Path) -> Stack:
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
    deployment = deploy_contracts(w3, dev_keys[0])
    config = NetworkConfig(
        rpc_url=node.rpc_url,
        deployment=deployment,
        store=StoreConfig(kind="local", path=str(tmp / "store")),
    )
    config.write(tmp / "network.json")
    net = Network.from_config(config)
    seed = bytes(range(32))
    hospital = Provider(net, MemberKeys(seed, ethereum_key=dev_keys[4]), state_dir=tmp / "hosp")
    hospital.apply()
    ConsortiumAdmin(net, dev_keys[0]).admit(hospital.address, Role.PROVIDER)
    patient = Patient(
        net, PatientKeys(b"\x07" * 32, ethereum_key=dev_keys[7]), state_dir=tmp / "patient"
    )
    patient.register()
    patient.authorize_writer(hospital.address, "lab")
    return Stack(tmp / "network.json", net, patient, hospital, seed, dev_keys[4], tmp)


@pytest.fixture
def stack(anvil: DevNode, dev_keys: list[bytes], tmp_path: Path) -> Iterator[Stack]:
    s = make_stack(anvil, dev_keys, tmp_path)
    try:
        yield s
    finally:
        s.hospital.close()
        s.patient.close()
        s.net.close()


def entries_by_record(stack: Stack) -> dict[bytes, int]:
    """How many index entries each record id has (exactly-once means 1)."""
    counts: dict[bytes, int] = {}
    for ev in stack.net.contracts.index.entries(stack.patient.address):
        counts[bytes(ev.record_id)] = counts.get(bytes(ev.record_id), 0) + 1
    return counts
