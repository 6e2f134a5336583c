"""Identifiers and hashes the contracts derive, computed off chain (pure, no I/O)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3

from emrshare.categories import PURPOSES
from emrshare.errors import IndexIntegrityError
from emrshare.types import CategoryTag, PolicyId, RecordId

__all__ = [
    "FHIR_PURPOSES",
    "BINDING_BYTES",
    "ZERO_HEAD",
    "binding_for",
    "claim_id",
    "next_head",
    "policy_id",
    "prescription_commitment",
    "prescription_id",
    "proxies_hash",
    "purpose_code",
    "record_id",
    "record_ids",
    "records_hash",
    "scope_hash",
    "verify_chain",
]

#: The head of an empty index hash chain.
ZERO_HEAD = bytes(28)

#: Length of a grant's binding to its grantee and proxies (``bytes27`` on chain).
BINDING_BYTES = 27

#: The HL7 PurposeOfUse codes (one list: :data:`emrshare.categories.PURPOSES`). The purpose
#: travels only inside a sealed access request; :func:`purpose_code` still encodes one.
FHIR_PURPOSES = tuple(PURPOSES)


def policy_id(patient: str, nonce: bytes) -> PolicyId:
    """``keccak256(abi.encode(patient, nonce))``: the id the Grants contract derives."""
    if len(nonce) != 32:
        raise ValueError("a policy nonce is 32 random bytes")
    return PolicyId(
        keccak(abi_encode(["address", "bytes32"], [Web3.to_checksum_address(patient), nonce]))
    )


def prescription_commitment(salt: bytes, document: bytes) -> bytes:
    """``keccak256(abi.encode(salt, sha256(document)))``: what a prescriber commits to in
    the ``Prescriptions`` contract (``salt`` 32 random bytes, inside the document)."""
    if len(salt) != 32:
        raise ValueError("a prescription salt is 32 random bytes")
    return bytes(keccak(salt + hashlib.sha256(document).digest()))


def study_id(researcher: str, protocol: bytes) -> bytes:
    """``Studies.idOf``: ``keccak256(abi.encode(researcher, protocol))``, the id of
    ``researcher``'s study of the protocol commitment ``protocol``."""
    return prescription_id(researcher, protocol)


def prescription_id(prescriber: str, commitment: bytes) -> bytes:
    """``Prescriptions.idOf``: ``keccak256(abi.encode(prescriber, commitment))``, the id of
    ``prescriber``'s prescription (another provider issuing the same commitment makes
    another id)."""
    return bytes(
        keccak(
            abi_encode(["address", "bytes32"], [Web3.to_checksum_address(prescriber), commitment])
        )
    )


def claim_id(hospital: str, commitment: bytes) -> bytes:
    """``Claims.idOf``: ``keccak256(abi.encode(hospital, commitment))``, the id of
    ``hospital``'s claim; ``commitment`` is :func:`prescription_commitment` of the claim
    document and its salt (the same recipe)."""
    return prescription_id(hospital, commitment)


def record_ids(patient: str, tag: CategoryTag, writer: str) -> Callable[[int], RecordId]:
    """``sequence -> record_id(patient, tag, writer, sequence)`` for one stream.

    The ABI encoding of the three fixed arguments is computed once: a bulk write names
    thousands of slots of one stream.
    """
    prefix = abi_encode(
        ["address", "bytes32", "address"],
        [Web3.to_checksum_address(patient), tag, Web3.to_checksum_address(writer)],
    )

    def of(sequence: int) -> RecordId:
        if not 0 <= sequence < 2**64:
            abi_encode(["uint64"], [sequence])  # raises as the contract's ABI would
        return RecordId(keccak(prefix + sequence.to_bytes(32, "big")))

    return of


def record_id(patient: str, tag: CategoryTag, writer: str, sequence: int) -> RecordId:
    """``keccak256(abi.encode(patient, tag, writer, sequence))``, as RecordIndex derives it."""
    return record_ids(patient, tag, writer)(sequence)


def proxies_hash(proxies: Sequence[str]) -> bytes:
    """``keccak256(abi.encode(proxies))``, as a grant stores it."""
    return keccak(abi_encode(["address[]"], [[Web3.to_checksum_address(p) for p in proxies]]))


def binding_for(grantee: str, proxies: Sequence[str]) -> bytes:
    """The first 27 bytes of ``keccak256(abi.encode(grantee, proxies))``, as a grant stores it.

    216 bits: finding another (grantee, proxies) with the same binding is a second-preimage
    search of about 2**216 work.
    """
    encoded = abi_encode(
        ["address", "address[]"],
        [Web3.to_checksum_address(grantee), [Web3.to_checksum_address(p) for p in proxies]],
    )
    return bytes(keccak(encoded))[:BINDING_BYTES]


def records_hash(record_ids: Iterable[bytes]) -> bytes:
    """``keccak256(id_1 || id_2 || …)``: what a proxy logs in ``AuditLog`` for a served batch.

    The record ids (32 bytes each) are concatenated in the order they were served, with no
    ABI encoding. The patient recomputes it (for one record at a time) to name the records
    in its audit trail, so the proxies and the patient must agree on it byte for byte.
    """
    return bytes(keccak(b"".join(bytes(r) for r in record_ids)))


def scope_hash(record_ids: Iterable[bytes]) -> bytes:
    """``Grants.scopeOf`` of a grant scoped to ``record_ids``: ``keccak256`` of the ids,
    32 bytes each, concatenated in ascending order (the order the contract requires)."""
    return records_hash(sorted(bytes(r) for r in record_ids))


def next_head(head: bytes, rid: bytes, entry: bytes) -> bytes:
    """One step of a patient's index hash chain (28 bytes):
    ``bytes28(keccak256(abi.encode(bytes28 head, recordId, keccak256(entry))))``.

    224 bits so that the contract keeps head and count in one storage slot; a second chain
    ending at the same head is a 224-bit collision search (about 2**112 work).
    """
    return bytes(keccak(abi_encode(["bytes28", "bytes32", "bytes32"], [head, rid, keccak(entry)])))[
        :28
    ]


def purpose_code(code: str) -> bytes:
    """A FHIR PurposeOfUse code ("TREAT") as a left-aligned ``bytes32`` (checked)."""
    if not (1 <= len(code) <= 32) or not code.isascii() or not code.isalpha() or not code.isupper():
        raise ValueError(f"{code!r} is not an upper-case FHIR PurposeOfUse code such as 'TREAT'")
    return code.encode().ljust(32, b"\0")


class _Entry(Protocol):  # what verify_chain reads from an EntryAppended event
    @property
    def patient(self) -> str: ...
    @property
    def tag(self) -> bytes: ...
    @property
    def author(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def head(self) -> bytes: ...
    @property
    def entry(self) -> bytes: ...


def verify_chain(entries: Iterable[_Entry], *, head: bytes = ZERO_HEAD) -> tuple[bytes, int]:
    """Check that ``EntryAppended`` events form the patient's hash chain.

    ``entries`` are one patient's events in chain order, following the entry whose head
    is ``head`` (zero: the start of the index). Returns the final head and the number of
    entries checked; compare them with ``RecordIndex.head(patient)`` to know nothing was
    dropped at the end. Raises :class:`IndexIntegrityError` on a gap, a reordering or a
    forged entry.
    """
    count = 0
    for ev in entries:
        rid = record_id(ev.patient, CategoryTag(ev.tag), ev.author, ev.sequence)
        head = next_head(head, rid, ev.entry)
        if head != ev.head:
            raise IndexIntegrityError(
                f"index entry {count} (record 0x{rid.hex()}) does not extend the patient's "
                "hash chain; an event was dropped, reordered or forged: query another node"
            )
        count += 1
    return head, count
