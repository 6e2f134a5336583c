"""The Claims binding: insurance claims filed by hospitals, consented to by patients
through scoped grants, adjudicated and settled by insurers."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.claim_events import (
    ClaimAdjudicated,
    ClaimConsented,
    ClaimFiled,
    ClaimSettled,
)
from emrshare.chain.client import Receipt
from emrshare.chain.values import ClaimOnChain, ClaimStatus
from emrshare.types import CategoryTag, PolicyId

__all__ = ["Claims"]


class Claims(Binding):
    """Insurance claims: file (a hospital that writes for the patient), consent (the
    patient links a grant scoped to the claim's records), adjudicate and settle (the
    insurer, once)."""

    NAME = "Claims"
    EVENTS = (ClaimFiled, ClaimConsented, ClaimAdjudicated, ClaimSettled)

    # reads (each at ``block``, default latest)
    def claim(self, claim_id: bytes, *, block: int | None = None) -> ClaimOnChain:
        """The claim's on-chain part; ``status`` is ``NONE`` if there is none."""
        (c,) = self._call("claimOf", claim_id, block=block)
        return ClaimOnChain(
            claim_id=bytes(claim_id),
            hospital=normalize_abi_value(c[0]),
            insurer=normalize_abi_value(c[1]),
            patient=normalize_abi_value(c[2]),
            amount=int(c[3]),
            approved=int(c[4]),
            reason=int(c[5]),
            filed_at=int(c[6]),
            status=ClaimStatus.from_code(int(c[7])),
            records_hash=bytes(c[8]),
        )

    def records_hash(self, claim_id: bytes, *, block: int | None = None) -> bytes:
        """``keccak256`` of the claim's ascending record ids (zero for no claim)."""
        return bytes(self._call("recordsHashOf", claim_id, block=block)[0])

    def id_of(self, hospital: str, commitment: bytes) -> bytes:
        """``idOf``: the id of ``hospital``'s claim of ``commitment``."""
        return bytes(self._call("idOf", hospital, commitment)[0])

    def filed_event(self, claim_id: bytes) -> ClaimFiled | None:
        """The ``ClaimFiled`` event of ``claim_id`` (its records and items), or ``None``."""
        return next(self.events(ClaimFiled, claim_id=claim_id), None)

    # transactions
    def file(
        self,
        patient: str,
        insurer: str,
        tag: CategoryTag,
        commitment: bytes,
        amount: int,
        records: Sequence[bytes],
        items: Sequence[bytes] = (),
    ) -> Receipt:
        """File a claim (the caller must be an active Provider and ``patient``'s authorized
        writer under ``tag``); ``records`` strictly ascending; its id is
        ``receipt.event(ClaimFiled).claim_id`` (:func:`~emrshare.chain.claim_id`)."""
        return self._send(
            "file",
            patient,
            insurer,
            bytes(tag),
            commitment,
            amount,
            [bytes(r) for r in records],
            [bytes(i) for i in items],
        )

    def consent(self, claim_id: bytes, policy_id: PolicyId, proxies: Sequence[str]) -> Receipt:
        """Link the caller's grant ``policy_id`` (to the claim's insurer through ``proxies``,
        scoped to exactly the claim's records) as the patient's consent."""
        return self._send("consent", claim_id, bytes(policy_id), list(proxies))

    def adjudicate(self, claim_id: bytes, approved: int, reason: int) -> Receipt:
        """Adjudicate the claim (its insurer, once): approve ``approved`` minor units of it
        (0: deny) for administrative ``reason`` (non-zero unless all is approved)."""
        return self._send("adjudicate", claim_id, approved, reason)
