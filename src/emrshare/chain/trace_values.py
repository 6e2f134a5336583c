"""Drug supply traceability on chain (``DrugTrace``): a batch's and a shipment's state,
the ids the contract derives, and the events it emits.

Ids (the contract's own formulas, so a party computes them off chain):

* batch: ``keccak256(abi.encode(uint64 gtin, string lot))``, the GTIN as its 14-digit number;
* shipment: ``keccak256(abi.encode(address from, bytes32 waybillDigest))``;
* patient link: ``keccak256(abi.encode("emrshare-drug-link/1", bytes32 secret))``;
* a dispense's prescription: ``keccak256(abi.encode("emrshare-drug-rx/1", link, rxId))``,
  so that two fills of one prescription (to two links) are not tied together on chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from emrshare.chain.events import ChainEvent

__all__ = [
    "LINK_DOMAIN",
    "NO_UNIT",
    "RX_DOMAIN",
    "AdverseEventReported",
    "BatchRegistered",
    "BatchState",
    "Dispensed",
    "Received",
    "RecallNotice",
    "Recalled",
    "ShipmentCancelled",
    "ShipmentState",
    "ShipmentView",
    "Shipped",
    "batch_id_of",
    "link_of",
    "prescription_link_of",
    "shipment_id_of",
]

#: Domain of a dispense's patient link (``DrugTrace`` docs).
LINK_DOMAIN = "emrshare-drug-link/1"
#: ``unitIndex`` of a dispense from an unserialized batch (``DrugTrace.NO_UNIT``).
NO_UNIT = 2**256 - 1


def batch_id_of(gtin: int, lot: str) -> bytes:
    """The id of the batch with GTIN-14 ``gtin`` (as a number) and lot ``lot``."""
    return keccak(encode(["uint64", "string"], [gtin, lot]))


def shipment_id_of(sender: str, waybill_digest: bytes) -> bytes:
    """The id of the shipment ``sender`` sends with the waybill of that digest."""
    return keccak(
        encode(["address", "bytes32"], [Web3.to_checksum_address(sender), waybill_digest])
    )


#: Domain of a dispense's blinded prescription id.
RX_DOMAIN = "emrshare-drug-rx/1"


def prescription_link_of(link: bytes, prescription_id: bytes) -> bytes:
    """What a dispense to ``link`` records of the prescription it fills."""
    return keccak(encode(["string", "bytes32", "bytes32"], [RX_DOMAIN, link, prescription_id]))


def link_of(secret: bytes) -> bytes:
    """The on-chain patient link of one dispense's 32-byte secret."""
    if len(secret) != 32:
        raise ValueError("a dispense link secret is 32 bytes")
    return keccak(encode(["string", "bytes32"], [LINK_DOMAIN, secret]))


class ShipmentState(IntEnum):
    """A shipment's state (``DrugTrace.ShipmentState``)."""

    NONE = 0
    IN_TRANSIT = 1
    RECEIVED = 2
    CANCELLED = 3


@dataclass(frozen=True, slots=True)
class BatchState:
    """A batch's on-chain state (``DrugTrace.batchOf``)."""

    batch_id: bytes
    manufacturer: str
    expiry: int  # unix seconds, chain time
    index: int
    recalled: bool
    quantity: int  # registered
    serial_count: int  # 0: not serialized
    serial_root: bytes


@dataclass(frozen=True, slots=True)
class ShipmentView:
    """A shipment's on-chain state (``DrugTrace.shipmentOf``); the sender is in the id."""

    shipment_id: bytes
    recipient: str
    batch_id: bytes
    quantity: int
    state: ShipmentState


@dataclass(frozen=True, slots=True)
class BatchRegistered(ChainEvent):
    """A manufacturer registered a batch of ``quantity`` units (``serial_root``: zero if
    the units are not serialized)."""

    batch_id: bytes
    manufacturer: str
    gtin: int
    lot: str
    expiry: int
    quantity: int
    unit: str
    certificate_digest: bytes
    serial_root: bytes
    serial_count: int
    index: int


@dataclass(frozen=True, slots=True)
class Shipped(ChainEvent):
    """``sender`` shipped ``quantity`` units of a batch to ``recipient``, with the digests of the
    waybill and of the (salted) invoice."""

    shipment_id: bytes
    batch_id: bytes
    sender: str
    recipient: str
    quantity: int
    waybill_digest: bytes
    invoice_digest: bytes


@dataclass(frozen=True, slots=True)
class Received(ChainEvent):
    """The recipient confirmed a shipment: ``quantity`` arrived, ``discrepancy`` short."""

    shipment_id: bytes
    batch_id: bytes
    recipient: str
    quantity: int
    discrepancy: int


@dataclass(frozen=True, slots=True)
class ShipmentCancelled(ChainEvent):
    """The sender took back a shipment never confirmed."""

    shipment_id: bytes
    batch_id: bytes
    sender: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Dispensed(ChainEvent):
    """A pharmacy dispensed units of a batch to a patient link (``unit_index``:
    :data:`NO_UNIT` for an unserialized batch; ``prescription_id``: zero for none)."""

    batch_id: bytes
    pharmacy: str
    link: bytes
    quantity: int
    unit_index: int
    prescription_id: bytes


@dataclass(frozen=True, slots=True)
class Recalled(ChainEvent):
    """The manufacturer or a regulator recalled a batch."""

    batch_id: bytes
    by: str
    reason_digest: bytes


@dataclass(frozen=True, slots=True)
class RecallNotice(ChainEvent):
    """A recall notice addressed to one patient link."""

    link: bytes
    batch_id: bytes


@dataclass(frozen=True, slots=True)
class AdverseEventReported(ChainEvent):
    """A clinician's adverse-event notice on a batch (never the patient)."""

    batch_id: bytes
    reporter: str
    report_digest: bytes
    seriousness: int
