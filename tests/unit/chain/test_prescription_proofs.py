"""The prescription reader key: derived from the salt alone, distinct per salt, secret kept
out of its repr, and proofs bound to the kind, the prescription, the caller and the chain.
(tests/integration/chain/test_prescriptions.py checks them against the contract.)"""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from emrshare.chain import ReaderKey
from emrshare.chain.prescription_proofs import _typed

pytestmark = pytest.mark.unit

PHARMACY = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
CONTRACT = "0x" + "33" * 20


def test_the_key_is_a_function_of_the_salt() -> None:
    salt = os.urandom(32)
    assert ReaderKey(salt).address == ReaderKey(salt).address
    assert ReaderKey(salt).address != ReaderKey(os.urandom(32)).address


def test_the_repr_shows_the_address_not_the_secret() -> None:
    key = ReaderKey(os.urandom(32))
    assert repr(key) == f"ReaderKey(address={key.address})"
    assert key._secret.hex() not in repr(key) and key._secret.hex() not in str(key)


@pytest.mark.parametrize("salt", [b"", b"\x00" * 31, b"\x00" * 33])
def test_a_salt_is_32_bytes(salt: bytes) -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        ReaderKey(salt)


def test_proofs_recover_to_the_key_and_bind_what_they_name() -> None:
    key, pid = ReaderKey(os.urandom(32)), os.urandom(32)
    proof = key.dispense_proof(pid, PHARMACY, 31337, CONTRACT)
    msg = encode_typed_data(
        full_message=_typed("Dispense", "pharmacy", pid, PHARMACY, 31337, CONTRACT)
    )
    assert Account.recover_message(msg, signature=proof) == key.address
    others = {
        key.review_proof(pid, PHARMACY, 31337, CONTRACT),
        key.dispense_proof(os.urandom(32), PHARMACY, 31337, CONTRACT),
        key.dispense_proof(pid, OTHER, 31337, CONTRACT),
        key.dispense_proof(pid, PHARMACY, 1, CONTRACT),
        key.dispense_proof(pid, PHARMACY, 31337, OTHER),
    }
    assert proof not in others and len(others) == 5
    with pytest.raises(ValueError, match="32 bytes"):
        key.dispense_proof(b"\x01", PHARMACY, 31337, CONTRACT)
