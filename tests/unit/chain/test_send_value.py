"""ChainClient.send(value=) transfers wei on the in-process py-evm chain too: it is how
the devnet funds new members (``fund_account``), LocalNetwork included."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from emrshare.chain import ChainClient
from emrshare.devnet import dev_private_keys


def test_send_value_on_py_evm(evm_w3: Web3) -> None:
    (key,) = dev_private_keys(1)
    me = Account.from_key(key).address
    evm_w3.eth.send_transaction({"from": evm_w3.eth.accounts[0], "to": me, "value": 10**21})
    to = Account.create().address
    ChainClient(evm_w3, key).send(to, value=12345, with_logs=False)
    assert evm_w3.eth.get_balance(to) == 12345
