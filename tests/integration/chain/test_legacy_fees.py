"""A chain before London (no base fee: a private consortium chain on an older hardfork)
takes no EIP-1559 transaction. The client sent legacy ``gasPrice`` transactions before
the redesign; it must still transact there: sends, and signed transactions broadcast
later (the proxies' audit logs). The same holds where gas is free (price 0): accounts
without ether transact."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from emrshare._process import free_port
from emrshare.chain import ChainClient

_TOOLS_BIN = Path(__file__).resolve().parents[3] / "tools" / "node_modules" / ".bin"
#: ganache's --wallet.deterministic account 0.
_KEY = bytes.fromhex("4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d")


def _ganache(tmp_path_factory: pytest.TempPathFactory, name: str, *flags: str) -> Iterator[Web3]:
    """A ganache on the berlin hardfork (no base fee) with ``flags``, until the module ends."""
    port = free_port()
    log = (tmp_path_factory.mktemp(name) / "ganache.log").open("wb")
    proc = subprocess.Popen(
        [
            str(_TOOLS_BIN / "ganache"),
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--chain.hardfork",
            "berlin",
            *flags,
            "--logging.quiet",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        deadline = time.monotonic() + 60
        while not w3.is_connected():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("ganache did not start")
            time.sleep(0.2)
        assert w3.eth.get_block("latest").get("baseFeePerGas") is None
        yield w3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def berlin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web3]:
    yield from _ganache(tmp_path_factory, "berlin", "--wallet.deterministic")


@pytest.fixture(scope="module")
def free_gas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web3]:
    """A free-gas consortium chain (gas price 0 on an IBFT-era hardfork, as many
    permissioned networks run): accounts hold no ether, and the client must still
    transact there, pricing its transactions as the node asks (a fixed tip would need a
    balance the account does not have)."""
    for w3 in _ganache(tmp_path_factory, "free-gas", "--miner.defaultGasPrice", "0"):
        assert w3.eth.gas_price == 0
        yield w3


def test_send_on_a_chain_without_base_fee(berlin: Web3) -> None:
    to = Account.create().address
    ChainClient(berlin, _KEY).send(to, value=7, with_logs=False)
    assert berlin.eth.get_balance(to) == 7


def test_sign_then_broadcast_on_a_chain_without_base_fee(berlin: Web3) -> None:
    client = ChainClient(berlin, _KEY)
    signed = client.sign(Account.create().address, b"", gas=30_000)
    client.broadcast(signed.raw)
    assert client.transaction_state(signed.tx_hash, timeout=30) == "confirmed"


def test_an_account_without_ether_sends_on_a_free_gas_chain(free_gas: Web3) -> None:
    broke = Account.create()
    assert free_gas.eth.get_balance(broke.address) == 0
    client = ChainClient(free_gas, bytes(broke.key))
    receipt = client.send(Account.create().address, with_logs=False)
    tx = free_gas.eth.get_transaction(receipt.tx_hash)
    assert tx["gasPrice"] == 0


def test_a_signed_transaction_of_an_account_without_ether_is_mined(free_gas: Web3) -> None:
    client = ChainClient(free_gas, bytes(Account.create().key))
    signed = client.sign(Account.create().address, b"", gas=30_000)
    client.broadcast(signed.raw)
    assert client.transaction_state(signed.tx_hash, timeout=30) == "confirmed"
