"""Insurance claims as FHIR R4 ``Claim`` documents (issue 16).

A claim document is one canonical-JSON ``Claim`` record in the patient's index, written
by the hospital in the category of the encounter's records, so that one grant scoped to
the claim's records (the document's own record among them) lets the insurer read it all.
Its on-chain commitment is ``keccak256(salt || sha256(document))``, as for prescriptions
(:func:`emrshare.chain.ids.prescription_commitment`); the 32-byte ``salt`` travels inside
the document as the identifier of system :data:`SALT_SYSTEM`.

The document names the patient, the hospital (``provider``) and the insurer
(``insurer``) by account, the encounter's records (``supportingInfo``, each a record
reference), each billed item with its amount (``item[].net``), the billed prescription
ids (``item[].productOrService.coding`` of system :data:`RX_SYSTEM`) and the total. A
pure module: no chain, no store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from emrshare.errors import InvalidInput
from emrshare.fhir._export_common import account_reference, record_reference
from emrshare.fhir._parse import parse_model, read_own_record
from emrshare.fhir._resource import FhirVersion, canonical_json

__all__ = [
    "MAX_MINOR",
    "RX_SYSTEM",
    "SALT_SYSTEM",
    "ClaimDoc",
    "ClaimItem",
    "claim_resource",
    "read_claim",
]

#: The identifier system of a claim's salt (its value: ``0x`` + 64 hex digits).
SALT_SYSTEM = "urn:emrshare:claim-salt"
#: The coding system of a billed prescription id (``Prescriptions`` id, ``0x`` + 64 hex).
RX_SYSTEM = "urn:emrshare:rx-id"
_ACCOUNT = re.compile(r"urn:ethereum:(0x[0-9a-fA-F]{40})")
_RECORD = re.compile(r"urn:emrshare:record:0x([0-9a-f]{64})")
_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_MAX_TEXT = 1000
_MAX_DOCUMENT = 256 * 1024


@dataclass(frozen=True, slots=True)
class ClaimItem:
    """One billed line: ``description`` (text), ``amount`` in minor units, and the
    ``prescription_id`` it bills (a ``Prescriptions`` id) or ``None``."""

    description: str
    amount: int
    prescription_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class ClaimDoc:
    """What one claim says: by ``hospital`` to ``insurer`` for ``patient`` (accounts),
    created at ``created`` (unix seconds), for the encounter's ``records`` (ids), billing
    ``items`` in ``currency`` (ISO 4217; amounts in minor units); ``salt`` makes its
    commitment unguessable."""

    patient: str
    hospital: str
    insurer: str
    created: int
    records: tuple[bytes, ...]
    items: tuple[ClaimItem, ...]
    salt: bytes
    currency: str = "CNY"

    def __repr__(self) -> str:  # the salt is what keeps the commitment unguessable
        return (
            f"ClaimDoc(patient={self.patient}, hospital={self.hospital}, "
            f"insurer={self.insurer}, total={self.total}, records={len(self.records)})"
        )

    @property
    def total(self) -> int:
        """The amount claimed, in minor units: the sum of the items."""
        return sum(i.amount for i in self.items)

    @property
    def prescription_ids(self) -> tuple[bytes, ...]:
        """The billed prescription ids, in item order."""
        return tuple(i.prescription_id for i in self.items if i.prescription_id is not None)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > _MAX_TEXT:
        raise InvalidInput(f"the claim's {what} must be 1 to {_MAX_TEXT} characters")
    return value


def _money(minor: int, currency: str) -> dict[str, Any]:
    # Minor units to the major-unit decimal FHIR Money holds (2 decimals).
    return {"value": float(Decimal(minor) / 100), "currency": currency}


#: Largest total a claim may bill, exclusive (minor units): amounts travel as FHIR
#: decimals, exact in a float below 2**53.
MAX_MINOR = 2**53


def claim_resource(doc: ClaimDoc) -> bytes:
    """``doc`` as a validated FHIR R4 ``Claim`` in canonical JSON: the bytes of the record,
    whose SHA-256 the commitment takes. :class:`InvalidInput` for a claim the chain would
    refuse (no items, an amount not above 0, no records, a salt not 32 bytes)."""
    if len(doc.salt) != 32:
        raise InvalidInput("a claim's salt is 32 random bytes")
    if not doc.items or any(i.amount <= 0 for i in doc.items):
        raise InvalidInput("a claim bills 1 or more items, each of more than 0 minor units")
    if doc.total >= MAX_MINOR:
        # A FHIR decimal read back as a float is exact below 2**53; the chain takes a uint64.
        raise InvalidInput(
            f"a claim's total must be under {MAX_MINOR:,} minor units; split the claim"
        )
    if not 1 <= len(doc.records) <= 256:
        raise InvalidInput("a claim names 1 to 256 records of the encounter")
    if not re.fullmatch(r"[A-Z]{3}", doc.currency):
        raise InvalidInput(f"currency must be an ISO 4217 code such as CNY, not {doc.currency!r}")
    items = []
    for n, item in enumerate(doc.items, start=1):
        service: dict[str, Any] = {"text": _text(item.description, "item description")}
        if item.prescription_id is not None:
            if len(item.prescription_id) != 32:
                raise InvalidInput("a billed prescription id is 32 bytes")
            service["coding"] = [{"system": RX_SYSTEM, "code": "0x" + item.prescription_id.hex()}]
        items.append(
            {"sequence": n, "productOrService": service, "net": _money(item.amount, doc.currency)}
        )
    obj: dict[str, Any] = {
        "resourceType": "Claim",
        "id": hashlib.sha256(b"emrshare/claim-id" + doc.salt).hexdigest()[:32],
        "identifier": [{"system": SALT_SYSTEM, "value": "0x" + doc.salt.hex()}],
        "status": "active",
        "type": {"coding": [{"system": _CLAIM_TYPE, "code": "institutional"}]},
        "use": "claim",
        "patient": account_reference(doc.patient, "Patient"),
        "created": _iso(doc.created),
        "insurer": account_reference(doc.insurer, "Organization"),
        "provider": account_reference(doc.hospital, "Organization"),
        "priority": {"coding": [{"system": _PRIORITY, "code": "normal"}]},
        "supportingInfo": [
            {
                "sequence": n,
                "category": {"coding": [{"system": _INFO, "code": "info"}]},
                "valueReference": record_reference(bytes(r).hex()),
            }
            for n, r in enumerate(sorted(bytes(r) for r in doc.records), start=1)
        ],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"display": "the patient's coverage"}}
        ],
        "item": items,
        "total": _money(doc.total, doc.currency),
    }
    parse_model(obj, FhirVersion.R4)
    return canonical_json(obj)


_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
_INFO = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"


def _account(ref: Any, what: str) -> str:
    value = ((ref or {}).get("identifier") or {}).get("value", "")
    m = _ACCOUNT.fullmatch(str(value))
    if m is None:
        raise InvalidInput(f"the claim names no {what} account (urn:ethereum:0x…)")
    return m.group(1)


def _minor(money: Any) -> int:
    return int(Decimal(str((money or {}).get("value", 0))) * 100)


def read_claim(data: bytes) -> ClaimDoc:
    """The claim of a record's bytes: a valid R4 ``Claim`` in the canonical JSON
    :func:`claim_resource` writes, with a salt. :class:`InvalidInput` for anything else."""
    obj = read_own_record(data, "Claim", kind="a claim", max_bytes=_MAX_DOCUMENT)
    if canonical_json(obj) != data:
        raise InvalidInput("the claim is not in canonical JSON; it was not filed here")
    salts = [
        i.get("value", "") for i in obj.get("identifier", []) if i.get("system") == SALT_SYSTEM
    ]
    if len(salts) != 1 or not _HEX32.fullmatch(str(salts[0])):
        raise InvalidInput("the claim carries no salt identifier; it was not filed here")
    records = []
    for info in obj.get("supportingInfo") or []:
        value = ((info.get("valueReference") or {}).get("identifier") or {}).get("value", "")
        m = _RECORD.fullmatch(str(value))
        if m is None:
            raise InvalidInput("a claim's supporting information names no record")
        records.append(bytes.fromhex(m.group(1)))
    items = []
    currency = str((obj.get("total") or {}).get("currency", ""))
    for item in obj.get("item") or []:
        service = item.get("productOrService") or {}
        rx = [
            c.get("code", "") for c in service.get("coding") or [] if c.get("system") == RX_SYSTEM
        ]
        if rx and not _HEX32.fullmatch(str(rx[0])):
            raise InvalidInput("a billed prescription id is not 0x and 64 hex digits")
        items.append(
            ClaimItem(
                description=str(service.get("text", "")),
                amount=_minor(item.get("net")),
                prescription_id=bytes.fromhex(str(rx[0])[2:]) if rx else None,
            )
        )
    return ClaimDoc(
        patient=_account(obj.get("patient"), "patient"),
        hospital=_account(obj.get("provider"), "hospital"),
        insurer=_account(obj.get("insurer"), "insurer"),
        created=int(
            datetime.fromisoformat(str(obj.get("created")).replace("Z", "+00:00")).timestamp()
        ),
        records=tuple(records),
        items=tuple(items),
        salt=bytes.fromhex(str(salts[0])[2:]),
        currency=currency,
    )
