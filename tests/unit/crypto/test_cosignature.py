"""The emergency co-signature's encoding: header EMCS 1.0, round trip, typed errors."""

from __future__ import annotations

import pytest

from emrshare.crypto.emergency import Cosignature
from emrshare.errors import UnsupportedVersion, WireFormatError

C = Cosignature(
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    7,
    1_800_000_000,
    b"\x11" * 65,
)


def test_round_trip_through_bytes_and_hex() -> None:
    raw = bytes(C)
    assert raw[:6] == b"EMCS\x01\x00"
    assert Cosignature.from_bytes(raw) == C
    assert Cosignature.from_hex(C.hex()) == C
    assert Cosignature.from_hex(C.hex()[2:].upper()) == C


def test_malformed_cosignatures_are_typed_errors() -> None:
    with pytest.raises(WireFormatError, match="not hex"):
        Cosignature.from_hex("0xzz")
    with pytest.raises(WireFormatError):
        Cosignature.from_bytes(b"EMJU\x01\x00" + bytes(C)[6:])
    with pytest.raises(UnsupportedVersion):
        Cosignature.from_bytes(b"EMCS\x02\x00" + bytes(C)[6:])
    with pytest.raises(WireFormatError):
        Cosignature.from_bytes(bytes(C)[:-1])
