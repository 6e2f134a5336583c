"""Drug supply traceability, the pure part: GS1 identifiers, serial lists as Merkle
roots, salted invoices and waybills, the ledger replay, the regulator's two-invoice
check and the EPCIS export. No chain or network here: the roles hand the decoded events
(:mod:`emrshare.chain.trace_values`) to these modules as a :class:`Ledger`."""

from emrshare.trace.audit import (
    REASONS,
    DispenseTrace,
    Finding,
    TwoInvoiceReport,
    trace_dispenses,
    two_invoice_check,
)
from emrshare.trace.epcis import CONTEXT as EPCIS_CONTEXT
from emrshare.trace.epcis import epcis_document, epcis_json
from emrshare.trace.gs1 import (
    PackCode,
    check_digit,
    class_uri,
    gtin14,
    normalize_gtin,
    parse_pack_code,
    unit_uri,
    validate_lot,
    validate_serial,
)
from emrshare.trace.invoices import Invoice, Waybill
from emrshare.trace.ledger import Chain, Ledger, Leg
from emrshare.trace.merkle import SerialList, serial_leaf, serial_proof_root, verify_serial

__all__ = [
    "Chain",
    "DispenseTrace",
    "EPCIS_CONTEXT",
    "Finding",
    "Invoice",
    "Ledger",
    "Leg",
    "PackCode",
    "REASONS",
    "SerialList",
    "TwoInvoiceReport",
    "Waybill",
    "check_digit",
    "class_uri",
    "epcis_document",
    "epcis_json",
    "gtin14",
    "normalize_gtin",
    "parse_pack_code",
    "serial_leaf",
    "serial_proof_root",
    "trace_dispenses",
    "two_invoice_check",
    "unit_uri",
    "validate_lot",
    "validate_serial",
    "verify_serial",
]
