"""What to do next, for each refusal of the DrugTrace contract (merged into the revert
hints of :mod:`emrshare.chain._revert`; filled with the error's arguments)."""

from __future__ import annotations

TRACE_HINTS: dict[str, str] = {
    "Trace_NotManufacturer": (
        "{caller} is not an active Manufacturer member; only manufacturers register batches"
    ),
    "Trace_NotPharmacy": (
        "{caller} is neither an active Pharmacy nor a Provider with the PHARMACY "
        "capability; ask the consortium admins for the capability by an M-of-N proposal"
    ),
    "Trace_NotConsignee": (
        "{caller} may not take in drugs: only an active Distributor, Pharmacy or Provider "
        "with the PHARMACY capability confirms a receipt"
    ),
    "Trace_NotRecaller": (
        "{caller} may not recall batch {batchId}: only its manufacturer or a regulator may"
    ),
    "Trace_NotClinician": (
        "{caller} is not an active Provider; adverse events are filed by a clinician's hospital"
    ),
    "Trace_InvalidGtin": (
        "{gtin} is not a 14-digit GTIN with a valid GS1 check digit; scan the pack again"
    ),
    "Trace_InvalidLot": "a lot number is 1 to 20 characters, not {length} bytes",
    "Trace_InvalidUnit": "a unit of measure is 1 to 16 bytes, not {length}",
    "Trace_InvalidExpiry": (
        "expiry {expiry} is not after chain time {chainTime}; an expired batch is not registered"
    ),
    "Trace_InvalidQuantity": "a quantity must be at least 1",
    "Trace_InvalidSerials": (
        "a serialized batch has one serial per unit ({serialCount} serials for {quantity} "
        "units) and a non-zero root; an unserialized one has neither"
    ),
    "Trace_MissingDigest": (
        "digest {which} (1 certificate, 2 waybill, 3 invoice, 4 reason, 5 report) must not "
        "be zero: give the document it stands for"
    ),
    "Trace_GtinOwned": (
        "GTIN {gtin} belongs to manufacturer {owner}, which registered it first, for good; "
        "register only your own GS1 company's GTINs (a squatted GTIN is a matter for the "
        "consortium's admins and the regulator: DrugTrace cannot reassign it)"
    ),
    "Trace_BatchExists": (
        "batch {batchId} (that GTIN and lot) is registered already; use a new lot number"
    ),
    "Trace_UnknownBatch": (
        "no batch {batchId} is registered: the GTIN and lot are unknown (a counterfeit or a "
        "typo); do not ship or dispense it and report it to the regulator"
    ),
    "Trace_Recalled": (
        "batch {batchId} was recalled; quarantine the stock, do not ship or dispense it"
    ),
    "Trace_Expired": (
        "batch {batchId} expired at {expiry} (chain time {chainTime}); do not ship or dispense it"
    ),
    "Trace_InsufficientStock": (
        "{holder} holds {available} unit(s) of batch {batchId}, fewer than the {requested} "
        "asked for; confirm the receipts first or ship less"
    ),
    "Trace_InvalidRecipient": "{to} cannot receive this shipment: name another member",
    "Trace_ShipmentExists": (
        "you shipped with that waybill already (shipment {shipmentId}); one waybill, one shipment"
    ),
    "Trace_UnknownShipment": "no shipment {shipmentId} is on chain; check the waybill",
    "Trace_NotRecipient": (
        "{caller} is not the recipient of shipment {shipmentId}; only the recipient confirms it"
    ),
    "Trace_AlreadyReceived": (
        "shipment {shipmentId} is settled already (state {state}: 2 received, 3 cancelled)"
    ),
    "Trace_OverReceipt": (
        "shipment {shipmentId} carried {shipped} unit(s); {received} cannot have arrived"
    ),
    "Trace_SerializedBatch": (
        "batch {batchId} is serialized: dispense it unit by unit, with each pack's serial"
    ),
    "Trace_NotSerialized": "batch {batchId} has no serials: dispense a quantity instead",
    "Trace_UnknownSerial": (
        "serial number {index} is not one the manufacturer committed for batch {batchId}: "
        "the pack may be counterfeit; quarantine it and report it to the regulator"
    ),
    "Trace_SerialDispensed": (
        "unit {index} of batch {batchId} was dispensed already: a duplicate serial, the pack "
        "may be counterfeit; quarantine it and report it to the regulator"
    ),
    "Trace_MissingLink": "a dispense needs the patient's dispense link; ask the patient for it",
    "Trace_AlreadyRecalled": "batch {batchId} was recalled already",
    "Trace_NotRecalled": "batch {batchId} is not recalled; recall it before sending notices",
    "Trace_InvalidLinks": "a recall notice names 1 to 256 links, not {count}; send several",
    "Trace_InvalidSeriousness": "seriousness is 1 (non-serious) to 4 (fatal), not {seriousness}",
}
