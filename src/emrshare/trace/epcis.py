"""The supply events as a GS1 EPCIS 2.0 JSON-LD document, for supply-chain systems.

One ``ObjectEvent`` per DrugTrace event, with the Core Business Vocabulary's steps and
dispositions:

=====================  ========  ==============  ===============
DrugTrace event        action    bizStep         disposition
=====================  ========  ==============  ===============
BatchRegistered        ADD       commissioning   active
Shipped                OBSERVE   shipping        in_transit
Received               OBSERVE   receiving       in_progress
ShipmentCancelled      OBSERVE   void_shipping   in_progress
Dispensed              DELETE    dispensing      dispensed
Recalled               OBSERVE   holding         recalled
=====================  ========  ==============  ===============

What moves is named by class (``quantityList`` of the batch's GS1 Digital Link, see
:func:`emrshare.trace.gs1.class_uri`), or by instance (``epcList``) for a serialized
unit's dispense. Parties are ``owning_party`` sources and destinations by account
(``urn:ethereum:0x…``); a shipment's invoice and waybill are ``inv`` and ``bol`` business
transactions by their on-chain digests (the plaintexts never leave their parties), and a
dispense's patient link is left out. Every event carries ``eventID``
``urn:emrshare:chain-event:<tx hash>:<log index>`` and its block's time.

The contract records no packing (which units travel in which case), so no
``AggregationEvent`` is made; a serialized batch's units are listed at commissioning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from emrshare.trace.gs1 import class_uri, unit_uri
from emrshare.trace.ledger import Ledger

__all__ = ["CONTEXT", "epcis_document", "epcis_json"]

#: The EPCIS 2.0 JSON-LD context.
CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
_NO_UNIT = 2**256 - 1


class _Recall(Protocol):
    @property
    def block_number(self) -> int: ...
    @property
    def log_index(self) -> int: ...
    @property
    def tx_hash(self) -> bytes: ...
    @property
    def batch_id(self) -> bytes: ...
    @property
    def by(self) -> str: ...


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _party(address: str) -> str:
    return f"urn:ethereum:{address}"


def epcis_document(
    ledger: Ledger,
    block_time: Callable[[int], int],
    *,
    recalls: Iterable[_Recall] = (),
    serials: Mapping[bytes, Sequence[str]] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """The ledger's events (and ``recalls``) as one EPCIS 2.0 document, in chain order.
    ``block_time(n)`` is block ``n``'s unix time; ``serials`` (batch id → its serial list)
    names a serialized batch's units at commissioning and a unit's dispense by its SGTIN.
    Events of a batch whose registration is not in the ledger are left out (their class
    is unknown)."""
    classes: dict[bytes, tuple[str, str, str]] = {}
    registered: dict[bytes, int] = {}
    for b in ledger.batches:
        gtin = f"{b.gtin:014d}"
        classes[bytes(b.batch_id)] = (gtin, b.lot, class_uri(gtin, b.lot))
        registered[bytes(b.batch_id)] = b.quantity
    serials = serials or {}
    shipments = {bytes(s.shipment_id): s for s in ledger.shipped}
    out: list[tuple[int, int, dict[str, Any]]] = []

    def add(e: Any, batch: bytes, body: dict[str, Any], quantity: int | None) -> None:
        known = classes.get(bytes(batch))
        if known is None:
            return
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventID": f"urn:emrshare:chain-event:0x{bytes(e.tx_hash).hex()}:{e.log_index}",
            "eventTime": _iso(block_time(e.block_number)),
            "eventTimeZoneOffset": "+00:00",
            "epcList": [],
        }
        if quantity is not None:
            event["quantityList"] = [{"epcClass": known[2], "quantity": quantity}]
        event.update(body)
        out.append((e.block_number, e.log_index, event))

    for b in ledger.batches:
        bid = bytes(b.batch_id)
        gtin, lot, _ = classes[bid]
        units = serials.get(bid)
        body: dict[str, Any] = {
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "sourceList": [{"type": "owning_party", "source": _party(b.manufacturer)}],
            "ilmd": {"cbvmda:lotNumber": lot, "cbvmda:itemExpirationDate": _date(b.expiry)},
        }
        if units:
            body["epcList"] = [unit_uri(gtin, lot, s) for s in units]
        add(b, bid, body, None if units else b.quantity)
    for s in ledger.shipped:
        add(
            s,
            bytes(s.batch_id),
            {
                "action": "OBSERVE",
                "bizStep": "shipping",
                "disposition": "in_transit",
                "sourceList": [{"type": "owning_party", "source": _party(s.sender)}],
                "destinationList": [{"type": "owning_party", "destination": _party(s.recipient)}],
                "bizTransactionList": _transactions(s),
            },
            s.quantity,
        )
    for r in ledger.received:
        ship = shipments.get(bytes(r.shipment_id))
        body = {"action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress"}
        if ship is not None:
            body["sourceList"] = [{"type": "owning_party", "source": _party(ship.sender)}]
            body["destinationList"] = [
                {"type": "owning_party", "destination": _party(ship.recipient)}
            ]
            body["bizTransactionList"] = _transactions(ship)
        add(r, bytes(r.batch_id), body, r.quantity)
    for c in ledger.cancelled:
        ship = shipments.get(bytes(c.shipment_id))
        body = {"action": "OBSERVE", "bizStep": "void_shipping", "disposition": "in_progress"}
        if ship is not None:
            body["bizTransactionList"] = _transactions(ship)
        add(c, bytes(c.batch_id), body, None if ship is None else ship.quantity)
    for d in ledger.dispensed:
        bid = bytes(d.batch_id)
        body = {
            "action": "DELETE",
            "bizStep": "dispensing",
            "disposition": "dispensed",
            "sourceList": [{"type": "owning_party", "source": _party(d.pharmacy)}],
        }
        unit = d.unit_index
        units = serials.get(bid)
        if unit != _NO_UNIT and units is not None and unit < len(units) and bid in classes:
            gtin, lot, _ = classes[bid]
            body["epcList"] = [unit_uri(gtin, lot, units[unit])]
            add(d, bid, body, None)
        else:
            add(d, bid, body, d.quantity)
    for rc in recalls:
        add(
            rc,
            bytes(rc.batch_id),
            {
                "action": "OBSERVE",
                "bizStep": "holding",
                "disposition": "recalled",
                "sourceList": [{"type": "owning_party", "source": _party(rc.by)}],
            },
            registered.get(bytes(rc.batch_id)),
        )
    out.sort(key=lambda t: (t[0], t[1]))
    when = created if created is not None else int(datetime.now(UTC).timestamp())
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _iso(when),
        "epcisBody": {"eventList": [e for _, _, e in out]},
    }


def _date(expiry: int) -> str:
    return datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%d")


def _transactions(s: Any) -> list[dict[str, str]]:
    return [
        {
            "type": "inv",
            "bizTransaction": f"urn:emrshare:invoice:0x{bytes(s.invoice_digest).hex()}",
        },
        {
            "type": "bol",
            "bizTransaction": f"urn:emrshare:waybill:0x{bytes(s.waybill_digest).hex()}",
        },
    ]


def epcis_json(document: Mapping[str, Any]) -> str:
    """The document as JSON-LD text (``application/ld+json``)."""
    return json.dumps(document, indent=2, ensure_ascii=False)
