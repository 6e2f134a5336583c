"""A chain before London (no base fee: a private consortium chain on an older hardfork)
takes no EIP-1559 transaction. The client sent legacy ``gasPrice`` transactions before
the redesign; it must still transact there: sends, and signed transactions broadcast
later (the proxies' audit logs)."""

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


@pytest.fixture(scope="module")
def berlin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web3]:
    port = free_port()
    log = (tmp_path_factory.mktemp("berlin") / "ganache.log").open("wb")
    proc = subprocess.Popen(
        [
            str(_TOOLS_BIN / "ganache"),
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--chain.hardfork",
            "berlin",
            "--wallet.deterministic",
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


def test_send_on_a_chain_without_base_fee(berlin: Web3) -> None:
    to = Account.create().address
    ChainClient(berlin, _KEY).send(to, value=7, with_logs=False)
    assert berlin.eth.get_balance(to) == 7


def test_sign_then_broadcast_on_a_chain_without_base_fee(berlin: Web3) -> None:
    client = ChainClient(berlin, _KEY)
    signed = client.sign(Account.create().address, b"", gas=30_000)
    client.broadcast(signed.raw)
    assert client.transaction_state(signed.tx_hash, timeout=30) == "confirmed"
