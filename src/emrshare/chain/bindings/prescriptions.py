"""The Prescriptions binding: e-prescription commitments, review, dispensing and
cancellation, and the per-prescriber and per-pharmacy counts a regulator reads."""

from __future__ import annotations

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import (
    PrescriptionCancelled,
    PrescriptionDispensed,
    PrescriptionIssued,
    PrescriptionReviewed,
)
from emrshare.chain.values import Prescription, PrescriptionStatus

__all__ = ["Prescriptions"]


class Prescriptions(Binding):
    """E-prescription commitments: issue, review, dispense (at most the allowed fills),
    cancel; no drug, dose or patient on chain."""

    NAME = "Prescriptions"
    EVENTS = (
        PrescriptionIssued,
        PrescriptionReviewed,
        PrescriptionDispensed,
        PrescriptionCancelled,
    )

    # reads (each at ``block``, default latest)
    def prescription(self, prescription_id: bytes, *, block: int | None = None) -> Prescription:
        """The prescription's on-chain part; ``status`` is ``NONE`` if there is none."""
        (p,) = self._call("prescriptionOf", prescription_id, block=block)
        return Prescription(
            prescription_id=bytes(prescription_id),
            prescriber=normalize_abi_value(p[0]),
            issued_at=int(p[1]),
            valid_until=int(p[2]),
            fills=int(p[3]),
            fills_used=int(p[4]),
            reviewed=bool(p[5]),
            cancelled=bool(p[6]),
            status=PrescriptionStatus.from_code(int(p[7])),
            reader=normalize_abi_value(p[8]),
        )

    def status(self, prescription_id: bytes, *, block: int | None = None) -> PrescriptionStatus:
        """The prescription's status on chain time (of ``block``)."""
        return PrescriptionStatus.from_code(self._call("statusOf", prescription_id, block=block)[0])

    def review_required(self) -> bool:
        """Whether the consortium requires a review before any dispensing."""
        return bool(self._call("reviewRequired")[0])

    def hash_review(self, prescription_id: bytes, reviewer: str) -> bytes:
        """The EIP-712 digest the reader key signs for ``reviewer`` (``hashReview``)."""
        return bytes(self._call("hashReview", prescription_id, reviewer)[0])

    def hash_dispense(self, prescription_id: bytes, pharmacy: str) -> bytes:
        """The EIP-712 digest the reader key signs for ``pharmacy`` (``hashDispense``)."""
        return bytes(self._call("hashDispense", prescription_id, pharmacy)[0])

    def issued_event(self, prescription_id: bytes) -> PrescriptionIssued | None:
        """The ``PrescriptionIssued`` event of ``prescription_id`` (its block is the issue
        block), or ``None``."""
        return next(self.events(PrescriptionIssued, prescription_id=prescription_id), None)

    # transactions
    def issue(self, commitment: bytes, reader: str, valid_until: int, fills: int) -> Receipt:
        """Issue the prescription of ``commitment`` (the caller must hold the Provider role);
        its id is ``receipt.event(PrescriptionIssued).prescription_id``
        (:func:`~emrshare.chain.prescription_id`); ``reader`` is the address of its
        :class:`~emrshare.chain.ReaderKey`."""
        return self._send("issue", commitment, reader, valid_until, fills)

    def review(self, prescription_id: bytes, proof: bytes) -> Receipt:
        """Approve prescription ``prescription_id`` (a pharmacy or provider, not its
        prescriber); ``proof`` is :meth:`ReaderKey.review_proof` for the caller."""
        return self._send("review", prescription_id, proof)

    def dispense(self, prescription_id: bytes, proof: bytes, *, gas: int | None = None) -> Receipt:
        """Dispense one fill (the caller must hold the Pharmacy role); ``proof`` is
        :meth:`ReaderKey.dispense_proof` for the caller."""
        return self._send("dispense", prescription_id, proof, gas=gas)

    def cancel(self, prescription_id: bytes) -> Receipt:
        """Cancel prescription ``prescription_id`` (its prescriber only)."""
        return self._send("cancel", prescription_id)
