"""The PatientForwarder binding: relayed patient operations, guardians, signer rotation."""

from __future__ import annotations

from emrshare._addresses import checksum
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import GuardianSet, GuardianWithdrawn, Relayed, SignerRotated
from emrshare.chain.forwarding import ForwardRequest
from emrshare.types import Address

__all__ = ["PatientForwarder"]


class PatientForwarder(Binding):
    """Runs patient operations signed off chain (EIP-712) and sent by any relayer."""

    NAME = "PatientForwarder"
    EVENTS = (Relayed, GuardianSet, GuardianWithdrawn, SignerRotated)

    # reads (each at ``block``, default latest)
    def nonce(self, patient: str, *, block: int | None = None) -> int:
        """The patient's next forwarder nonce."""
        return int(self._call("nonces", patient, block=block)[0])

    def hash_request(self, request: ForwardRequest, *, block: int | None = None) -> bytes:
        """The contract's EIP-712 digest of ``request``."""
        return bytes(self._call("hashRequest", request.as_abi(), block=block)[0])

    def signer_of(self, patient: str, *, block: int | None = None) -> Address:
        """The key whose signature acts for ``patient`` (itself until it rotates)."""
        return Address(checksum(self._call("signerOf", patient, block=block)[0]))

    def identity_of(self, signer: str, *, block: int | None = None) -> Address:
        """The identity ``signer`` acts for (itself unless it is a rotated-to key)."""
        return Address(checksum(self._call("identityOf", signer, block=block)[0]))

    def must_relay(self, account: str, *, block: int | None = None) -> bool:
        """Whether ``account`` acts only through the forwarder (rotated)."""
        return bool(self._call("mustRelay", account, block=block)[0])

    def guardian_of(
        self, patient: str, guardian: str, *, block: int | None = None
    ) -> tuple[int, int]:
        """(until, since): when the guardianship ends (unix seconds) and the block it was
        named at; (0, 0) if ``guardian`` is not a guardian of ``patient``."""
        until, since = self._call("guardianOf", patient, guardian, block=block)
        return int(until), int(since)

    # transactions
    def execute(self, request: ForwardRequest, signature: bytes) -> Receipt:
        """Send a signed request (the sender pays the gas)."""
        return self._send("execute", request.as_abi(), signature)

    def execute_data(self, request: ForwardRequest, signature: bytes) -> bytes:
        """The calldata of :meth:`execute` (a relayer checks it with ``eth_call`` first)."""
        return self._encode("execute", (request.as_abi(), signature))

    def decode_execute(self, calldata: bytes) -> tuple[ForwardRequest, bytes] | None:
        """The request and signature an ``execute`` call carries (a transaction's input);
        ``None`` if ``calldata`` is not a well-formed ``execute`` call."""
        args = self._decode_input("execute", calldata)
        if args is None:
            return None
        try:
            return ForwardRequest.from_abi(args[0]), bytes(args[1])
        except ValueError:  # a field ForwardRequest refuses (data without a selector)
            return None

    def set_guardian(self, guardian: str, until: int, sealed_keys: bytes) -> Receipt:
        """Name (or renew) ``guardian`` until ``until`` (unix seconds)."""
        return self._send("setGuardian", guardian, until, sealed_keys)

    def withdraw_guardian(self, guardian: str) -> Receipt:
        """End a guardianship now."""
        return self._send("withdrawGuardian", guardian)

    def hash_acceptance(self, patient: str, signer: str, *, block: int | None = None) -> bytes:
        """The contract's digest of ``AcceptIdentity(patient, signer)``."""
        return bytes(self._call("hashAcceptance", patient, signer, block=block)[0])

    def rotate_signer(self, new_signer: str, acceptance: bytes) -> Receipt:
        """Hand the sender's identity to ``new_signer``, which accepted it by signing
        ``acceptance`` (:func:`~emrshare.chain.forwarding.accept_identity`)."""
        return self._send("rotateSigner", new_signer, acceptance)
