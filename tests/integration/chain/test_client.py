"""ChainClient: concurrent nonces, revert decoding of mined failures, confirmations, deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from web3 import Web3

from emrshare.chain import ChainClient, Contracts, Deployment, TagRevoked, deploy_contracts
from emrshare.devnet import DevNode
from emrshare.errors import (
    ChainError,
    ConfigurationError,
    ContractRevert,
    DeploymentError,
    TransactionFailed,
    TransactionMinedFailed,
)
from emrshare.types import CategoryTag

from .conftest import OUTSIDER, PATIENT, Net, reverts


def test_concurrent_senders_share_one_nonce_sequence(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    start = net.w3.eth.get_transaction_count(net.addr(PATIENT))
    tags = [CategoryTag(bytes([i + 1]) * 32) for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        receipts = list(pool.map(grants.revoke_tag, tags))
    assert sorted(r.event(TagRevoked).tag for r in receipts) == sorted(tags)
    nonces = sorted(int(net.w3.eth.get_transaction(r.tx_hash)["nonce"]) for r in receipts)
    assert nonces == list(range(start, start + 12))


def test_failed_send_releases_its_nonce(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    with pytest.raises(Exception) as info:
        grants.client.send(grants.address, b"\x00" * 4, gas=1_000)  # below intrinsic gas
    assert not isinstance(info.value, ContractRevert)
    r = grants.revoke_tag(CategoryTag(b"\x01" * 32))
    assert (
        net.w3.eth.get_transaction(r.tx_hash)["nonce"]
        == net.w3.eth.get_transaction_count(net.addr(PATIENT)) - 1
    )


def test_revert_of_a_mined_transaction_is_decoded(net: Net) -> None:
    """Sent without estimation, the transaction is mined with status 0; the client replays
    it to recover the custom error (ganache and anvil put revert data in different places)."""
    grants = net.as_(PATIENT).grants
    unknown = b"\x09" * 32
    data = grants._encode("revoke", [unknown])
    reverts(
        lambda: grants.client.send(grants.address, data, gas=200_000),
        "Grants_UnknownPolicy",
        policyId=unknown,
    )


def test_out_of_gas_is_a_transaction_failure(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    data = grants._encode("revokeTag", [b"\x02" * 32])
    with pytest.raises(TransactionMinedFailed, match="raise the gas limit") as info:
        grants.client.send(grants.address, data, gas=25_000)
    assert isinstance(info.value, TransactionFailed)
    assert info.value.gas_used == 25_000
    assert info.value.block_number == net.w3.eth.block_number
    receipt = net.w3.eth.get_transaction_receipt(info.value.tx_hash)
    assert receipt["status"] == 0


def test_receipts_without_logs_still_check_the_status(net: Net) -> None:
    """``with_logs=False`` (bulk appends) reads the receipt another way; a mined revert
    must still be decoded, an out-of-gas failure still raise, an estimate's revert still
    come first, and the nonce sequence stay in step after mined failures."""
    grants = net.as_(PATIENT).grants
    client = grants.client
    unknown = b"\x09" * 32
    data = grants._encode("revoke", [unknown])
    reverts(
        lambda: client.send(grants.address, data, gas=200_000, with_logs=False),
        "Grants_UnknownPolicy",
        policyId=unknown,
    )
    reverts(
        lambda: client.send(grants.address, data, with_logs=False),
        "Grants_UnknownPolicy",
        policyId=unknown,
    )
    tag = grants._encode("revokeTag", [b"\x03" * 32])
    with pytest.raises(TransactionMinedFailed, match="raise the gas limit"):
        client.send(grants.address, tag, gas=25_000, with_logs=False)
    ok = client.send(grants.address, tag, with_logs=False)
    assert ok.logs == ()
    assert ok.block_number == net.w3.eth.get_transaction_receipt(ok.tx_hash)["blockNumber"]
    assert (
        net.w3.eth.get_transaction(ok.tx_hash)["nonce"]
        == net.w3.eth.get_transaction_count(net.addr(PATIENT)) - 1
    )


def test_read_only_client(net: Net) -> None:
    ro = Contracts.from_deployment(ChainClient(net.w3), net.deployment)
    assert ro.grants.client.address is None
    assert ro.registry.admin_config().threshold == 2
    with pytest.raises(ConfigurationError, match="no private key"):
        ro.grants.revoke_tag(CategoryTag(b"\x01" * 32))
    with pytest.raises(ConfigurationError):
        ChainClient(net.w3, confirmations=0)


@pytest.fixture
def miner(chain: DevNode) -> Iterator[None]:
    stop = threading.Event()

    def mine() -> None:
        while not stop.is_set():
            time.sleep(0.2)
            chain.rpc("evm_mine")

    t = threading.Thread(target=mine, daemon=True)
    t.start()
    yield
    stop.set()
    t.join()


def test_confirmations_wait_for_later_blocks(net: Net, miner: None) -> None:
    c = net.as_(PATIENT, confirmations=3)
    r = c.grants.revoke_tag(CategoryTag(b"\x03" * 32))
    assert net.w3.eth.block_number >= r.block_number + 2
    assert c.grants.client.safe_block() >= r.block_number


def test_deployment_file_round_trip_and_checks(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "deployment.json"
    net.deployment.write(path)
    back = Deployment.read(path)
    assert back == net.deployment
    back.check(net.w3)
    wrong = Deployment(back.chain_id + 1, back.addresses, back.start_block, back.deployer)
    with pytest.raises(DeploymentError, match="chain"):
        wrong.check(net.w3)
    missing = Deployment(back.chain_id, {"Grants": "0x" + "00" * 19 + "01"}, 0, back.deployer)
    with pytest.raises(DeploymentError, match="no Grants contract"):
        missing.check(net.w3)
    with pytest.raises(DeploymentError, match="no AuditLog"):
        missing.address_of("AuditLog")
    with pytest.raises(ConfigurationError, match="no deployment file"):
        Deployment.read(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="not valid"):
        Deployment.read(tmp_path / "bad.json")


def test_reverting_view_and_message(net: Net) -> None:
    out = net.addr(OUTSIDER)
    err = reverts(
        lambda: net.as_(PATIENT).profiles.profile(out), "PatientProfiles_NotRegistered", patient=out
    )
    assert "PatientProfiles_NotRegistered" in str(err) and out in str(err)


def test_web3_is_passed_in(net: Net) -> None:
    other = Web3(Web3.HTTPProvider(net.node.rpc_url))
    c = ChainClient(other, net.keys[PATIENT])
    assert c.w3 is other and c.chain_id == net.w3.eth.chain_id
    assert "private" not in repr(c) and net.keys[PATIENT].hex() not in repr(c)


def test_unreachable_node_is_a_typed_chain_error() -> None:
    # Port 9 (discard) on loopback has no JSON-RPC node: every call must fail as
    # ChainError (an outage the journal retries), never as a raw requests error.
    url = "http://user:pw@127.0.0.1:9/v3/SECRET-API-KEY"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2}))
    reader = ChainClient(w3)
    for call in (reader.latest_block, reader.chain_time, lambda: reader.chain_id):
        with pytest.raises(ChainError, match="is the node reachable") as info:
            call()
        # RPC URLs carry API keys in their path or credentials: never in messages.
        assert "SECRET-API-KEY" not in str(info.value) and "pw@" not in str(info.value)
    writer = ChainClient(w3, b"\x01" * 32)
    with pytest.raises(ChainError):
        writer.send("0x" + "11" * 20, b"")
    with pytest.raises(ChainError, match="is the node reachable"):
        deploy_contracts(w3, b"\x01" * 32)
    with pytest.raises(ChainError, match="is the node reachable"):
        Deployment(1, {"Grants": "0x" + "11" * 20}, 0, "0x" + "22" * 20).check(w3)
