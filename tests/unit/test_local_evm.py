"""The in-process py-evm chain runs the project's contracts (no sockets)."""

from __future__ import annotations

import pytest
from web3 import Web3

from emrshare.chain.deploy import deploy_contracts
from emrshare.devnet import dev_private_keys


def test_deploy_on_py_evm(evm_w3: Web3) -> None:
    # eth-tester funds its own accounts; move funds to our dev key first.
    key = dev_private_keys(1)[0]
    me = evm_w3.eth.account.from_key(key).address
    evm_w3.eth.send_transaction({"from": evm_w3.eth.accounts[0], "to": me, "value": 10**20})
    dep = deploy_contracts(evm_w3, key)
    dep.check(evm_w3)
    assert "PatientProfiles" in dep.addresses


def test_check_detects_wrong_chain(evm_w3: Web3) -> None:
    from emrshare.chain.deploy import Deployment
    from emrshare.errors import DeploymentError

    with pytest.raises(DeploymentError, match="chain"):
        Deployment(chain_id=999, addresses={}, start_block=0, deployer="0x0").check(evm_w3)
