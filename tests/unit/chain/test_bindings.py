"""Bindings match the ABIs: event dataclasses, log decoding, topics, the event cursor."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from eth_abi.abi import encode
from web3 import Web3

from emrshare.chain import (
    AuditLog,
    ChainClient,
    Claims,
    ConsortiumRegistry,
    DrugTrace,
    EntryAppended,
    EventCursor,
    GrantCreated,
    Grants,
    MemberAdmitted,
    PatientProfiles,
    RecordIndex,
    Role,
    record_id,
)
from emrshare.chain._logs import event_topic, topic_for
from emrshare.errors import ConfigurationError

BINDINGS = (ConsortiumRegistry, PatientProfiles, RecordIndex, Grants, AuditLog, Claims, DrugTrace)
ADDR = "0x" + "12" * 20


def _client() -> ChainClient:
    # A provider that is never contacted: these tests only encode and decode.
    return ChainClient(Web3(Web3.HTTPProvider("http://127.0.0.1:9")))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.NAME)
def test_event_dataclasses_match_the_abi(binding: type) -> None:
    b = binding(_client(), ADDR)
    abi_events = {e["name"]: e for e in b._abi if e["type"] == "event"}
    own = {n for n in abi_events if n != "EIP712DomainChanged"}
    assert {cls.ABI_NAME for cls in binding.EVENTS} == own
    for cls in binding.EVENTS:
        names = [f.name for f in fields(cls)][3:]
        renamed = {"ref": "reference"}  # Solidity reserves `reference`
        abi_names = [
            renamed.get(p["name"]) or _snake(p["name"]) for p in abi_events[cls.ABI_NAME]["inputs"]
        ]
        if cls is EntryAppended:
            names.remove("record_id")  # derived when decoding
        if cls is GrantCreated:
            names.remove("records")  # joined from its GrantScoped by Grants.events
        assert sorted(names) == sorted(abi_names), cls.ABI_NAME


def test_decode_entry_appended_log() -> None:
    idx = RecordIndex(_client(), ADDR)
    abi = next(e for e in idx._abi if e.get("name") == "EntryAppended")
    patient, author, tag = "0x" + "aa" * 20, "0x" + "bb" * 20, b"\x07" * 32
    data = encode(["address", "uint64", "bytes28", "bytes"], [author, 3, b"\x09" * 28, b"sealed"])
    log = {
        "address": ADDR,
        "topics": [event_topic(abi), topic_for("address", patient), tag],
        "data": data,
        "blockNumber": 5,
        "transactionHash": b"\x01" * 32,
        "logIndex": 2,
    }
    ev = idx.decode_log(log)
    assert isinstance(ev, EntryAppended)
    assert ev.patient == Web3.to_checksum_address(patient) and ev.tag == tag
    assert (ev.sequence, ev.head, ev.entry) == (3, b"\x09" * 28, b"sealed")
    assert ev.author == Web3.to_checksum_address(author)
    assert not hasattr(ev, "epoch")
    assert ev.record_id == record_id(patient, tag, author, 3)
    assert (ev.block_number, ev.log_index) == (5, 2)
    assert idx.decode_log({**log, "topics": [b"\x00" * 32]}) is None


def test_enum_fields_are_decoded() -> None:
    reg = ConsortiumRegistry(_client(), ADDR)
    abi = next(e for e in reg._abi if e.get("name") == "MemberAdmitted")
    log = {
        "address": ADDR,
        "topics": [event_topic(abi), topic_for("address", ADDR)],
        "data": "0x" + encode(["uint8"], [2]).hex(),
        "blockNumber": 1,
        "transactionHash": b"\x02" * 32,
        "logIndex": 0,
    }
    ev = reg.decode_log(log)
    assert isinstance(ev, MemberAdmitted) and ev.role is Role.PROXY


def test_filters_are_checked() -> None:
    idx = RecordIndex(_client(), ADDR)
    with pytest.raises(TypeError, match="filtered on"):
        idx._topics(EntryAppended, {"entry": b"x"})
    topics = idx._topics(EntryAppended, {"tag": [b"\x01" * 32, b"\x02" * 32]})
    assert topics[1] is None and topics[2] == [b"\x01" * 32, b"\x02" * 32]


def test_cursor_persists_and_never_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "c" / "cursor.json"
    c = EventCursor(path)
    assert c.next_block("grants", 7) == 7
    c.advance("grants", 20)
    c.advance("grants", 10)
    assert EventCursor(path).next_block("grants", 0) == 20
    assert EventCursor().next_block("x", 3) == 3
    path.write_text("[not json")
    with pytest.raises(ConfigurationError, match="delete it to rescan"):
        EventCursor(path)
