"""Salted invoices and waybills: what a shipment commits to on chain, and what its two
parties keep (and may show the regulator).

An invoice's number, amount and tax id stay off chain. The chain holds only
:meth:`Invoice.digest`::

    keccak256(abi.encode(bytes32 salt, string number, uint256 amountMinor,
                         string taxId, bytes32 batchId, uint256 quantity))

The 32-byte random salt stops anyone who guesses an invoice number or an amount from
confirming it against the digest. Handed the plaintext, the regulator recomputes the
digest (:meth:`Invoice.matches`) and so checks that the paper invoice is the one
committed to when the goods left, for the batch and quantity shipped.

A waybill is committed the same way, as ``sha256`` of its canonical JSON
(:meth:`Waybill.digest`). The shipment id is derived from it, so every waybill carries
its own salt and two shipments never share an id.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass, field, replace
from hashlib import sha256
from typing import Any, TypeVar

from eth_abi.abi import encode
from eth_utils.address import is_address
from eth_utils.crypto import keccak

from emrshare._files import loads_json
from emrshare.errors import InvalidInput

__all__ = ["INVOICE_FORMAT", "WAYBILL_FORMAT", "Invoice", "Waybill"]

#: ``format`` of an invoice's JSON form.
INVOICE_FORMAT = "emrshare-invoice/1"
#: ``format`` of a waybill's JSON form.
WAYBILL_FORMAT = "emrshare-waybill/1"
# Printable text, no lone surrogates (they do not encode as UTF-8) and no controls.
_TEXT = re.compile(r"[\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]{1,64}")
_MAX_UINT = 2**256 - 1


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not _TEXT.fullmatch(value) or value != value.strip():
        raise InvalidInput(f"{what} is 1 to 64 printable characters with no outer spaces")
    return value


def _count(what: str, value: object, *, positive: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > _MAX_UINT:
        raise InvalidInput(f"{what} is a whole number from 0 to 2**256-1")
    if positive and value == 0:
        raise InvalidInput(f"{what} must be more than zero")
    return value


def _bytes32(what: str, value: object) -> bytes:
    if isinstance(value, str):
        text = value.removeprefix("0x")
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput(f"{what} is 32 bytes in hex") from None
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidInput(f"{what} is 32 bytes in hex")
    return value


def _load(text: str | bytes, fmt: str, what: str) -> dict[str, Any]:
    try:
        obj = loads_json(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput(f"this {what} file is not JSON: export it again") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InvalidInput(f"this file is not an emrshare {what} (format {fmt!r} expected)")
    return obj


_D = TypeVar("_D", "Invoice", "Waybill")


def _as_stated(doc: _D, obj: dict[str, Any], what: str, who: str) -> _D:
    """``doc`` read from ``obj``, if the digest ``obj`` states (if any) is its own."""
    stated = obj.get("digest")
    if stated is not None and not doc.matches(_bytes32(f"{what}'s digest", stated)):
        raise InvalidInput(
            f"{what}'s stated digest is not the digest of its fields (the file was edited); "
            f"ask its {who} for the original"
        )
    return doc


@dataclass(frozen=True, slots=True)
class Invoice:
    """One invoice of a shipment, in plaintext, with the salt of its on-chain digest.

    Its repr shows only the digest: the number, amount and tax id are commercial secrets
    of the two parties.
    """

    number: str
    amount_minor: int  # in the currency's smallest unit (fen, cents)
    tax_id: str  # the seller's
    batch_id: bytes
    quantity: int
    salt: bytes = field(default_factory=lambda: os.urandom(32))
    #: The shipment the invoice is for, where its holder knows it (not in the digest: the
    #: shipment id is derived from the waybill).
    shipment_id: bytes | None = None

    def __post_init__(self) -> None:
        _text("an invoice's number", self.number)
        _text("an invoice's tax id", self.tax_id)
        _count("an invoice's amount", self.amount_minor, positive=False)
        _count("an invoice's quantity", self.quantity)
        _bytes32("an invoice's batch id", self.batch_id)
        _bytes32("an invoice's salt", self.salt)
        if self.shipment_id is not None:
            _bytes32("an invoice's shipment id", self.shipment_id)

    @classmethod
    def new(
        cls, number: str, amount_minor: int, tax_id: str, batch_id: bytes, quantity: int
    ) -> Invoice:
        """An invoice with a fresh random salt."""
        return cls(number, amount_minor, tax_id, batch_id, quantity)

    def for_shipment(self, shipment_id: bytes) -> Invoice:
        """The same invoice, noting the shipment it is for."""
        return replace(self, shipment_id=shipment_id)

    def digest(self) -> bytes:
        """The 32-byte digest the shipment puts on chain."""
        return keccak(
            encode(
                ["bytes32", "string", "uint256", "string", "bytes32", "uint256"],
                [
                    self.salt,
                    self.number,
                    self.amount_minor,
                    self.tax_id,
                    self.batch_id,
                    self.quantity,
                ],
            )
        )

    def matches(self, digest: bytes) -> bool:
        """Whether this plaintext is the invoice committed to as ``digest``."""
        return hmac.compare_digest(self.digest(), bytes(digest))

    def to_json(self) -> str:
        """The invoice as JSON, for the two parties' files and the regulator."""
        return json.dumps(
            {
                "format": INVOICE_FORMAT,
                "number": self.number,
                "amountMinor": self.amount_minor,
                "taxId": self.tax_id,
                "batchId": "0x" + self.batch_id.hex(),
                "quantity": self.quantity,
                "salt": "0x" + self.salt.hex(),
                "digest": "0x" + self.digest().hex(),
                "shipmentId": None if self.shipment_id is None else "0x" + self.shipment_id.hex(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Invoice:
        """An invoice read back (``InvalidInput`` if malformed or its digest is not its
        own)."""
        obj = _load(text, INVOICE_FORMAT, "invoice")
        try:
            inv = cls(
                number=obj["number"],
                amount_minor=obj["amountMinor"],
                tax_id=obj["taxId"],
                batch_id=_bytes32("an invoice's batch id", obj["batchId"]),
                quantity=obj["quantity"],
                salt=_bytes32("an invoice's salt", obj["salt"]),
                shipment_id=None
                if obj.get("shipmentId") is None
                else _bytes32("an invoice's shipment id", obj["shipmentId"]),
            )
        except KeyError as exc:
            raise InvalidInput(f"this invoice has no {exc.args[0]!r}: export it again") from None
        return _as_stated(inv, obj, "an invoice", "issuer")

    def __repr__(self) -> str:
        return f"Invoice(digest=0x{self.digest().hex()[:16]}…)"


@dataclass(frozen=True, slots=True)
class Waybill:
    """A consignment note: who sends what to whom. Its digest is on chain and names the
    shipment; the document itself stays with the parties and the carrier."""

    number: str
    carrier: str
    sender: str  # address
    recipient: str  # address
    batch_id: bytes
    quantity: int
    salt: bytes = field(default_factory=lambda: os.urandom(32))

    def __post_init__(self) -> None:
        _text("a waybill's number", self.number)
        _text("a waybill's carrier", self.carrier)
        for what, addr in (("sender", self.sender), ("recipient", self.recipient)):
            if not isinstance(addr, str) or not is_address(addr):
                raise InvalidInput(f"a waybill's {what} is an account address (0x and 40 hex)")
        _count("a waybill's quantity", self.quantity)
        _bytes32("a waybill's batch id", self.batch_id)
        _bytes32("a waybill's salt", self.salt)

    def _fields(self) -> dict[str, Any]:
        return {
            "format": WAYBILL_FORMAT,
            "number": self.number,
            "carrier": self.carrier,
            "from": self.sender.lower(),
            "to": self.recipient.lower(),
            "batchId": "0x" + self.batch_id.hex(),
            "quantity": self.quantity,
            "salt": "0x" + self.salt.hex(),
        }

    def digest(self) -> bytes:
        """``sha256`` of the canonical JSON (sorted keys, no spaces, addresses lower-case)."""
        canon = json.dumps(self._fields(), sort_keys=True, separators=(",", ":"))
        return sha256(canon.encode()).digest()

    def matches(self, digest: bytes) -> bool:
        """Whether this waybill is the one committed to as ``digest``."""
        return hmac.compare_digest(self.digest(), bytes(digest))

    def to_json(self) -> str:
        """The waybill as JSON, with its digest."""
        return json.dumps({**self._fields(), "digest": "0x" + self.digest().hex()}, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Waybill:
        """A waybill read back (``InvalidInput`` if malformed or edited)."""
        obj = _load(text, WAYBILL_FORMAT, "waybill")
        try:
            wb = cls(
                number=obj["number"],
                carrier=obj["carrier"],
                sender=obj["from"],
                recipient=obj["to"],
                batch_id=_bytes32("a waybill's batch id", obj["batchId"]),
                quantity=obj["quantity"],
                salt=_bytes32("a waybill's salt", obj["salt"]),
            )
        except KeyError as exc:
            raise InvalidInput(f"this waybill has no {exc.args[0]!r}: export it again") from None
        return _as_stated(wb, obj, "a waybill", "sender")

    def __repr__(self) -> str:
        return f"Waybill(digest=0x{self.digest().hex()[:16]}…)"
