"""CID parsing and printing, varints, profile validation."""

from __future__ import annotations

import hashlib

import pytest

from emrshare.errors import ConfigurationError, IntegrityError, WireFormatError
from emrshare.storage import UnixfsProfile, parse_cid, to_v1
from emrshare.storage.cid import DAG_PB, RAW, CidInfo, decode_varint, encode_varint

# `ipfs_cid` output for the three bytes "hi\n" (Kubo defaults), printed in both forms.
HI_V0 = "QmZLRFWaz9Kypt2ACNMDzA5uzACDRiCqwdkNSP1UZsu56D"
HI_V1 = "bafybeifdmflkybo26fnmpxrcoakgaeax4yrt2kftctbcz3zz6uz3c5p3xy"
# Kubo's raw-leaf CID of the empty input (sha2-256 of b"").
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varint_round_trip(n: int) -> None:
    enc = encode_varint(n)
    assert decode_varint(enc) == (n, len(enc))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\xff" * 10, b"\x80\x00"])
def test_varint_rejects(bad: bytes) -> None:
    with pytest.raises(WireFormatError):
        decode_varint(bad)


def test_v0_v1_forms() -> None:
    v0 = parse_cid(HI_V0)
    assert (v0.version, v0.codec) == (0, DAG_PB)
    assert str(v0) == HI_V0
    assert to_v1(HI_V0) == HI_V1
    v1 = parse_cid(HI_V1)
    assert v1.digest == v0.digest
    assert v1.key == v0.key
    assert CidInfo.from_bytes(v1.to_bytes()) == v1
    assert CidInfo.from_bytes(v0.to_bytes()) == v0


def test_raw_cid_of_empty_input() -> None:
    info = CidInfo.for_block(b"", RAW, 1)
    assert str(info) == EMPTY_RAW
    assert info.digest == hashlib.sha256(b"").digest()
    assert parse_cid(EMPTY_RAW) == info


@pytest.mark.parametrize(
    "bad",
    ["", "Qm123", "bafy!!", "xyz", HI_V0[:-1] + "0", "bafkqaaa"],
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(WireFormatError):
        parse_cid(bad)


def test_v0_must_be_dag_pb() -> None:
    with pytest.raises(WireFormatError):
        CidInfo(0, RAW, bytes(32))


def test_verify_names_the_cid() -> None:
    info = CidInfo.for_block(b"block", RAW, 1)
    info.verify(b"block")
    with pytest.raises(IntegrityError) as err:
        info.verify(b"blocK")
    assert err.value.cid == str(info)
    assert str(info) in str(err.value)


@pytest.mark.parametrize(
    ("version", "raw", "chunk", "links"),
    [(2, False, 10, 10), (0, True, 10, 10), (1, True, 0, 10), (1, True, 10, 1)],
)
def test_profile_validation(version: int, raw: bool, chunk: int, links: int) -> None:
    with pytest.raises(ConfigurationError):
        UnixfsProfile("bad", version, raw, chunk, links)
