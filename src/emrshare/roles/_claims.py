"""Insurance claims for the member facades (issue 16): a hospital files (a FHIR ``Claim``
record in the encounter's category and its salted commitment on chain), the insurer reads
the claim and its records through the patient's claim-scoped grant and adjudicates once
(settlement follows in the same transaction), and the insurance bureau (a Regulator)
aggregates per hospital and per insurer from the chain alone, checking billed
prescriptions against dispensed fills.

``member.claims`` is a :class:`MemberClaims`; the patient's side is
:class:`~emrshare.roles._patient_claims.PatientClaims` (``patient.claims``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from emrshare.chain import (
    ClaimAdjudicated,
    ClaimConsented,
    ClaimFiled,
    ClaimOnChain,
    ClaimSettled,
    ClaimStatus,
    Contracts,
    PrescriptionDispensed,
    Role,
    claim_id,
    prescription_commitment,
)
from emrshare.errors import ConfigurationError, InvalidInput, VerificationError
from emrshare.fhir import FhirVersion
from emrshare.fhir.claim import ClaimDoc, ClaimItem, claim_resource, read_claim
from emrshare.network import Network
from emrshare.roles._blob_io import read_record
from emrshare.roles._common import checksum, run_blocking
from emrshare.roles._reads import GrantedReader, inline
from emrshare.types import CategoryTag, RecordId

__all__ = [
    "ClaimInfo",
    "ClaimReason",
    "ClaimRead",
    "ClaimsReport",
    "FiledClaim",
    "MemberClaims",
    "UnbilledItem",
    "claim_info",
]

#: How a provider writes a record: ``(patient, category, content, media_type) -> id``.
WriteRecord = Callable[[str, str, bytes, str], RecordId]
#: The blinded tag a provider writes ``(patient, category)`` under.
TagOf = Callable[[str, str], CategoryTag]


class ClaimReason(IntEnum):
    """Administrative reason codes of an adjudication (a small public table: on chain in
    clear, so none names or hints at a diagnosis). ``NONE`` only for a full approval."""

    NONE = 0
    NOT_COVERED = 1  # the service is outside the patient's coverage
    MISSING_INFORMATION = 2  # the claim lacks what adjudication needs; file again
    DUPLICATE = 3  # the same service was claimed already
    NOT_ELIGIBLE = 4  # the patient was not covered on the date of service
    EXCEEDS_LIMIT = 5  # over the coverage's limit or tariff for the service
    FILED_LATE = 6  # past the filing deadline
    OTHER_PAYER = 7  # another payer is responsible first
    NO_CONSENT = 8  # the patient did not consent to the claim's records being read
    BILLING_ERROR = 9  # amounts or items do not add up

    @classmethod
    def of(cls, value: int | str | ClaimReason) -> ClaimReason:
        """A reason from its code or name (``"not-covered"``, ``"NOT_COVERED"``, ``1``)."""
        if isinstance(value, str) and not value.isdigit():
            name = value.strip().upper().replace("-", "_")
            if name in cls.__members__:
                return cls[name]
        else:
            try:
                return cls(int(value))
            except ValueError:
                pass
        names = ", ".join(m.name.lower().replace("_", "-") for m in cls)
        raise InvalidInput(f"unknown claim reason {value!r}; use one of {names}")


@dataclass(frozen=True, slots=True)
class FiledClaim:
    """A claim just filed: its id, the record holding the document, and what the chain
    holds (records ascending, the document's among them)."""

    claim_id: bytes
    record_id: RecordId
    patient: str
    insurer: str
    amount: int
    records: tuple[RecordId, ...]
    items: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """One claim as the chain holds it, with its records and billed items (from
    ``ClaimFiled``); ``reason`` is a :class:`ClaimReason` when the code is known."""

    claim_id: bytes
    hospital: str
    insurer: str
    patient: str
    amount: int
    approved: int
    reason: ClaimReason | int
    status: ClaimStatus
    records: tuple[RecordId, ...]
    items: tuple[bytes, ...]
    commitment: bytes
    filed_block: int


@dataclass(frozen=True, slots=True)
class ClaimRead:
    """What an insurer read of one claim: the verified document (its record id and
    parsed ``Claim``) and every other record's bytes, by record id."""

    claim: ClaimInfo
    document_record: RecordId
    document: ClaimDoc
    records: tuple[tuple[RecordId, bytes], ...]


@dataclass(frozen=True, slots=True)
class UnbilledItem:
    """A billed prescription with no ``PrescriptionDispensed`` event (the insurance list
    names what the actual list does not)."""

    claim_id: bytes
    hospital: str
    prescription_id: bytes


@dataclass(frozen=True, slots=True)
class ClaimsReport:
    """What the insurance bureau sees, from the chain alone at ``block``: per hospital
    and per insurer, counts (``filed``, ``consented``, ``approved``,
    ``partially_approved``, ``denied``, ``open``) and sums in minor units (``billed``,
    ``paid``); ``mismatches`` lists billed prescriptions never dispensed."""

    block: int
    by_hospital: dict[str, Counter[str]] = field(default_factory=dict)
    by_insurer: dict[str, Counter[str]] = field(default_factory=dict)
    mismatches: tuple[UnbilledItem, ...] = ()


def claim_info(network: Network, filed: ClaimFiled, *, block: int | None = None) -> ClaimInfo:
    """The claim of ``filed`` with its state on chain (at ``block``, default latest)."""
    c: ClaimOnChain = network.contracts.claims.claim(bytes(filed.claim_id), block=block)
    try:
        reason: ClaimReason | int = ClaimReason(c.reason)
    except ValueError:
        reason = c.reason
    return ClaimInfo(
        claim_id=bytes(filed.claim_id),
        hospital=checksum(filed.hospital),
        insurer=checksum(filed.insurer),
        patient=checksum(filed.patient),
        amount=int(filed.amount),
        approved=c.approved,
        reason=reason,
        status=c.status,
        records=tuple(RecordId(bytes(r)) for r in filed.records),
        items=tuple(bytes(i) for i in filed.items),
        commitment=bytes(filed.commitment),
        filed_block=filed.block_number,
    )


def parse_claim_id(value: bytes | str) -> bytes:
    """A claim id from 32 bytes or ``0x`` + 64 hex digits (:class:`InvalidInput` else)."""
    if isinstance(value, str):
        text = value[2:] if value.lower().startswith("0x") else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            value = b""
    if len(value) != 32:
        raise InvalidInput("a claim id is 0x and 64 hex digits")
    return bytes(value)


class MemberClaims:
    """A member's side of insurance claims (``member.claims``).

    Example::

        filed = hospital.claims.file(patient, insurer, "encounters", records=[r1, r2],
                                     items=[ClaimItem("consultation", 12_000)])
        # the patient consents: patient.claims.consent(filed.claim_id, expires=...)
        read = insurer.claims.read(filed.claim_id)
        insurer.claims.adjudicate(filed.claim_id, 10_000, ClaimReason.EXCEEDS_LIMIT)
    """

    def __init__(self, network: Network, signed: Contracts, reads: GrantedReader) -> None:
        self.network = network
        self.address = checksum(signed.claims.client.address or "")
        self.signed = signed
        self._reads = reads
        #: How this member writes a record, and its tags; set by a Provider.
        self.write: WriteRecord | None = None
        self.tag_of: TagOf | None = None

    # -- the hospital -------------------------------------------------------------------

    def file(
        self,
        patient: str,
        insurer: str,
        category: str,
        *,
        records: Sequence[RecordId | bytes],
        items: Sequence[ClaimItem],
        currency: str = "CNY",
    ) -> FiledClaim:
        """File a claim with ``insurer`` for ``patient``'s encounter ``records`` (all of
        ``category``, which this Provider is authorized to write): the ``Claim`` document
        is written as a record of ``category`` and its commitment filed on chain with the
        records (the document's among them, so one scoped grant covers it all). The
        amount is the items' sum; the billed prescription ids are the items'. The record
        goes first (its id is among the claim's); a filing the chain refuses after it leaves
        a claim document no claim names, which a reader of the category sees as such."""
        if self.write is None or self.tag_of is None:
            raise ConfigurationError("only a Provider files claims; open one")
        patient, insurer = checksum(patient), checksum(insurer)
        encounter = sorted({bytes(r) for r in records})
        if not 1 <= len(encounter) <= 255:
            raise InvalidInput("a claim names 1 to 255 records of the encounter")
        tag = self.tag_of(patient, category)  # AccessDenied unless authorized
        # Checked before the document is written: a refused filing leaves no record behind.
        if not self.network.contracts.registry.has_role(insurer, Role.INSURER):
            raise InvalidInput(
                f"{insurer} is not an active Insurer member; file the claim with an insurer "
                "of the consortium"
            )
        doc = ClaimDoc(
            patient=patient,
            hospital=self.address,
            insurer=insurer,
            created=self.network.chain_time(),
            records=tuple(encounter),
            items=tuple(items),
            salt=os.urandom(32),
            currency=currency,
        )
        data = claim_resource(doc)
        commitment = prescription_commitment(doc.salt, data)
        rid = self.write(patient, category, data, FhirVersion.R4.media_type)
        on_chain = tuple(RecordId(r) for r in sorted([*encounter, bytes(rid)]))
        rx = doc.prescription_ids
        self.signed.claims.file(patient, insurer, tag, commitment, doc.total, on_chain, rx)
        return FiledClaim(
            claim_id(self.address, commitment), rid, patient, insurer, doc.total, on_chain, rx
        )

    # -- the insurer --------------------------------------------------------------------

    def claim(self, claim: bytes | str) -> ClaimInfo:
        """One claim and its state (:class:`InvalidInput` for an id no claim has)."""
        cid = parse_claim_id(claim)
        filed = self.network.contracts.claims.filed_event(cid)
        if filed is None:
            raise InvalidInput(f"no claim 0x{cid.hex()} was filed on chain; check the id")
        return claim_info(self.network, filed)

    def incoming(self, *, open_only: bool = False) -> list[ClaimInfo]:
        """Claims filed with this member as insurer, oldest first (``open_only``: not yet
        adjudicated)."""
        out = [
            claim_info(self.network, ev)
            for ev in self.network.contracts.claims.events(ClaimFiled, insurer=self.address)
        ]
        return [c for c in out if not (open_only and c.status.adjudicated)]

    def read(self, claim: bytes | str) -> ClaimRead:
        """Read a claim's document and records through the patient's claim-scoped grant
        and verify the document against the chain: its commitment and id, the patient,
        hospital, insurer, amount, records and billed items. :class:`VerificationError`
        if it does not match (do not pay it)."""
        info = self.claim(claim)
        contents: list[tuple[RecordId, bytes]] = []
        for rid in info.records:
            entry = run_blocking(self._reads.open(info.patient, rid, inline), "claims.read")
            contents.append((rid, read_record(self.network.store, entry)))
        for rid, data in contents:
            try:
                doc = read_claim(data)
            except InvalidInput:
                continue
            if claim_id(info.hospital, prescription_commitment(doc.salt, data)) != info.claim_id:
                continue
            _check(info, doc, rid)
            others = tuple((r, d) for r, d in contents if r != rid)
            return ClaimRead(info, rid, doc, others)
        raise VerificationError(
            f"none of claim 0x{info.claim_id.hex()}'s records is its claim document (no "
            "record matches the commitment on chain); do not pay it, ask the hospital"
        )

    def adjudicate(
        self, claim: bytes | str, approved: int, reason: ClaimReason | int = ClaimReason.NONE
    ) -> ClaimInfo:
        """Adjudicate a claim this member is the insurer of, once: approve ``approved``
        minor units (all: approved; part: partially; 0: denied), for ``reason``
        (required unless all is approved). Settlement is emitted in the same transaction.
        The chain refuses as :class:`~emrshare.errors.ClaimRefused`."""
        cid = parse_claim_id(claim)
        code = ClaimReason.of(reason)
        if approved < 0:
            raise InvalidInput("the approved amount is 0 or more minor units")
        r = self.signed.claims.adjudicate(cid, approved, int(code))
        r.event(ClaimAdjudicated)
        return self.claim(cid)

    # -- the regulator (insurance bureau) -----------------------------------------------

    def report(self) -> ClaimsReport:
        """Per hospital and per insurer figures and the billed-vs-dispensed check, from
        the chain's events alone, all as of one block (the newest with the network's
        confirmations): no document, no plaintext."""
        contracts = self.network.contracts
        block = self.network.chain.safe_block()
        filed = list(contracts.claims.events(ClaimFiled, to_block=block))
        decided = {
            bytes(e.claim_id): e for e in contracts.claims.events(ClaimAdjudicated, to_block=block)
        }
        paid = {bytes(e.claim_id): e for e in contracts.claims.events(ClaimSettled, to_block=block)}
        consented = {
            bytes(e.claim_id) for e in contracts.claims.events(ClaimConsented, to_block=block)
        }
        dispensed = {
            bytes(e.prescription_id)
            for e in contracts.prescriptions.events(PrescriptionDispensed, to_block=block)
        }
        report = ClaimsReport(block=block)
        mismatches: list[UnbilledItem] = []
        for ev in filed:
            cid = bytes(ev.claim_id)
            rows = (
                report.by_hospital.setdefault(checksum(ev.hospital), Counter()),
                report.by_insurer.setdefault(checksum(ev.insurer), Counter()),
            )
            adj = decided.get(cid)
            status = "open" if adj is None else ClaimStatus.from_code(int(adj.status)).value
            settled = paid.get(cid)
            for row in rows:
                row["filed"] += 1
                row[status] += 1
                row["consented"] += cid in consented
                row["billed"] += int(ev.amount)
                row["paid"] += int(settled.amount) if settled else 0
            mismatches += [
                UnbilledItem(cid, checksum(ev.hospital), bytes(i))
                for i in ev.items
                if bytes(i) not in dispensed
            ]
        return ClaimsReport(block, report.by_hospital, report.by_insurer, tuple(mismatches))


def _check(info: ClaimInfo, doc: ClaimDoc, rid: RecordId) -> None:
    """The document says what the chain holds, or :class:`VerificationError`."""
    where = f"claim 0x{info.claim_id.hex()}'s document (record 0x{bytes(rid).hex()})"
    expected = {
        "patient": (checksum(doc.patient), info.patient),
        "hospital": (checksum(doc.hospital), info.hospital),
        "insurer": (checksum(doc.insurer), info.insurer),
        "amount": (doc.total, info.amount),
        "records": (sorted([*doc.records, bytes(rid)]), sorted(bytes(r) for r in info.records)),
        "items": (list(doc.prescription_ids), list(info.items)),
    }
    for what, (said, held) in expected.items():
        if said != held:
            raise VerificationError(
                f"{where} names another {what} than the chain holds; do not pay it, ask "
                "the hospital"
            )
