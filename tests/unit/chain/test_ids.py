"""Off-chain derivations match the contracts' (checked on chain in the integration tests)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from eth_abi.abi import encode
from eth_abi.exceptions import EncodingError
from eth_utils.crypto import keccak

from emrshare.chain import (
    FHIR_PURPOSES,
    ZERO_HEAD,
    binding_for,
    next_head,
    policy_id,
    proxies_hash,
    purpose_code,
    record_id,
    record_ids,
    verify_chain,
)
from emrshare.errors import IndexIntegrityError
from emrshare.types import CategoryTag

PATIENT = "0x" + "aa" * 20
WRITER = "0x" + "bb" * 20
TAG = CategoryTag(b"\x01" * 32)


def test_policy_id_is_abi_encode_not_packed() -> None:
    nonce = b"\x05" * 32
    expected = keccak(bytes(12) + bytes.fromhex("aa" * 20) + nonce)
    assert policy_id(PATIENT, nonce) == expected
    with pytest.raises(ValueError, match="32 random bytes"):
        policy_id(PATIENT, b"short")


def test_record_id_and_proxies_hash() -> None:
    assert record_id(PATIENT, TAG, WRITER, 9) == keccak(
        encode(["address", "bytes32", "address", "uint64"], [PATIENT, TAG, WRITER, 9])
    )
    assert proxies_hash([WRITER]) == keccak(encode(["address[]"], [[WRITER]]))


def test_stream_record_ids_are_the_abi_encoding_of_each_sequence() -> None:
    of = record_ids(PATIENT, TAG, WRITER)
    for n in (0, 1, 2**32, 2**64 - 1):
        assert of(n) == keccak(
            encode(["address", "bytes32", "address", "uint64"], [PATIENT, TAG, WRITER, n])
        )
    for bad in (-1, 2**64):
        with pytest.raises(EncodingError):
            of(bad)
        with pytest.raises(EncodingError):
            record_id(PATIENT, TAG, WRITER, bad)


def test_binding_is_the_first_27_bytes_of_abi_encoded_grantee_and_proxies() -> None:
    proxies = [WRITER, "0x" + "cc" * 20]
    full = keccak(encode(["address", "address[]"], [PATIENT, proxies]))
    assert binding_for(PATIENT, proxies) == full[:27]
    assert len(binding_for(PATIENT, [])) == 27
    assert binding_for(PATIENT, proxies) != binding_for(WRITER, proxies)
    assert binding_for(PATIENT, proxies) != binding_for(PATIENT, proxies[::-1])
    # Pinned (the integration tests check the contract computes the same).
    assert binding_for(PATIENT, proxies).hex() == full[:27].hex()


def test_purpose_codes() -> None:
    assert purpose_code("TREAT") == b"TREAT" + bytes(27)
    assert all(len(purpose_code(c)) == 32 for c in FHIR_PURPOSES)
    for bad in ("", "treat", "TRE AT", "X" * 33, "TRÉAT"):
        with pytest.raises(ValueError, match="PurposeOfUse"):
            purpose_code(bad)


@dataclass(frozen=True)
class _Ev:
    patient: str
    tag: bytes
    author: str
    sequence: int
    head: bytes
    entry: bytes


def _chain(n: int) -> list[_Ev]:
    out, head = [], ZERO_HEAD
    for i in range(n):
        entry = bytes([i]) * 10
        head = next_head(head, record_id(PATIENT, TAG, WRITER, i), entry)
        out.append(_Ev(PATIENT, TAG, WRITER, i, head, entry))
    return out


def test_verify_chain_accepts_the_real_chain() -> None:
    evs = _chain(4)
    assert verify_chain(evs) == (evs[-1].head, 4)
    assert verify_chain(evs[2:], head=evs[1].head) == (evs[-1].head, 2)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda evs: evs[:1] + evs[2:],  # dropped
        lambda evs: [evs[1], evs[0], *evs[2:]],  # reordered
        lambda evs: [evs[0], replace(evs[1], entry=b"forged"), *evs[2:]],  # forged entry
        lambda evs: [evs[0], replace(evs[1], sequence=7), *evs[2:]],  # forged sequence
        lambda evs: [evs[0], replace(evs[1], author=PATIENT), *evs[2:]],  # forged author
    ],
)
def test_verify_chain_detects_tampering(tamper: object) -> None:
    evs = _chain(4)
    with pytest.raises(IndexIntegrityError, match="query another node"):
        verify_chain(tamper(evs))  # type: ignore[operator]


def test_grant_params_are_checked_before_encoding() -> None:
    from emrshare.chain import GrantParams

    ok = {
        "nonce": b"\x01" * 32,
        "grantee": WRITER,
        "tag": TAG,
        "expiry": 2**40 - 1,
        "proxies": [WRITER],
        "threshold": 1,
        "sealed_kfrags": [b"k"],
        "sealed_grantee_map": b"m",
    }
    assert GrantParams(**ok).as_abi()[3] == 2**40 - 1
    assert len(GrantParams(**ok).as_abi()) == 9  # no epoch on chain; the scope last
    assert GrantParams(**ok).as_abi()[8] == []  # unscoped: the whole tag
    scoped = [b"\x01" * 32, b"\x02" * 32]
    assert GrantParams(**ok, records=scoped).as_abi()[8] == scoped
    for bad in (
        {"expiry": 2**40},
        {"nonce": b"short"},
        {"threshold": 256},
        {"expiry": -1},
        {"records": [b"\x01" * 31]},
        {"records": scoped[::-1]},  # not ascending
        {"records": [scoped[0], scoped[0]]},  # repeated
    ):
        with pytest.raises(ValueError):
            GrantParams(**{**ok, **bad})  # type: ignore[arg-type]


def test_scope_hash_is_the_records_hash_of_the_sorted_ids() -> None:
    from emrshare.chain import records_hash, scope_hash

    a, b = b"\x01" * 32, b"\x02" * 32
    assert scope_hash([b, a]) == scope_hash([a, b]) == records_hash([a, b])
    assert scope_hash([a]) != scope_hash([a, b])


def test_records_hash_is_keccak_of_the_concatenated_ids_pinned() -> None:
    from emrshare.chain.ids import records_hash

    first, second = bytes(range(32)), b"\xff" * 32
    assert records_hash([first, second]) == keccak(first + second)
    # Pinned: proxies write it to AuditLog and patients recompute it to name their records.
    assert records_hash([first, second]).hex() == (
        "973959d8d1d6ab6150fac25d82988abe90f2a7e1d4f6b306c061e8c789ef6d63"
    )
    assert records_hash([]).hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert records_hash([first, second]) != records_hash([second, first]), "order matters"


def test_records_hash_has_one_definition() -> None:
    from emrshare import chain
    from emrshare.chain import ids
    from emrshare.proxy.node import chain as node_chain
    from emrshare.roles import patient

    # The audit log now carries capsule hashes; callers that still use records_hash must
    # use this one definition.
    for module in (node_chain, patient):
        assert getattr(module, "records_hash", ids.records_hash) is ids.records_hash
    assert chain.records_hash is ids.records_hash


def test_an_empty_scope_is_refused_not_read_as_the_whole_category() -> None:
    from emrshare.errors import InvalidInput
    from emrshare.roles._grants import grant_args

    whole = grant_args(WRITER, "lab-results", 3600, None, None, True)
    assert "records" not in whole  # no records named: the whole category
    with pytest.raises(InvalidInput, match="names no record"):
        grant_args(WRITER, "lab-results", 3600, None, None, True, [])
    one = grant_args(WRITER, "lab-results", 3600, None, None, True, [b"\x02" * 32, b"\x01" * 32])
    assert one["records"] == ["01" * 32, "02" * 32]  # sorted, as the contract requires
