"""The reader key of a prescription, and its proofs (EIP-712) that a reviewer or a
pharmacy read the document.

The key is derived from the 32-byte salt inside the prescription document, so whoever
reads the document (and only they, with the prescriber) can sign with it. The prescriber
registers its address at issue; ``Prescriptions.review`` and ``dispense`` check a
signature of ``Review(prescriptionId, reviewer)`` or ``Dispense(prescriptionId,
pharmacy)`` by it. A proof names its caller, so one seen in the mempool serves nobody
else. The digests are eth-account's ``encode_typed_data`` (the tests check them against
the contract's ``hashReview`` and ``hashDispense``).
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_keys.constants import SECPK1_N
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.chain._eip712 import typed_data

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "ReaderKey"]

#: The Prescriptions contract's EIP-712 domain (``EIP712("emrshare-prescriptions", "1")``).
DOMAIN_NAME = "emrshare-prescriptions"
DOMAIN_VERSION = "1"

_CONTEXT = b"emrshare/prescription-reader-key/v1"


class ReaderKey:
    """The reader key of the prescription whose document carries ``salt``.

    Its secret never leaves this object (the repr shows the address only)."""

    __slots__ = ("_secret", "address")

    def __init__(self, salt: bytes) -> None:
        if len(salt) != 32:
            raise ValueError("a prescription salt is 32 random bytes")
        # A scalar in [1, n-1]; the bias of reducing 256 bits modulo n is below 2**-127.
        scalar = int.from_bytes(keccak(_CONTEXT + bytes(salt)), "big") % (SECPK1_N - 1) + 1
        self._secret = scalar.to_bytes(32, "big")
        self.address: str = to_checksum_address(Account.from_key(self._secret).address)

    def __repr__(self) -> str:
        return f"ReaderKey(address={self.address})"

    def review_proof(
        self, prescription_id: bytes, reviewer: str, chain_id: int, contract: str
    ) -> bytes:
        """The signature letting ``reviewer`` review ``prescription_id``."""
        message = _typed("Review", "reviewer", prescription_id, reviewer, chain_id, contract)
        return bytes(Account.sign_typed_data(self._secret, full_message=message).signature)

    def dispense_proof(
        self, prescription_id: bytes, pharmacy: str, chain_id: int, contract: str
    ) -> bytes:
        """The signature letting ``pharmacy`` dispense fills of ``prescription_id``."""
        message = _typed("Dispense", "pharmacy", prescription_id, pharmacy, chain_id, contract)
        return bytes(Account.sign_typed_data(self._secret, full_message=message).signature)


def _typed(
    kind: str, role: str, prescription_id: bytes, member: str, chain_id: int, contract: str
) -> dict[str, Any]:
    if len(prescription_id) != 32:
        raise ValueError("a prescription id is 32 bytes")
    return typed_data(
        DOMAIN_NAME, chain_id, contract, kind, [("prescriptionId", "bytes32"), (role, "address")],
        {"prescriptionId": bytes(prescription_id), role: to_checksum_address(member)},
        version=DOMAIN_VERSION,
    )  # fmt: skip
