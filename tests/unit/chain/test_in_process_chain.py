"""The bindings work on the in-process py-evm chain too (Network.local() uses it)."""

from __future__ import annotations

import pytest
from web3 import Web3

from emrshare.chain import ChainClient, Contracts, EntryAppended, deploy_contracts, verify_chain
from emrshare.devnet import dev_private_keys
from emrshare.errors import ContractRevert, DeploymentError
from emrshare.types import CategoryTag

TAG = CategoryTag(b"\x01" * 32)


def test_bindings_and_reverts_on_py_evm(evm_w3: Web3) -> None:
    keys = dev_private_keys(2)
    for k in keys:
        me = evm_w3.eth.account.from_key(k).address
        evm_w3.eth.send_transaction({"from": evm_w3.eth.accounts[0], "to": me, "value": 10**21})
    dep = deploy_contracts(evm_w3, keys[0])
    c = Contracts.from_deployment(ChainClient(evm_w3, keys[1]), dep)
    p = c.index.client.address
    assert p is not None
    r = c.index.append_batch(p, TAG, 0, [b"a", b"b"])
    assert len(r.events_of(EntryAppended)) == 2
    assert verify_chain(c.index.entries(p)) == (c.index.head(p).head, 2)
    # Reads at a block work on eth-tester too (it wants the block as an int).
    landed = r.block_number
    assert c.index.head(p, block=landed).count == 2
    assert c.index.head(p, block=landed - 1).count == 0
    with pytest.raises(ContractRevert) as info:
        c.index.append(p, TAG, 0, b"again")
    assert info.value.name == "RecordIndex_WrongSequence"
    assert (info.value.args_by_name["expected"], info.value.args_by_name["given"]) == (2, 0)
    ro = Contracts.from_deployment(ChainClient(evm_w3), dep)
    with pytest.raises(ContractRevert) as info:
        ro.profiles.profile(p)
    assert (info.value.name, info.value.args_by_name) == (
        "PatientProfiles_NotRegistered",
        {"patient": p},
    )


def test_partial_deployment_wires_existing_addresses(evm_w3: Web3) -> None:
    key = dev_private_keys(1)[0]
    me = evm_w3.eth.account.from_key(key).address
    evm_w3.eth.send_transaction({"from": evm_w3.eth.accounts[0], "to": me, "value": 10**21})
    with pytest.raises(DeploymentError, match="needs ConsortiumRegistry"):
        deploy_contracts(evm_w3, key, names=["Grants"])
    reg = deploy_contracts(evm_w3, key, names=["ConsortiumRegistry"])
    with pytest.raises(DeploymentError, match="needs PatientProfiles"):
        deploy_contracts(evm_w3, key, names=["Grants"], existing=reg.addresses)
    rest = deploy_contracts(
        evm_w3,
        key,
        names=["PatientForwarder", "PatientProfiles", "RecordIndex", "Grants", "AuditLog"],
        existing=reg.addresses,
    )
    assert set(rest.addresses) == {
        "PatientForwarder",
        "PatientProfiles",
        "RecordIndex",
        "Grants",
        "AuditLog",
    }
    from emrshare.chain import AuditLog, Grants, RecordIndex

    client = ChainClient(evm_w3, key)
    grants = Grants(client, rest.addresses["Grants"])
    registry = reg.addresses["ConsortiumRegistry"]
    assert Web3.to_checksum_address(grants._call("registry")[0]) == registry
    assert (
        Web3.to_checksum_address(grants._call("profiles")[0]) == rest.addresses["PatientProfiles"]
    )
    index = RecordIndex(client, rest.addresses["RecordIndex"])
    assert Web3.to_checksum_address(index._call("registry")[0]) == registry
    audit = AuditLog(client, rest.addresses["AuditLog"])
    assert Web3.to_checksum_address(audit._call("registry")[0]) == registry
    assert Web3.to_checksum_address(audit._call("grants")[0]) == rest.addresses["Grants"]


def test_binding_at_an_address_without_the_contract_is_a_chain_error(evm_w3: Web3) -> None:
    from emrshare.chain import RecordIndex
    from emrshare.errors import ChainError

    # No code at this address: eth_call answers nothing, which must not surface as an
    # eth-abi decoding error.
    index = RecordIndex(ChainClient(evm_w3), "0x" + "42" * 20)
    with pytest.raises(ChainError, match=r"RecordIndex\.chainOf .*Deployment\.check"):
        index.head(evm_w3.eth.accounts[0])
    # A log whose topic is EntryAppended's but whose data is garbage.
    topic = next(t for t, (cls, _) in index._by_topic.items() if cls is EntryAppended)
    log = {
        "topics": [topic, b"\x00" * 32, b"\x00" * 32, b"\x00" * 32],
        "data": b"\x01\x02",
        "blockNumber": 5,
        "transactionHash": b"\x00" * 32,
        "logIndex": 0,
    }
    with pytest.raises(ChainError, match=r"EntryAppended log .* does not decode"):
        index.decode_log(log)
