"""deployment.json (format 2) and Foundry's broadcast file, on anvil and on ganache: each
contract's transaction, block, code hash and ABI; readers verify the code on the chain
they connect to; format-1 files still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web3 import Web3

from emrshare.chain import Deployment, deploy_contracts
from emrshare.chain.artifacts import load_artifact
from emrshare.chain.deploy import FORMAT_VERSION, ContractDeployment, write_broadcast
from emrshare.errors import DeploymentError, LocalStateError


@pytest.fixture
def deployed(w3: Web3, dev_keys: list[bytes]) -> Deployment:
    return deploy_contracts(w3, dev_keys[0])


def test_deployment_file_names_each_contracts_transaction_block_and_abi(
    w3: Web3, deployed: Deployment, tmp_path: Path
) -> None:
    path = tmp_path / "deployment.json"
    deployed.write(path)
    raw = json.loads(path.read_text())
    assert raw["version"] == FORMAT_VERSION == 2
    assert raw["chain_id"] == w3.eth.chain_id and raw["addresses"] == deployed.addresses
    assert raw["artifacts"] == "emrshare/contracts"
    assert set(raw["contracts"]) == set(deployed.addresses)
    for name, entry in raw["contracts"].items():
        assert entry["address"] == deployed.addresses[name]
        assert entry["artifact"] == f"emrshare/contracts/{name}.json"
        assert entry["abi"] == load_artifact(name).abi
        receipt = w3.eth.get_transaction_receipt(entry["transaction_hash"])
        assert receipt["contractAddress"] == entry["address"]
        assert receipt["blockNumber"] == entry["block_number"] > deployed.start_block - 1
        code = w3.eth.get_code(Web3.to_checksum_address(entry["address"]))
        assert Web3.keccak(code).to_0x_hex() == entry["code_hash"]
    back = Deployment.read(path)
    assert back == deployed
    back.check(w3)


def test_broadcast_file_has_foundrys_shape(w3: Web3, deployed: Deployment, tmp_path: Path) -> None:
    path = write_broadcast(deployed, w3, tmp_path)
    assert path == (
        tmp_path / "broadcast" / "deploy_contracts" / str(w3.eth.chain_id) / "run-latest.json"
    )
    doc = json.loads(path.read_text())
    assert doc["chain"] == w3.eth.chain_id
    txs, receipts = doc["transactions"], doc["receipts"]
    assert txs[0]["contractName"] == "PatientForwarder"  # deploy order
    assert {t["contractName"] for t in txs} == set(deployed.addresses)
    for tx, receipt in zip(txs, receipts, strict=True):
        name = tx["contractName"]
        assert tx["transactionType"] == "CREATE"
        assert tx["hash"] == deployed.contracts[name].transaction_hash == receipt["transactionHash"]
        assert tx["contractAddress"] == deployed.addresses[name]
        assert receipt["contractAddress"].lower() == deployed.addresses[name].lower()
        assert int(receipt["status"], 16) == 1
        assert int(receipt["blockNumber"], 16) == deployed.contracts[name].block_number
        assert tx["transaction"]["from"].lower() == deployed.deployer.lower()
        assert tx["transaction"]["input"].startswith(load_artifact(name).bytecode[:66])


def test_reader_refuses_other_code_at_an_address(w3: Web3, deployed: Deployment) -> None:
    """A deployment file pointing at the wrong contracts (two addresses swapped) has code
    at every address; the recorded code hashes tell them apart."""
    swapped = dict(deployed.addresses)
    swapped["Grants"], swapped["AuditLog"] = swapped["AuditLog"], swapped["Grants"]
    wrong = Deployment(
        deployed.chain_id, swapped, deployed.start_block, deployed.deployer, deployed.contracts
    )
    with pytest.raises(DeploymentError, match=r"is not the (Grants|AuditLog) this deployment"):
        wrong.check(w3)
    forged = dict(deployed.contracts)
    forged["Grants"] = ContractDeployment(
        forged["Grants"].transaction_hash, forged["Grants"].block_number, "0x" + "00" * 32
    )
    with pytest.raises(DeploymentError, match="code hash differs"):
        Deployment(
            deployed.chain_id, deployed.addresses, deployed.start_block, deployed.deployer, forged
        ).check(w3)


def test_format_1_files_still_read_and_newer_ones_are_refused(
    w3: Web3, deployed: Deployment, tmp_path: Path
) -> None:
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps(
            {
                "chain_id": deployed.chain_id,
                "addresses": deployed.addresses,
                "start_block": deployed.start_block,
                "deployer": deployed.deployer,
            }
        )
    )
    back = Deployment.read(old)
    assert back.addresses == deployed.addresses and back.contracts == {}
    back.check(w3)  # code present at every address: enough for a format-1 file
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**deployed.to_json(), "version": FORMAT_VERSION + 1}))
    with pytest.raises(LocalStateError, match="newer than this emrshare reads"):
        Deployment.read(newer)
