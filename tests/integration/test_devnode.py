"""The real-node harness: anvil and ganache start, run our contracts, and revert cleanly."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from eth_abi import decode
from web3 import Web3
from web3.exceptions import ContractCustomError

from emrshare.chain.artifacts import load_artifact
from emrshare.chain.deploy import deploy_contracts
from emrshare.devnet import (
    DEV_MNEMONIC,
    DevNode,
    NodeKind,
    dev_private_keys,
    running_node,
)


def test_node_answers(chain: DevNode, w3: Web3) -> None:
    assert w3.eth.chain_id == chain.chain_id
    assert w3.eth.get_balance(w3.eth.accounts[0]) > 0


def test_deploy_and_call_profile(w3: Web3, dev_keys: list[bytes]) -> None:
    dep = deploy_contracts(w3, dev_keys[0])
    dep.check(w3)
    art = load_artifact("PatientProfiles")
    profiles = w3.eth.contract(address=dep.addresses["PatientProfiles"], abi=art.abi)
    patient = w3.eth.account.from_key(dev_keys[1])
    vk, box = b"\x02" + b"\x11" * 32, b"\x22" * 32
    tx = profiles.functions.register(vk, box).build_transaction(
        {
            "from": patient.address,
            "nonce": w3.eth.get_transaction_count(patient.address),
            "chainId": w3.eth.chain_id,
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(patient.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1
    got = profiles.functions.profileOf(patient.address).call()
    assert bytes(got[0]) == vk and bytes(got[1]) == box


def test_custom_error_carries_arguments(w3: Web3, dev_keys: list[bytes]) -> None:
    dep = deploy_contracts(w3, dev_keys[0])
    profiles = w3.eth.contract(
        address=dep.addresses["PatientProfiles"], abi=load_artifact("PatientProfiles").abi
    )
    stranger = w3.eth.account.from_key(dev_keys[2]).address
    with pytest.raises(ContractCustomError) as info:
        profiles.functions.profileOf(stranger).call()
    data = bytes.fromhex(str(info.value.data)[2:])
    selector = Web3.keccak(text="PatientProfiles_NotRegistered(address)")[:4]
    assert data[:4] == selector
    assert decode(["address"], data[4:])[0].lower() == stranger.lower()


def test_snapshot_isolation(chain: DevNode, w3: Web3) -> None:
    # The `chain` fixture reverts state after each test: blocks do not pile up.
    before = w3.eth.block_number
    chain.rpc("evm_mine")
    assert w3.eth.block_number == before + 1


FIRST_DEV_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.mark.parametrize("kind", ["anvil", "ganache"])
def test_attack_dev_keys_in_node_log(tmp_path: Path, kind: NodeKind) -> None:
    """anvil and ganache print every dev account's private key and the mnemonic; the log
    (0600) keeps the rest of their output but never those lines."""
    with running_node(kind, log_dir=tmp_path) as node:
        node.rpc("eth_blockNumber")
    log = tmp_path / f"{kind}.log"
    deadline = time.monotonic() + 10
    while "Listening" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the filter process drains the pipe
    text = log.read_text()
    assert "Available Accounts" in text and "Listening" in text
    assert FIRST_DEV_KEY not in text.lower()
    assert DEV_MNEMONIC not in text and "test test test" not in text
    assert all(k.hex() not in text.lower() for k in dev_private_keys(10))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
