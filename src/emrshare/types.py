"""Identifier types shared by every layer (``NewType`` so mix-ups fail type checks)."""

from __future__ import annotations

from typing import NewType

__all__ = ["Address", "CategoryTag", "Cid", "PolicyId", "RecordId"]

#: A content identifier, CIDv0 (``Qm…``) or CIDv1 (``bafy…``) in its string form.
Cid = NewType("Cid", str)
#: An EIP-55 checksummed Ethereum address.
Address = NewType("Address", str)
#: A 32-byte record identifier, unique per patient index.
RecordId = NewType("RecordId", bytes)
#: A 32-byte policy (grant) identifier: keccak256(abi.encode(patient, nonce)).
PolicyId = NewType("PolicyId", bytes)
#: A 32-byte blinded category tag: HMAC of (category, epoch) under the patient's blinding key.
CategoryTag = NewType("CategoryTag", bytes)
