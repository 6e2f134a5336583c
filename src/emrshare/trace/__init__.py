"""Drug supply traceability, the pure part: GS1 identifiers, serial lists as Merkle
roots, salted invoices, the regulator's two-invoice check and the EPCIS export. No chain
or network here: the roles read the events (:mod:`emrshare.chain.trace_values`) into the
rows these modules take."""

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
from emrshare.trace.merkle import SerialList, serial_leaf, serial_proof_root, verify_serial

__all__ = [
    "PackCode",
    "SerialList",
    "check_digit",
    "class_uri",
    "gtin14",
    "normalize_gtin",
    "parse_pack_code",
    "serial_leaf",
    "serial_proof_root",
    "unit_uri",
    "validate_lot",
    "validate_serial",
    "verify_serial",
]
