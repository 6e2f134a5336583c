"""Hole 8: every malformed re-encryption body is a ``WireFormatError`` at parse, never a
value that fails later inside the proxy (the journal, the EIP-712 encoder, a response)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account

from emrshare.errors import WireFormatError
from emrshare.proxy.request import (
    MAX_DEADLINE,
    ReencryptRequest,
    SignedRequest,
    capsule_hash,
    parse_json_body,
)

from .bodies import FIELDS
from .mutate import HOSTILE_VALUES, json_mutations, raw_json_variants

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
GRANTS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROXY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def valid_body(**kw: Any) -> dict[str, Any]:
    capsules = (b"capsule-1", b"capsule-2")
    req = ReencryptRequest.new(
        PROXY, b"\x11" * 32, [capsule_hash(c) for c in capsules], kw.get("deadline", 1_900_000_000)
    )
    return SignedRequest(
        req,
        31337,
        GRANTS,  # type: ignore[arg-type]
        req.sign(KEY, 31337, GRANTS),
        capsules,
    ).to_json()


def parse_text(text: str | bytes) -> SignedRequest:
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else text
    return SignedRequest.from_json(parse_json_body(raw))


def test_the_valid_body_parses() -> None:
    body = valid_body()
    assert parse_text(json.dumps(body)).to_json() == body


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", FIELDS)
def test_attack_json_infinity_is_refused_at_parse(field: str, token: str) -> None:
    body = valid_body()
    text = json.dumps(body)
    value = json.dumps(body[field])
    text = text.replace(f'"{field}": {value}', f'"{field}": {token}')
    assert token in text
    with pytest.raises(WireFormatError, match="NaN or Infinity"):
        parse_text(text)


@pytest.mark.parametrize("deadline", [2**63, 2**64 - 1, 2**256 - 1, 2**256, -1])
def test_attack_huge_deadline_is_refused_at_parse(deadline: int) -> None:
    body = valid_body()
    body["deadline"] = deadline
    with pytest.raises(WireFormatError, match="deadline"):
        parse_text(json.dumps(body))
    body["deadline"] = MAX_DEADLINE  # the largest the journal can hold still parses
    assert parse_text(json.dumps(body)).request.deadline == MAX_DEADLINE


@pytest.mark.parametrize("chain_id", [2**63, 2**256, -1])
def test_attack_huge_chain_id_is_refused_at_parse(chain_id: int) -> None:
    body = valid_body()
    body["chain_id"] = chain_id
    with pytest.raises(WireFormatError, match="chain_id"):
        parse_text(json.dumps(body))


@pytest.mark.parametrize(
    "nonce",
    [
        "\u0661\u0662\u0663",  # Arabic-Indic digits: int() reads 123
        "\uff11\uff12",  # full-width digits
        " 123",
        "123 ",
        "+123",
        "-1",
        "1_000",
        "0123",
        "0x10",
        "",
        str(2**256),
        123,  # a number where the wire form has a decimal string
        1.0,
        True,
        None,
    ],
)
def test_attack_unicode_and_padded_nonce_is_refused(nonce: Any) -> None:
    body = valid_body()
    body["nonce"] = nonce
    with pytest.raises(WireFormatError, match=r"nonce|fraction"):
        parse_text(json.dumps(body))


@pytest.mark.parametrize("field", ["chain_id", "deadline"])
@pytest.mark.parametrize("value", ["31337", "1900000000", True, False, None, 1.0, "\u0661", [1]])
def test_attack_strings_and_booleans_where_ints_are_expected(field: str, value: Any) -> None:
    body = valid_body()
    body[field] = value
    with pytest.raises(WireFormatError, match=rf"{field}|fraction"):
        parse_text(json.dumps(body))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy_id", "11" * 32),  # hex without 0x
        ("policy_id", "0x" + "1" * 63),  # odd length
        ("policy_id", "0x" + "11" * 33),  # oversized
        ("policy_id", "0x" + "11 " * 32),  # bytes.fromhex skips spaces
        ("policy_id", "0X" + "11" * 32),
        ("signature", "0x" + "00" * 66),
        ("capsules", ["0x" + "00" * 4096]),
        ("capsules", "0x00"),
        ("capsule_hashes", ["0x" + "00" * 31]),
        ("capsule_hashes", [1]),
        ("proxy", PROXY[2:]),
        ("proxy", PROXY + "00"),
        ("proxy", 0x70997970C51812DC3A010C7D01B50E0D17DC79C8),
        ("verifying_contract", ""),
    ],
)
def test_attack_malformed_hex_is_refused(field: str, value: Any) -> None:
    body = valid_body()
    body[field] = value
    with pytest.raises(WireFormatError, match=field):
        parse_text(json.dumps(body))


def test_attack_duplicate_keys_are_refused() -> None:
    text = json.dumps(valid_body())
    with pytest.raises(WireFormatError, match="duplicate"):
        parse_text('{"deadline": 0, ' + text[1:])


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe{}",
        b'{"a": "\xc3\x28"}',
        '{"a": 1}'.encode("utf-16"),
        b"\xef\xbb\xbf{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": 1e400}',
        b'{"a": 1.5}',
        b"",
        b"[]",
        b"1",
        b'"x"',
        b"null",
        b"{} {}",
    ],
)
def test_attack_non_json_bodies_are_refused(text: bytes) -> None:
    with pytest.raises(WireFormatError):
        parse_text(text)


def test_attack_unknown_and_missing_fields_are_refused() -> None:
    body = valid_body()
    body["\ud800"] = 1  # a key the response could not encode if it were echoed
    with pytest.raises(WireFormatError, match="unknown field") as info:
        parse_text(json.dumps(body))
    str(info.value).encode("utf-8")  # the message is encodable
    body = valid_body()
    del body["signature"]
    with pytest.raises(WireFormatError, match="missing signature"):
        parse_text(json.dumps(body))


def _still_signed(signed: SignedRequest) -> bool:
    req = signed.request
    try:
        signer = req.recover(signed.signature, signed.chain_id, signed.verifying_contract)
    except WireFormatError:
        return False
    hashes = tuple(capsule_hash(c) for c in signed.capsules)
    return signer == Account.from_key(KEY).address and hashes == req.capsule_hashes


def test_every_structural_mutation_is_refused_or_equal() -> None:
    """The fast slice of the proxy-body family: each field × each hostile JSON value."""
    body = valid_body()
    original = parse_text(json.dumps(body))
    n = 0
    for label, mutant in json_mutations(body):
        try:
            text = json.dumps(mutant, allow_nan=True)
        except (ValueError, RecursionError):
            continue
        n += 1
        try:
            parsed = parse_text(text)
        except WireFormatError:
            continue
        # A mutant that parses is accepted only if it differs from the original and still
        # carries the grantee's signature over capsules that match their hashes.
        assert not _still_signed(parsed) or parsed == original, label
    for label, text in raw_json_variants(json.dumps(body), FIELDS):
        n += 1
        with pytest.raises(WireFormatError):
            parse_text(text)
        del label
    assert n > 9 * len(HOSTILE_VALUES)
