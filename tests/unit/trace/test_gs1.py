"""GS1 identifiers: check digits, GTIN forms, lots and serials, Digital Link URIs, pack codes."""

from __future__ import annotations

from datetime import date

import pytest

from emrshare.errors import InvalidInput
from emrshare.trace import (
    check_digit,
    class_uri,
    gtin14,
    normalize_gtin,
    parse_pack_code,
    unit_uri,
    validate_lot,
    validate_serial,
)

# Published examples: GS1's GTIN-14 example, an EAN-13 and a UPC-A (check digits by hand:
# 4006381333931 -> 4*1+0*3+0*1+6*3+3*1+8*3+1*1+3*3+3*1+3*3+9*1+3*3 = 89, 10-9 = 1).
VALID = ["09506000134352", "4006381333931", "036000291452", "96385074"]


@pytest.mark.parametrize("gtin", VALID)
def test_valid_gtins_normalize_to_14_digits(gtin: str) -> None:
    g = normalize_gtin(gtin)
    assert len(g) == 14 and g.endswith(gtin) and set(g[: 14 - len(gtin)]) <= {"0"}
    assert check_digit(g[:-1]) == int(g[-1])
    assert gtin14(gtin) == int(g) and gtin14(int(g)) == int(g)


@pytest.mark.parametrize("gtin", VALID)
def test_every_wrong_check_digit_is_caught(gtin: str) -> None:
    for wrong in set("0123456789") - {gtin[-1]}:
        with pytest.raises(InvalidInput, match="check digit"):
            normalize_gtin(gtin[:-1] + wrong)


@pytest.mark.parametrize("bad", ["", "abc", "123", "09506000134", "095060001343521", "9.5e13"])
def test_not_a_gtin(bad: str) -> None:
    with pytest.raises(InvalidInput, match="not a GTIN"):
        normalize_gtin(bad)


def test_lots_and_serials_use_gs1_set_82() -> None:
    assert validate_lot("A1-2024/07") == "A1-2024/07"
    assert validate_serial("SN'0001") == "SN'0001"
    for bad in ("", "x" * 21, "has space", "tab\t", "ü", "#1"):
        with pytest.raises(InvalidInput, match="lot number"):
            validate_lot(bad)
        with pytest.raises(InvalidInput, match="serial number"):
            validate_serial(bad)


def test_digital_link_uris_escape_and_round_trip() -> None:
    uri = unit_uri("9506000134352", "L/1", "S&2")
    assert uri == "https://id.gs1.org/01/09506000134352/10/L%2F1/21/S%262"
    assert class_uri("09506000134352", "L/1") == uri.rsplit("/21/", 1)[0]
    assert parse_pack_code(uri) == parse_pack_code("(01)09506000134352(10)L/1(21)S&2")


def test_pack_code_forms() -> None:
    # The scanner's raw form: symbology id, fixed-length AIs, FNC1 (GS) after a variable one.
    raw = "]d2" + "01" + "09506000134352" + "17" + "261200" + "10" + "A7" + "\x1d" + "21SN1"
    code = parse_pack_code(raw)
    assert (code.gtin, code.lot, code.serial) == ("09506000134352", "A7", "SN1")
    assert parse_pack_code(raw.removeprefix("]d2")) == code
    bracket = parse_pack_code("(01)09506000134352(17)261200(10)A7(21)SN1")
    assert bracket.expiry == date(2026, 12, 31)  # day 00: the month's last day
    assert (bracket.lot, bracket.serial) == ("A7", "SN1")
    leap = parse_pack_code("(01)09506000134352(17)280200(10)A7")
    assert leap.expiry == date(2028, 2, 29) and leap.serial is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("(01)09506000134352(21)SN1", "names no GTIN"),
        ("(01)09506000134353(10)A", "check digit"),
        ("(01)09506000134352(17)261340(10)A", "not a date"),
        ("0109506000134352990", "application identifier 99"),
        ("https://id.gs1.org/01/09506000134352", "names no GTIN"),
        ("(01)0950600013435\u00b2(10)L1", "not a GTIN"),  # "²" passes str.isdigit
        (
            "(01)\u0660\u0669\u0665\u0660\u0666\u0660\u0660\u0660\u0661\u0663\u0664\u0663\u0665\u0662(10)L",
            "not a GTIN",
        ),
        ("(01)09506000134352(17)290000(10)A", "not a date"),  # month 00
        ("(01)09506000134352(17)\u0662\u0669\u0660\u0661\u0660\u0661(10)A", "not a date"),
        ("https://[::1/01/09506000134352/10/L1", "not a GS1 Digital Link"),
    ],
)
def test_bad_pack_codes_say_what_is_wrong(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_pack_code(text)
