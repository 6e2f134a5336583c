"""The declaring clinician's signed emergency request (issue 15): its wire form round
trips, is parsed strictly, and its signature names the clinician."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account

from emrshare.errors import WireFormatError
from emrshare.proxy.emergency import EmergencyRequest, SignedEmergencyRequest
from emrshare.proxy.request import capsule_hash
from emrshare.types import Address

pytestmark = pytest.mark.unit

EMERGENCY = "0x" + "ee" * 20
PROXY = "0x" + "11" * 20


def _signed(key: bytes) -> SignedEmergencyRequest:
    capsules = (os.urandom(98), os.urandom(98))
    req = EmergencyRequest.new(PROXY, 3, b"\xa1" * 32, [capsule_hash(c) for c in capsules], 99)
    return SignedEmergencyRequest(
        req,
        31337,
        Address(Account.from_key(key).address),
        req.sign(key, 31337, EMERGENCY),
        capsules,
    )


def test_wire_form_round_trips_and_the_signature_names_the_clinician() -> None:
    key = os.urandom(32)
    signed = _signed(key)
    back = SignedEmergencyRequest.from_json(signed.to_json())
    assert back == signed
    assert back.request.recover(back.signature, 31337, EMERGENCY) == Account.from_key(key).address
    # Another domain (the Grants contract, another chain) names someone else.
    assert back.request.recover(back.signature, 1, EMERGENCY) != Account.from_key(key).address


@pytest.mark.parametrize(
    "change",
    [
        {"policy_id": "0x" + "00" * 32},  # a grant's field: unknown here
        {"declaration_id": "3"},  # a string where a JSON integer is due
        {"declaration_id": -1},
        {"tag": "0x" + "00" * 31},
        {"nonce": 5},
        {"deadline": True},
    ],
)
def test_malformed_requests_are_wire_format_errors(change: dict[str, Any]) -> None:
    body = _signed(os.urandom(32)).to_json()
    body.update(change)
    with pytest.raises(WireFormatError):
        SignedEmergencyRequest.from_json(body)
