"""Raw JSON-RPC logs (0x-hex, as eth_getLogs answers them): decoded exactly as web3's
formatted logs are, and a malformed one from a faulty or hostile node is a ChainError."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hexbytes import HexBytes

from emrshare.chain.bindings.index import RecordIndex
from emrshare.chain.events import EntryAppended
from emrshare.chain.ids import record_id
from emrshare.errors import ChainError

PATIENT = "0x" + "11" * 20
AUTHOR = "0x" + "22" * 20
TAG = b"\x07" * 32


def _index() -> RecordIndex:
    return RecordIndex(None, "0x" + "33" * 20)  # type: ignore[arg-type]  # decoding only


def _raw_log(index: RecordIndex) -> dict[str, Any]:
    (topic0,) = [t for t, (cls, _) in index._by_topic.items() if cls is EntryAppended]
    _, abi = index._by_topic[topic0]
    indexed = [p for p in abi["inputs"] if p["indexed"]]
    plain = [p for p in abi["inputs"] if not p["indexed"]]

    def val(p: dict[str, Any]) -> Any:  # a value of each field's type
        t = p["type"]
        if t == "address":
            return AUTHOR if p["name"] == "author" else PATIENT
        if t == "bytes":
            return b"sealed entry bytes"
        if t.startswith("bytes"):
            return TAG[: int(t[5:])]
        return 5

    topics = [topic0] + [abi_encode([p["type"]], [val(p)]) for p in indexed]
    data = abi_encode([p["type"] for p in plain], [val(p) for p in plain])
    return {
        "address": index.address.lower(),
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": "0x10",
        "transactionHash": "0x" + "ab" * 32,
        "logIndex": "0x2",
    }


def test_a_raw_log_decodes_as_the_formatted_one() -> None:
    index = _index()
    raw = _raw_log(index)
    formatted = {
        **raw,
        "topics": [HexBytes(t) for t in raw["topics"]],
        "data": HexBytes(raw["data"]),
        "blockNumber": 16,
        "transactionHash": HexBytes(raw["transactionHash"]),
        "logIndex": 2,
    }
    a, b = index.decode_log(raw), index.decode_log(formatted)
    assert a == b and isinstance(a, EntryAppended)
    assert a.block_number == 16 and a.log_index == 2 and a.tx_hash == b"\xab" * 32
    assert a.patient == "0x" + "11" * 20 and a.author == "0x" + "22" * 20
    assert a.record_id == record_id(a.patient, a.tag, a.author, a.sequence)


@pytest.mark.parametrize(
    "damage",
    [
        lambda log: {**log, "topics": None},
        lambda log: {**log, "topics": [log["topics"][0], "0xzz"]},
        lambda log: {**log, "topics": [log["topics"][0], log["topics"][1][2:]]},  # no 0x
        lambda log: {**log, "topics": log["topics"][:-1]},  # one topic short
        lambda log: {**log, "topics": [*log["topics"][:-1], "0x" + "00" * 31]},  # 31 bytes
        lambda log: {**log, "topics": [log["topics"][0], "0x" + "ff" * 32, *log["topics"][2:]]},
        lambda log: {**log, "data": "0x1234"},
        lambda log: {k: v for k, v in log.items() if k != "blockNumber"},
    ],
    ids=["no-topics", "bad-hex", "no-0x", "short", "31-bytes", "address-padding", "data", "block"],
)
def test_a_malformed_raw_log_is_a_chain_error(damage: Any) -> None:
    index = _index()
    with pytest.raises(ChainError):
        index.decode_log(damage(_raw_log(index)))
