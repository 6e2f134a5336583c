"""A patient's participant key of one research study, and its EIP-712 proofs of joining
and leaving (``Studies.join`` / ``Studies.leave``).

The key is derived from the patient's master secret and the study id
(:meth:`~emrshare.crypto.PatientKeys.study_participant_secret`): the contract knows the
participant by its address only, so nothing on chain links it to the patient's account or
to another study. A proof signs ``Join(studyId, participant, nonce)`` or ``Leave(…)`` with
the participant's next nonce (OpenZeppelin ``Nonces``): anybody may submit it, once. The
digests are eth-account's ``encode_typed_data`` (the tests check them against the
contract's ``hashJoin`` and ``hashLeave``).
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from emrshare.chain._eip712 import typed_data

__all__ = ["STUDIES_DOMAIN", "ParticipantKey"]

#: The Studies contract's EIP-712 domain name (``EIP712("emrshare-studies", "1")``).
STUDIES_DOMAIN = "emrshare-studies"


class ParticipantKey:
    """One patient's participant key of one study (``secret``: 32 bytes).

    Its secret never leaves this object (the repr shows the address only)."""

    __slots__ = ("_secret", "address")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a participant key is 32 bytes")
        self._secret = bytes(secret)
        self.address: str = to_checksum_address(Account.from_key(self._secret).address)

    def __repr__(self) -> str:
        return f"ParticipantKey(address={self.address})"

    def join_proof(self, study_id: bytes, nonce: int, chain_id: int, contract: str) -> bytes:
        """The signature letting anybody add this participant to ``study_id`` at ``nonce``."""
        return self._sign("Join", study_id, nonce, chain_id, contract)

    def sign(self, digest: bytes) -> bytes:
        """An EIP-191 signature of the 32-byte ``digest`` (a join request to the study's
        service names this participant and the patient; the key signs that pairing)."""
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        return bytes(Account.sign_message(encode_defunct(primitive=digest), self._secret).signature)

    def leave_proof(self, study_id: bytes, nonce: int, chain_id: int, contract: str) -> bytes:
        """The signature letting anybody remove this participant from ``study_id``."""
        return self._sign("Leave", study_id, nonce, chain_id, contract)

    def _sign(self, kind: str, study_id: bytes, nonce: int, chain_id: int, contract: str) -> bytes:
        if len(study_id) != 32:
            raise ValueError("a study id is 32 bytes")
        fields = [("studyId", "bytes32"), ("participant", "address"), ("nonce", "uint256")]
        message = typed_data(
            STUDIES_DOMAIN, chain_id, contract, kind, fields,
            {"studyId": bytes(study_id), "participant": self.address, "nonce": nonce},
        )  # fmt: skip
        return bytes(Account.sign_typed_data(self._secret, full_message=message).signature)
