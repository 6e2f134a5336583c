"""Salted invoices and waybills: digests, what the regulator checks, what a repr hides."""

from __future__ import annotations

import json
import os

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from emrshare.errors import InvalidInput
from emrshare.trace import Invoice, Waybill

BATCH = b"\xba" * 32
A, B = "0x" + "11" * 20, "0x" + "22" * 20


def test_digest_is_the_documented_encoding() -> None:
    inv = Invoice.new("INV-2026-0042", 1_234_500, "91310000MA1K", BATCH, 60)
    want = keccak(
        encode(
            ["bytes32", "string", "uint256", "string", "bytes32", "uint256"],
            [inv.salt, "INV-2026-0042", 1_234_500, "91310000MA1K", BATCH, 60],
        )
    )
    assert inv.digest() == want and inv.matches(want)
    assert not inv.matches(bytes(32))


def test_the_salt_hides_a_guessed_invoice() -> None:
    a = Invoice.new("INV-1", 100, "TAX", BATCH, 1)
    b = Invoice.new("INV-1", 100, "TAX", BATCH, 1)
    assert a.salt != b.salt and a.digest() != b.digest()


@pytest.mark.parametrize(
    "field", ["number", "amount_minor", "tax_id", "batch_id", "quantity", "salt"]
)
def test_every_field_is_in_the_digest(field: str) -> None:
    inv = Invoice.new("INV-1", 100, "TAX", BATCH, 5)
    other = {
        "number": "INV-2",
        "amount_minor": 101,
        "tax_id": "TAX2",
        "batch_id": b"\xbb" * 32,
        "quantity": 6,
        "salt": os.urandom(32),
    }[field]
    kw = {f: getattr(inv, f) for f in inv.__slots__ if f != "shipment_id"}
    kw[field] = other
    assert not Invoice(**kw).matches(inv.digest())


def test_repr_hides_the_commercial_fields() -> None:
    inv = Invoice.new("INV-SECRET-77", 987_654, "TAXSECRET", BATCH, 3)
    wb = Waybill("WB-SECRET-5", "SecretCarrier", A, B, BATCH, 3)
    for text in (repr(inv), str(inv), repr(wb)):
        for secret in ("SECRET", "987654", inv.salt.hex(), wb.salt.hex()):
            assert secret not in text


def test_json_round_trip_and_edits_are_caught() -> None:
    inv = Invoice.new("INV-1", 100, "TAX", BATCH, 5).for_shipment(b"\x5a" * 32)
    back = Invoice.from_json(inv.to_json())
    assert back == inv and back.shipment_id == b"\x5a" * 32
    edited = json.loads(inv.to_json())
    edited["amountMinor"] = 90
    with pytest.raises(InvalidInput, match="was edited"):
        Invoice.from_json(json.dumps(edited))
    # Without its stated digest it loads, and the regulator's check against the chain fails.
    del edited["digest"]
    assert not Invoice.from_json(json.dumps(edited)).matches(inv.digest())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "other"}, "not an emrshare invoice"),
        ({"number": ""}, "1 to 64 printable"),
        ({"number": " INV"}, "no outer spaces"),
        ({"taxId": "a\nb"}, "1 to 64 printable"),
        ({"amountMinor": -1}, "whole number"),
        ({"amountMinor": True}, "whole number"),
        ({"quantity": 0}, "more than zero"),
        ({"quantity": 1.5}, "whole number"),
        ({"batchId": "0x12"}, "32 bytes"),
        ({"salt": "zz" * 32}, "32 bytes"),
        ({"shipmentId": "0x"}, "32 bytes"),
        ({"number": "\ud800"}, "printable"),  # a lone surrogate does not encode
        ({"amountMinor": float("nan")}, "whole number"),
    ],
)
def test_malformed_invoice_files(change: dict[str, object], match: str) -> None:
    doc = json.loads(Invoice.new("INV-1", 100, "TAX", BATCH, 5).to_json())
    doc.update(change)
    doc.pop("digest")
    with pytest.raises(InvalidInput, match=match):
        Invoice.from_json(json.dumps(doc))


def test_missing_field_and_not_json() -> None:
    doc = json.loads(Invoice.new("INV-1", 100, "TAX", BATCH, 5).to_json())
    del doc["taxId"]
    with pytest.raises(InvalidInput, match="no 'taxId'"):
        Invoice.from_json(json.dumps(doc))
    with pytest.raises(InvalidInput, match="not JSON"):
        Invoice.from_json(b"\xff\xfe")
    for deep in ("[" * 100_000, b'{"a":' * 100_000):
        with pytest.raises(InvalidInput, match="not JSON"):
            Invoice.from_json(deep)
        with pytest.raises(InvalidInput, match="not JSON"):
            Waybill.from_json(deep)


def test_waybill_digest_round_trip_and_checks() -> None:
    wb = Waybill("WB-1", "Carrier Co", A, B, BATCH, 7)
    assert Waybill.from_json(wb.to_json()) == wb
    # The digest ignores address case (a checksummed address is the same party).
    upper = Waybill("WB-1", "Carrier Co", A.upper().replace("0X", "0x"), B, BATCH, 7, wb.salt)
    assert upper.digest() == wb.digest() and wb.matches(upper.digest())
    assert Waybill("WB-1", "Carrier Co", A, B, BATCH, 7).digest() != wb.digest()
    edited = json.loads(wb.to_json())
    edited["quantity"] = 8
    with pytest.raises(InvalidInput, match="was edited"):
        Waybill.from_json(json.dumps(edited))
    with pytest.raises(InvalidInput, match="account address"):
        Waybill("WB-1", "Carrier Co", "0x1234", B, BATCH, 7)
