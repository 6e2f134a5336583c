"""The calls roles and the proxy use: sign now and broadcast later, transaction state,
block reads, typed nonce errors, the fast append and multi-kind event queries."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from web3 import Web3

from emrshare.chain import (
    AccessLogged,
    ChainClient,
    EntryAppended,
    GrantCreated,
    GrantRevokedEvent,
    Grants,
    NonceManager,
    SignedTransaction,
    TagRevoked,
    WriterAuthorized,
    WriterRevoked,
    record_id,
    record_ids,
)
from emrshare.errors import ContractRevert, NonceTooLow, TransactionFailed
from emrshare.types import CategoryTag

from .conftest import HOSPITAL, INSURER, PATIENT, PROXY_A, Net

TAG = CategoryTag(b"\x44" * 32)
OTHER = CategoryTag(b"\x55" * 32)


def test_sign_then_broadcast_and_broadcast_again(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    client = grants.client
    start = net.w3.eth.get_transaction_count(net.addr(PATIENT))
    price = net.w3.eth.gas_price  # what the node asks now: base fee plus its tip
    base_fee = int(net.w3.eth.get_block("latest")["baseFeePerGas"])
    signed = client.sign(grants.address, grants._encode("revokeTag", [TAG]))
    assert isinstance(signed, SignedTransaction)
    assert signed.nonce == start
    assert signed.raw.hex() not in repr(signed) and len(repr(signed)) < 120
    assert client.broadcast(signed.raw) == signed.tx_hash
    assert client.transaction_state(signed.tx_hash) == "confirmed"
    mined = int(net.w3.eth.get_transaction_receipt(signed.tx_hash)["blockNumber"])
    assert client.receipt_block(signed.tx_hash) == mined
    tx = net.w3.eth.get_transaction(signed.tx_hash)
    tip = max(price - base_fee, 0)  # EIP-1559, priced by the node
    assert tx["type"] == 2 and tx["maxPriorityFeePerGas"] == tip
    assert tx["maxFeePerGas"] == 4 * base_fee + tip
    # Pooled or mined already: sending the same bytes again is not an error.
    assert client.broadcast(signed.raw) == signed.tx_hash
    # The nonce was taken from the manager: the next send follows it.
    r = grants.revoke_tag(OTHER)
    assert net.w3.eth.get_transaction(r.tx_hash)["nonce"] == start + 1


def test_broadcast_refused_for_good_is_a_transaction_failure(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    client = grants.client
    nonce = client.account_nonce()
    signed = client.sign(grants.address, grants._encode("revokeTag", [TAG]), gas=1_000, nonce=nonce)
    with pytest.raises(TransactionFailed) as info:
        client.broadcast(signed.raw)  # below the intrinsic gas
    assert not isinstance(info.value, NonceTooLow)
    assert client.account_nonce() == nonce


def test_transaction_state_failed_and_pending(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    client = grants.client
    assert client.transaction_state(os.urandom(32), timeout=0.2) == "failed"  # never seen
    assert client.receipt_block(os.urandom(32)) is None
    # Mined with status 0 (no estimate, a revert).
    bad = client.sign(grants.address, grants._encode("revoke", [b"\x09" * 32]), gas=200_000)
    client.broadcast(bad.raw)
    assert client.transaction_state(bad.tx_hash) == "failed"
    assert client.receipt_block(bad.tx_hash) is None
    # Mining paused: the transaction stays pending.
    paused = ("evm_setAutomine", [False]) if net.node.kind == "anvil" else ("miner_stop", [])
    net.node.rpc(*paused)
    try:
        wait = client.sign(grants.address, grants._encode("revokeTag", [TAG]), gas=100_000)
        client.broadcast(wait.raw)
        assert client.transaction_state(wait.tx_hash, timeout=0.3) == "unknown"
        assert client.receipt_block(wait.tx_hash) is None
    finally:
        if net.node.kind == "anvil":
            net.node.rpc("evm_setAutomine", [True])
        else:
            net.node.rpc("miner_start", [])
    net.node.rpc("evm_mine")
    assert client.transaction_state(wait.tx_hash) == "confirmed"


def test_send_with_a_stale_nonce_rereads_it_and_sends_once(net: Net) -> None:
    key = net.keys[PATIENT]
    stale = net.as_(PATIENT).grants  # its NonceManager caches the next nonce
    other = ChainClient(net.w3, key, nonces=NonceManager(net.w3, net.addr(PATIENT)))
    stale.revoke_tag(TAG)
    other_grants = Grants(other, stale.address)
    other_grants.revoke_tag(TAG)  # uses the nonce ``stale`` expects next
    before = net.w3.eth.get_transaction_count(net.addr(PATIENT))
    r = stale.revoke_tag(OTHER)  # refused once as used; the nonce is re-read, sent again
    assert r.event(TagRevoked).tag == OTHER
    assert net.w3.eth.get_transaction_count(net.addr(PATIENT)) == before + 1  # sent once
    assert int(net.w3.eth.get_transaction(r.tx_hash)["nonce"]) == before


class _AlwaysStale(NonceManager):
    """TEST DOUBLE for a key that other processes keep sending with: every allocation
    hands out the same, already used nonce (the node is real and refuses it)."""

    def __init__(self, w3: object, address: str, nonce: int) -> None:
        super().__init__(w3, address)  # type: ignore[arg-type]
        self.handed = 0
        self._stale = nonce

    @contextlib.contextmanager
    def allocate(self) -> Iterator[int]:
        self.handed += 1
        yield self._stale


def test_send_gives_up_with_nonce_too_low_when_the_nonce_is_taken_again(net: Net) -> None:
    grants = net.as_(PATIENT).grants
    grants.revoke_tag(TAG)
    used = net.w3.eth.get_transaction_count(net.addr(PATIENT)) - 1
    nonces = _AlwaysStale(net.w3, net.addr(PATIENT), used)
    racing = Grants(ChainClient(net.w3, net.keys[PATIENT], nonces=nonces), grants.address)
    with pytest.raises(NonceTooLow, match="as already used"):
        racing.revoke_tag(OTHER)
    assert nonces.handed == 2  # one send, one after the re-read, then it gives up


def test_block_reads(net: Net) -> None:
    client = net.as_(PATIENT).grants.client
    n = client.latest_block()
    block = net.w3.eth.get_block(n)
    assert client.block_time(n) == int(block["timestamp"])
    assert client.block_hash(n) == bytes(block["hash"])
    assert client.block_hash(n + 1000) is None
    assert client.block_gas_limit() == int(net.w3.eth.get_block("latest")["gasLimit"])
    assert client.account_nonce() == net.w3.eth.get_transaction_count(net.addr(PATIENT))
    assert client.account_nonce("pending") >= client.account_nonce()


def test_append_entries_one_and_many_without_logs(net: Net) -> None:
    p = net.addr(PATIENT)
    index = net.as_(PATIENT).index
    one = index.append_entries(p, TAG, 0, [b"first"])
    assert one.events == () and one.logs == ()
    many = index.append_entries(p, TAG, 1, [b"a", b"b", b"c"], gas=1_000_000)
    assert many.gas_used > 0 and index.next_sequence(p, TAG, p) == 4
    ids = record_ids(p, TAG, p)
    assert [e.record_id for e in index.entries(p, TAG)] == [ids(i) for i in range(4)]
    assert ids(2**64 - 1) == record_id(p, TAG, p, 2**64 - 1)
    with pytest.raises(ContractRevert) as info:
        index.append_entries(p, TAG, 2, [b"again", b"twice"])
    assert info.value.name == "RecordIndex_WrongSequence"


def test_writer_events_of_one_writer_in_chain_order(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    index = net.as_(PATIENT).index
    start = net.w3.eth.block_number + 1
    index.authorize_writer(TAG, h, b"payload-1")
    index.revoke_writer(TAG, h)
    index.authorize_writer(OTHER, h, b"payload-2")
    found = index.writer_events(p, h, start, net.w3.eth.block_number)
    assert [type(e) for e in found] == [WriterAuthorized, WriterRevoked, WriterAuthorized]
    assert [e.tag for e in found] == [TAG, TAG, OTHER]
    assert all(e.writer == h and e.patient == p for e in found)
    assert index.writer_events(p, h, start, start - 1) == []
    assert index.writer_events(p, net.addr(INSURER), start, net.w3.eth.block_number) == []


def test_signed_log_accesses_and_events_between(net: Net) -> None:
    start = net.w3.eth.block_number + 1
    r = net.as_(PATIENT).grants.grant(net.grant_params())
    pid = r.event(GrantCreated).policy_id
    net.as_(PATIENT).index.append(net.addr(PATIENT), TAG, 0, b"entry")
    audit = net.as_(PROXY_A).audit
    client = audit.client
    signed = audit.sign_log_accesses(
        pid,
        net.addr(HOSPITAL),
        net.proxies,
        [net.access(pid, PROXY_A)],
        nonce=client.account_nonce(),
        gas=600_000,
    )
    client.broadcast(signed.raw)
    assert client.transaction_state(signed.tx_hash) == "confirmed"
    net.as_(PATIENT).grants.revoke(pid)
    end = net.w3.eth.block_number
    contracts = net.as_(PATIENT)
    kinds = (GrantCreated, GrantRevokedEvent, EntryAppended, AccessLogged)
    found = contracts.events_between(start, end, kinds)
    assert [type(e) for e in found] == [
        GrantCreated,
        EntryAppended,
        AccessLogged,
        GrantRevokedEvent,
    ]
    assert found == sorted(found, key=lambda e: (e.block_number, e.log_index))
    logged = found[2]
    assert isinstance(logged, AccessLogged) and logged.proxy == net.addr(PROXY_A)
    only = contracts.events_between(start, end, [GrantRevokedEvent])
    assert [type(e) for e in only] == [GrantRevokedEvent]
    assert Web3.to_checksum_address(net.addr(PATIENT)) == only[0].patient  # type: ignore[attr-defined]
