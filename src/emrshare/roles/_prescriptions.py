"""E-prescriptions for the member facades (issue 15): a prescriber issues (a FHIR
``MedicationRequest`` record in the patient's ``prescriptions`` category and its salted
commitment on chain), a pharmacy verifies and dispenses, a reviewer approves where the
consortium requires it, the prescriber cancels, and the regulator counts, from the chain
alone, what each prescriber issued and each pharmacy dispensed.

``member.prescriptions`` is a :class:`MemberPrescriptions`. A pharmacy reads a
prescription as any granted record (the patient grants it the ``prescriptions``
category), then :meth:`MemberPrescriptions.verify` checks it against the chain before
anything is dispensed.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from emrshare.chain import (
    Contracts,
    Prescription,
    PrescriptionCancelled,
    PrescriptionDispensed,
    PrescriptionIssued,
    PrescriptionStatus,
    ReaderKey,
    Role,
    prescription_commitment,
    prescription_id,
)
from emrshare.errors import ConfigurationError, EmrShareError, InvalidInput, PrescriptionForged
from emrshare.fhir import FhirVersion
from emrshare.fhir.prescription import PrescriptionDoc, medication_request, read_prescription
from emrshare.network import Network
from emrshare.roles._blob_io import read_record
from emrshare.roles._common import RecordInfo, checksum, run_blocking
from emrshare.roles._reads import GrantedReader, inline
from emrshare.types import RecordId

__all__ = [
    "CATEGORY",
    "DispensedFill",
    "IssuedPrescription",
    "MemberPrescriptions",
    "PrescriptionCounts",
    "VerifiedPrescription",
]

log = logging.getLogger("emrshare.prescriptions")

#: The category prescriptions are written in.
CATEGORY = "prescriptions"
#: The longest validity the Prescriptions contract accepts.
MAX_VALIDITY = timedelta(days=366)

#: How a provider writes a record: ``(patient, category, content, media_type) -> id``.
WriteRecord = Callable[[str, str, bytes, str], RecordId]
#: The member's listing of a patient's granted records: ``(patient, category) -> infos``.
ListRecords = Callable[[str, str], list[RecordInfo]]


@dataclass(frozen=True, slots=True)
class IssuedPrescription:
    """A prescription just issued: its on-chain id (the commitment), the record holding
    the document, and the terms the chain holds."""

    prescription_id: bytes
    record_id: RecordId
    patient: str
    valid_until: int
    fills: int


@dataclass(frozen=True, slots=True)
class DispensedFill:
    """One fill just dispensed: ``fill`` counts from 1 up to ``fills``."""

    prescription_id: bytes
    record_id: RecordId
    fill: int
    fills: int


@dataclass(frozen=True, slots=True)
class VerifiedPrescription:
    """A prescription record that passed every check (:meth:`MemberPrescriptions.verify`):
    the author's signature on its index entry, its commitment on chain, the prescriber
    a Provider at the issue block, the patient and terms the chain holds. ``chain`` is
    the on-chain part (status, fills used) at block ``block``."""

    prescription_id: bytes
    record_id: RecordId
    patient: str
    document: PrescriptionDoc
    chain: Prescription
    issued_block: int
    block: int

    @property
    def status(self) -> PrescriptionStatus:
        """The status on chain time: ``ACTIVE`` is dispensable."""
        return self.chain.status

    @property
    def fills_left(self) -> int:
        return self.chain.fills - self.chain.fills_used


@dataclass(frozen=True, slots=True)
class PrescriptionCounts:
    """What the regulator sees, from the chain alone (no document, no patient): per
    prescriber, the prescriptions by status (``issued`` counts them all) and the fills
    dispensed; per pharmacy, the fills it dispensed and of how many prescriptions."""

    by_prescriber: dict[str, Counter[str]] = field(default_factory=dict)
    by_pharmacy: dict[str, Counter[str]] = field(default_factory=dict)


class MemberPrescriptions:
    """A member's side of e-prescriptions (``member.prescriptions``).

    Example::

        rx = hospital.prescriptions.issue(patient, "amoxicillin 500 mg capsule",
                                          dosage="1 capsule 3 times a day for 7 days")
        # the patient grants the pharmacy the "prescriptions" category …
        checked = pharmacy.prescriptions.verify(patient, rx.record_id)
        fill = pharmacy.prescriptions.dispense(patient, rx.record_id).fill
    """

    def __init__(
        self,
        network: Network,
        signed: Contracts,
        reads: GrantedReader,
        records: ListRecords,
    ) -> None:
        self.network = network
        self.address = checksum(signed.prescriptions.client.address or "")
        self.signed = signed
        self._reads = reads
        self._records = records
        #: How this member writes a record; set by a :class:`~emrshare.roles.Provider`.
        self.write: WriteRecord | None = None

    # -- the prescriber -----------------------------------------------------------------

    def issue(
        self,
        patient: str,
        medication: str,
        *,
        dosage: str,
        fills: int = 1,
        valid_for: timedelta = timedelta(days=30),
        code: str | None = None,
        note: str | None = None,
    ) -> IssuedPrescription:
        """Issue a prescription (a Provider the patient authorized to write
        ``prescriptions``): the ``MedicationRequest`` record and its commitment on
        chain, valid ``valid_for`` from chain time for ``fills`` fills. The commitment goes
        first (a reader of the record cannot take its id); a crash between the two leaves
        a commitment no record opens, which the prescriber may cancel."""
        if self.write is None:
            raise ConfigurationError("only a Provider issues prescriptions; open one")
        if not timedelta(0) < valid_for <= MAX_VALIDITY:
            raise InvalidInput("valid_for must be more than 0 and at most 366 days")
        patient = checksum(patient)
        now = self.network.chain_time()
        doc = PrescriptionDoc(
            patient=patient,
            prescriber=self.address,
            medication=medication,
            dosage=dosage,
            fills=fills,
            authored_on=now,
            valid_until=now + int(valid_for.total_seconds()),
            salt=os.urandom(32),
            code=code,
            note=note,
        )
        data = medication_request(doc)
        commitment = prescription_commitment(doc.salt, data)
        pid = prescription_id(self.address, commitment)
        # The commitment first: a grantee who reads the record cannot issue it first (and
        # the id names the prescriber: one who did would make another id).
        self.signed.prescriptions.issue(
            commitment, ReaderKey(doc.salt).address, doc.valid_until, fills
        )
        rid = self.write(patient, CATEGORY, data, FhirVersion.R4.media_type)
        return IssuedPrescription(pid, rid, patient, doc.valid_until, fills)

    def cancel(self, prescription_id: bytes) -> None:
        """Cancel a prescription this member issued (``Prescriptions_NotIssuer`` else)."""
        self.signed.prescriptions.cancel(bytes(prescription_id))

    # -- the pharmacy and the reviewer --------------------------------------------------

    def verify(self, patient: str, record: RecordId | bytes | str) -> VerifiedPrescription:
        """Read one prescription record (through this member's grant of the patient's
        ``prescriptions``) and check it: the author's signature (the read does), that it
        is a prescription, its commitment on chain, that the chain's prescriber is the
        author and was a Provider at the issue block, the patient, the fills and validity.
        :class:`PrescriptionForged` (``reason``) if any check fails. The status is
        reported, not judged: :meth:`dispense` leaves that to the chain."""
        patient = checksum(patient)
        entry = run_blocking(self._reads.open(patient, record, inline), "prescriptions.verify")
        data = read_record(self.network.store, entry)
        rid = RecordId(bytes(entry.record_id))
        where = f"record 0x{bytes(rid).hex()}"
        try:
            doc = read_prescription(data)
        except InvalidInput as exc:
            raise PrescriptionForged("not_a_prescription", f"{where}: {exc}") from exc
        pid = prescription_id(doc.prescriber, prescription_commitment(doc.salt, data))
        rx = self.network.contracts.prescriptions
        block = self.network.chain.latest_block()
        on_chain = rx.prescription(pid, block=block)
        author = checksum(entry.author)
        if on_chain.status is PrescriptionStatus.NONE:
            raise PrescriptionForged(
                "unknown_commitment",
                f"{where} was never issued on chain (no commitment 0x{pid.hex()}); "
                "do not dispense it",
            )
        if checksum(on_chain.prescriber) != author or checksum(doc.prescriber) != author:
            raise PrescriptionForged(
                "wrong_prescriber",
                f"{where} was written by {author}, but the prescription names "
                f"{doc.prescriber} and the chain {on_chain.prescriber}; do not dispense it",
            )
        issued = rx.issued_event(pid)
        if issued is None:
            raise PrescriptionForged(
                "unknown_commitment", f"{where}: the chain holds no issue event for it"
            )
        issued_block = issued.block_number
        if not self.network.contracts.registry.has_role(author, Role.PROVIDER, block=issued_block):
            raise PrescriptionForged(
                "not_prescriber_at_issue",
                f"{author} was not an active Provider when {where} was issued "
                f"(block {issued_block}); do not dispense it",
            )
        if checksum(doc.patient) != patient:
            raise PrescriptionForged(
                "wrong_patient", f"{where} is a prescription for {doc.patient}, not {patient}"
            )
        if (doc.fills, doc.valid_until) != (on_chain.fills, on_chain.valid_until):
            raise PrescriptionForged(
                "terms_differ",
                f"{where} allows {doc.fills} fill(s) until {doc.valid_until}, the chain "
                f"{on_chain.fills} until {on_chain.valid_until}; do not dispense it",
            )
        if checksum(on_chain.reader) != ReaderKey(doc.salt).address:
            raise PrescriptionForged(
                "terms_differ",
                f"{where}: its salt does not give the reader key issued on chain; "
                "do not dispense it",
            )
        return VerifiedPrescription(pid, rid, patient, doc, on_chain, issued_block, block)

    def review(self, patient: str, record: RecordId | bytes | str) -> VerifiedPrescription:
        """Verify a prescription, then approve it on chain (a Pharmacy or Provider other
        than the prescriber, where the consortium requires reviews)."""
        checked = self.verify(patient, record)
        rx = self.signed.prescriptions
        proof = ReaderKey(checked.document.salt).review_proof(
            checked.prescription_id, self.address, rx.client.chain_id, rx.address
        )
        rx.review(checked.prescription_id, proof)
        return checked

    def dispense(self, patient: str, record: RecordId | bytes | str) -> DispensedFill:
        """Verify a prescription, then dispense one fill on chain (a Pharmacy); returns
        the fill (its number counts from 1). The chain refuses a fill beyond those allowed
        (``Prescriptions_AlreadyDispensed``), after expiry or cancellation, or before a
        required review, as :class:`~emrshare.errors.PrescriptionRefused`."""
        checked = self.verify(patient, record)
        rx = self.signed.prescriptions
        proof = ReaderKey(checked.document.salt).dispense_proof(
            checked.prescription_id, self.address, rx.client.chain_id, rx.address
        )
        r = rx.dispense(checked.prescription_id, proof)
        fill = int(r.event(PrescriptionDispensed).fill)
        return DispensedFill(checked.prescription_id, checked.record_id, fill, checked.chain.fills)

    def readable(self, patient: str) -> list[VerifiedPrescription]:
        """The prescriptions of ``patient`` this member can read, each verified, in
        index order; a record that fails a check is left out (and logged)."""
        out: list[VerifiedPrescription] = []
        for info in self._records(checksum(patient), CATEGORY):
            try:
                out.append(self.verify(patient, info.record_id))
            except EmrShareError as exc:  # forged, unreadable: one record, not the listing
                log.warning("left out a prescription record: %s", type(exc).__name__)
        return out

    # -- the regulator ------------------------------------------------------------------

    def counts(self) -> PrescriptionCounts:
        """Per prescriber and per pharmacy counts, from the chain's events and statuses
        (commitments only: no drug, no patient), all as of one block: the newest with
        the network's confirmations.

        The events alone settle the status of a prescription that was cancelled, used
        all its fills or passed its validity by that block's time; only the live ones
        (active, or waiting for a review) are asked of the contract, one read each."""
        rx = self.network.contracts.prescriptions
        block = self.network.chain.safe_block()
        now = self.network.chain.block_time(block)
        dispensed = list(rx.events(PrescriptionDispensed, to_block=block))
        used = Counter(bytes(d.prescription_id) for d in dispensed)
        cancelled = {
            bytes(ev.prescription_id) for ev in rx.events(PrescriptionCancelled, to_block=block)
        }
        counts = PrescriptionCounts()
        for ev in rx.events(PrescriptionIssued, to_block=block):
            pid = bytes(ev.prescription_id)
            c = counts.by_prescriber.setdefault(checksum(ev.prescriber), Counter())
            c["issued"] += 1
            status = _settled_status(pid in cancelled, used[pid], ev.fills, ev.valid_until, now)
            if status is None:
                status = rx.status(pid, block=block)
            c[status.name.lower()] += 1
        seen: dict[str, set[bytes]] = {}
        for d in dispensed:
            pharmacy = checksum(d.pharmacy)
            c = counts.by_pharmacy.setdefault(pharmacy, Counter())
            c["fills"] += 1
            seen.setdefault(pharmacy, set()).add(bytes(d.prescription_id))
            c["prescriptions"] = len(seen[pharmacy])
            counts.by_prescriber.setdefault(checksum(d.prescriber), Counter())["fills"] += 1
        return counts


def _settled_status(
    cancelled: bool, used: int, fills: int, valid_until: int, now: int
) -> PrescriptionStatus | None:
    """The status of an issued prescription that its events settle, checked in the order
    of the contract's ``statusOf`` (cancelled, then every fill used, then past its
    validity at ``now``, the block's time); None for a live one, whose status also
    depends on the consortium's review rule: the contract says it."""
    if cancelled:
        return PrescriptionStatus.CANCELLED
    if used >= fills:
        return PrescriptionStatus.DISPENSED
    if now >= valid_until:
        return PrescriptionStatus.EXPIRED
    return None
