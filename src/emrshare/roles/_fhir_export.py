"""A patient's grants, audit trail and record authorship as FHIR Bundles
(``Patient.fhir``): the facade's value types turned into the plain facts of
:mod:`emrshare.fhir.export`, which builds the resources.

What each fact comes from:

- a grant's creation time is the timestamp of the block it was made in; its purpose is
  the purpose of the access request whose approval made it (the request's answer names
  the grants, :attr:`AccessRequestInfo.policy_ids`), none for a grant made directly;
- a read's time is the block time the proxies evaluated the grant at (checked against
  the chain by :mod:`emrshare.roles._audit`), its purpose that of its grant;
- a record's recorded time is the timestamp of the block its index entry was appended in,
  its author signature the one in the verified entry (:attr:`RecordInfo.author_signature`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from emrshare.errors import InvalidInput
from emrshare.fhir import (
    AuditFacts,
    ConsentFacts,
    FhirVersion,
    ProvenanceFacts,
    audit_event,
    bundle,
    consent,
    provenance,
)
from emrshare.network import Network
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    ReadEvent,
    RecordInfo,
)
from emrshare.types import Address, PolicyId, RecordId

__all__ = [
    "PatientFhir",
    "audit_facts",
    "consent_facts",
    "provenance_facts",
]

_Version = FhirVersion | str
_BundleType = Literal["collection", "searchset"]


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def consent_facts(
    grant: GrantInfo, *, created: int | None = None, purpose: str | None = None
) -> ConsentFacts:
    """The facts of one grant (``created``: its block time)."""
    return ConsentFacts(
        grant_id=_hex(grant.policy_id),
        patient=grant.patient,
        grantee=grant.grantee,
        category=grant.category,
        expiry=grant.expiry,
        status=str(grant.status),
        created=created,
        purpose=purpose,
        threshold=grant.threshold,
        proxies=tuple(grant.proxies),
        by=grant.by,
        records=tuple(_hex(r) for r in grant.records),
    )


def audit_facts(
    event: ReadEvent | AccessEvent, patient: str, *, purpose: str | None = None
) -> AuditFacts:
    """The facts of one read (or of one logged access that failed a check: its anomaly
    is the event's failed outcome)."""
    if isinstance(event, ReadEvent):
        proxies, records, anomaly = event.proxies, event.record_ids, ""
    else:
        proxies, records, anomaly = (event.proxy,), event.record_ids or (), event.anomaly
    return AuditFacts(
        policy_id=_hex(event.policy_id),
        requester=event.requester,
        patient=patient,
        record_ids=tuple(_hex(r) for r in records),
        proxies=tuple(proxies),
        evaluated=event.evaluated_time,
        category=event.category,
        purpose=purpose,
        anomaly=anomaly,
    )


def provenance_facts(record: RecordInfo, *, recorded: int) -> ProvenanceFacts:
    """The facts of one record whose entry was opened (``recorded``: its block time);
    :class:`InvalidInput` for one listed without its entry (no signature to show)."""
    if record.author_signature is None:
        raise InvalidInput(
            f"record 0x{bytes(record.record_id).hex()} was listed without its index entry; "
            "list it with its details to export its provenance"
        )
    return ProvenanceFacts(
        record_id=_hex(record.record_id),
        patient=record.patient,
        author=record.author,
        author_signature=record.author_signature,
        recorded=recorded,
        category=record.category,
        media_type=record.media_type,
        created=record.created_at,
    )


class _PatientParts(Protocol):
    """What the exports need of the patient facade (no import of the facade)."""

    network: Network
    address: Address

    def grants(self, *, active_only: bool = False) -> list[GrantInfo]: ...

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]: ...

    def audit(self) -> list[ReadEvent]: ...

    def audit_anomalies(self) -> list[AccessEvent]: ...

    def records(self, category: str | None = None) -> list[RecordInfo]: ...

    def record_id(self, record: RecordId | bytes | str) -> RecordId: ...


class PatientFhir:
    """The patient's grants, audit trail and record authorship as FHIR Bundles
    (``patient.fhir``; the resources' shapes: :mod:`emrshare.fhir.export`).

    Example::

        consents = patient.fhir.consents("R4")           # a Bundle of Consent
        events = patient.fhir.audit_events("R5")         # a Bundle of AuditEvent
        authorship = patient.fhir.provenance(category="lab-results")
    """

    def __init__(self, patient: _PatientParts) -> None:
        self._patient = patient
        self._times: dict[int, int] = {}

    def _block_time(self, block: int) -> int:
        if block not in self._times:
            self._times[block] = self._patient.network.chain.block_time(block)
        return self._times[block]

    def _purposes(self) -> Callable[[PolicyId | bytes], str | None]:
        found: dict[bytes, str] = {}
        for request in self._patient.requests():
            if request.purpose:
                for pid in request.policy_ids:
                    found.setdefault(bytes(pid), request.purpose)
        return lambda pid: found.get(bytes(pid))

    def consents(
        self,
        version: _Version = FhirVersion.R4,
        *,
        active_only: bool = False,
        bundle_type: _BundleType = "collection",
    ) -> dict[str, Any]:
        """Every grant this patient made (``active_only``: those active on chain time), oldest
        first, as a Bundle of Consent (revoked and expired grants are ``inactive``)."""
        purpose = self._purposes()
        resources = [
            consent(
                consent_facts(
                    g, created=self._block_time(g.block_number), purpose=purpose(g.policy_id)
                ),
                version,
            )
            for g in self._patient.grants(active_only=active_only)
        ]
        return bundle(resources, bundle_type)

    def audit_events(
        self,
        version: _Version = FhirVersion.R4,
        *,
        anomalies: bool = False,
        bundle_type: _BundleType = "collection",
    ) -> dict[str, Any]:
        """The audit trail as a Bundle of AuditEvent: one per served read
        (:meth:`Patient.audit`), oldest first; with ``anomalies``, then one failed event per
        logged access that fails a check (:meth:`Patient.audit_anomalies`)."""
        purpose = self._purposes()
        who = self._patient.address
        events: list[ReadEvent | AccessEvent] = list(self._patient.audit())
        if anomalies:
            events += self._patient.audit_anomalies()
        resources = [
            audit_event(audit_facts(e, who, purpose=purpose(e.policy_id)), version) for e in events
        ]
        return bundle(resources, bundle_type)

    def provenance(
        self,
        version: _Version = FhirVersion.R4,
        *,
        category: str | None = None,
        record: RecordId | bytes | str | None = None,
        bundle_type: _BundleType = "collection",
    ) -> dict[str, Any]:
        """Who wrote each of this patient's records (of ``category``, or the one ``record``:
        an id or a unique prefix), as a Bundle of Provenance, each with the author's
        signature from the verified index entry."""
        records = self._patient.records(category)
        if record is not None:
            wanted = bytes(self._patient.record_id(record))
            records = [r for r in records if bytes(r.record_id) == wanted]
        resources = [
            provenance(provenance_facts(r, recorded=self._block_time(r.block_number)), version)
            for r in records
        ]
        return bundle(resources, bundle_type)
