"""Identifier types shared by every layer (``NewType`` so mix-ups fail type checks), and
:class:`FhirProblem`, the one value the error tree carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

__all__ = ["Address", "CategoryTag", "Cid", "FhirProblem", "PolicyId", "RecordId"]

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


@dataclass(frozen=True, slots=True)
class FhirProblem:
    """One FHIR resource refused, and why: ``source`` is the file (or ``<input>``),
    ``location`` the place in it (``entry[3].resource``, ``line 17``), ``resource`` the
    resource's ``Type/id`` as far as it could be read (``""`` if not), ``path`` the element
    that failed (``valueQuantity.value``; ``""`` for the whole resource), ``reason`` what
    failed."""

    source: str
    location: str
    resource: str
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.source} {self.location}".strip()
        at = f" at {self.path}" if self.path else ""
        return f"{self.resource or 'a resource'} ({where}){at}: {self.reason}"
