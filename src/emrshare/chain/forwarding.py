"""Patient operations as EIP-712 typed messages for the ``PatientForwarder`` contract.

A :class:`ForwardRequest` names the patient, the target contract, the patient's next
forwarder nonce, a deadline and the chain; its ``data`` is the target function's calldata.
The patient (or a guardian) signs it; anyone may send it with ``PatientForwarder.execute``.
The digest is eth-account's ``encode_typed_data`` of :meth:`ForwardRequest.typed_data`
(the tests check it equals the contract's ``hashRequest``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils.address import to_checksum_address

from emrshare.chain._eip712 import DOMAIN_TYPE
from emrshare.types import Address

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "ForwardRequest", "accept_identity"]

#: The forwarder's EIP-712 domain (``EIP712("emrshare-forwarder", "1")``).
DOMAIN_NAME = "emrshare-forwarder"
DOMAIN_VERSION = "1"


_TYPES = {
    "ForwardRequest": [
        {"name": "patient", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "chainId", "type": "uint256"},
        {"name": "data", "type": "bytes"},
    ]
}


def _domain(chain_id: int, forwarder: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(forwarder),
    }


def accept_identity(new_key: bytes, patient: str, chain_id: int, forwarder: str) -> bytes:
    """The signature by ``new_key`` of ``AcceptIdentity(patient, signer)``: the consent a
    new signing key gives before ``PatientForwarder.rotateSigner`` hands it ``patient``'s
    identity (so nobody can rotate onto another's address)."""
    signer = to_checksum_address(Account.from_key(new_key).address)
    message = {
        "domain": _domain(chain_id, forwarder),
        "types": {
            "EIP712Domain": DOMAIN_TYPE,
            "AcceptIdentity": [
                {"name": "patient", "type": "address"},
                {"name": "signer", "type": "address"},
            ],
        },
        "primaryType": "AcceptIdentity",
        "message": {"patient": to_checksum_address(patient), "signer": signer},
    }
    return bytes(Account.sign_typed_data(new_key, full_message=message).signature)


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """One patient operation as signed: ``data`` is the target's calldata, without the
    patient appended (the forwarder appends it)."""

    patient: Address
    to: Address
    nonce: int
    deadline: int  # unix seconds, chain time
    chain_id: int
    data: bytes

    def __post_init__(self) -> None:
        for name in ("nonce", "deadline", "chain_id"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v < 2**256:
                raise ValueError(f"a forward request's {name} is a uint256, not {v!r}")
        if len(self.data) < 4:
            raise ValueError("a forward request's data starts with a function selector")

    def typed_data(self, forwarder: str) -> dict[str, Any]:
        """The full EIP-712 message for the forwarder at ``forwarder``."""
        return {
            "domain": _domain(self.chain_id, forwarder),
            "types": {"EIP712Domain": DOMAIN_TYPE, **_TYPES},
            "primaryType": "ForwardRequest",
            "message": {
                "patient": to_checksum_address(self.patient),
                "to": to_checksum_address(self.to),
                "nonce": self.nonce,
                "deadline": self.deadline,
                "chainId": self.chain_id,
                "data": self.data,
            },
        }

    def digest(self, forwarder: str) -> bytes:
        """The EIP-712 digest the signer signs (the forwarder's ``hashRequest``)."""
        return bytes(
            _hash_eip191_message(encode_typed_data(full_message=self.typed_data(forwarder)))
        )

    def sign(self, private_key: bytes, forwarder: str) -> bytes:
        """The 65-byte (r, s, v) signature of ``private_key`` over this request."""
        signed = Account.sign_typed_data(private_key, full_message=self.typed_data(forwarder))
        return bytes(signed.signature)

    def as_abi(self) -> tuple[Any, ...]:
        """The ABI tuple of ``PatientForwarder.ForwardRequest``."""
        return (
            to_checksum_address(self.patient),
            to_checksum_address(self.to),
            self.nonce,
            self.deadline,
            self.chain_id,
            self.data,
        )

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> ForwardRequest:
        """The inverse of :meth:`as_abi` (a decoded ``ForwardRequest`` tuple)."""
        patient, to, nonce, deadline, chain_id, data = value
        return cls(
            patient=Address(to_checksum_address(patient)),
            to=Address(to_checksum_address(to)),
            nonce=nonce,
            deadline=deadline,
            chain_id=chain_id,
            data=bytes(data),
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form a relay takes (numbers as decimal strings, bytes as 0x hex)."""
        return {
            "patient": to_checksum_address(self.patient),
            "to": to_checksum_address(self.to),
            "nonce": str(self.nonce),
            "deadline": str(self.deadline),
            "chain_id": str(self.chain_id),
            "data": "0x" + self.data.hex(),
        }
