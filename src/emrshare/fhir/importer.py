"""What an EHR exports, as records: :func:`plan_import` reads, validates and places every
resource and lays out the records; :func:`import_fhir` writes a plan to any
:class:`RecordSink` (a :class:`~emrshare.roles.Provider` is one) after checking the sink
may write every category the plan needs, so nothing is half-written.

Records (see docs/fhir.md, "Importing"):

- one per resource (media type ``application/fhir+json; fhirVersion=…``), its JSON in
  canonical form (:func:`~emrshare.fhir.canonical_json`), linked to its encounter by the
  resource's own ``encounter`` reference; or, with ``per_encounter``, one collection
  Bundle per (encounter, category);
- one per attachment of a ``DocumentReference``, ``Media`` or ``Binary``: inline
  ``data`` is taken out of the resource, and a local file its ``url`` names (beside the
  input, never outside its folder) is streamed from disk, never loaded. The resource
  keeps an extension (:data:`ATTACHMENT_SHA256`; ``meta.tag`` on a Binary, which has no
  extensions) naming the attachment record by its SHA-256, which ``read_fhir`` uses to
  put the data back.

Each record is named by an identity (``Type/id/_history/version`` and so on) that the
sink's journal remembers: importing the same input again writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from emrshare._media import validate_media_type
from emrshare.errors import AccessDenied, InvalidFhir, InvalidInput, InvalidMediaType
from emrshare.fhir._attachments import (
    ATTACHMENT_FILE_SHA256,
    ATTACHMENT_SHA256,
    BINARY_SHA256,
    AttachmentProblem,
    restore_attachments,
    take_attachments,
)
from emrshare.fhir._parse import OnInvalid, read_resources
from emrshare.fhir._resource import FhirResource, FhirVersion, canonical_json
from emrshare.fhir.export import bundle
from emrshare.fhir.mapping import CategoryMapping
from emrshare.types import FhirProblem

__all__ = [
    "ATTACHMENT_FILE_SHA256",
    "ATTACHMENT_SHA256",
    "BINARY_SHA256",
    "ImportPlan",
    "ImportReport",
    "ImportedRecord",
    "PlacedResource",
    "PlannedRecord",
    "RecordSink",
    "import_fhir",
    "plan_import",
    "record_resources",
    "restore_attachments",
]

#: Records one journaled run writes (the progress callback advances after each).
CHUNK = 1000
#: Index entries per append transaction.
BATCH = 100

RecordKind = Literal["resource", "attachment", "encounter"]


@dataclass(frozen=True, slots=True)
class PlannedRecord:
    """One record an import writes: its category, identity, media type and content
    (bytes, or a ``Path`` streamed from disk), and the resources it holds."""

    category: str
    identity: str
    media_type: str
    content: bytes | Path = field(repr=False)
    resources: tuple[str, ...]
    kind: RecordKind = "resource"

    @property
    def size(self) -> int:
        return self.content.stat().st_size if isinstance(self.content, Path) else len(self.content)


@dataclass(frozen=True, slots=True)
class PlacedResource:
    """Where one resource went (``category`` ``None``: skipped) and the rule that said so."""

    reference: str
    resource_type: str
    category: str | None
    rule: str


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What :func:`import_fhir` would write: the records, where every resource was
    placed (``--explain``), the refused resources and the version read."""

    version: FhirVersion
    records: list[PlannedRecord]
    placements: list[PlacedResource]
    problems: list[FhirProblem]

    @property
    def categories(self) -> list[str]:
        """The categories the records go to (the sink must be allowed to write each)."""
        return sorted({r.category for r in self.records})

    @property
    def skipped(self) -> list[PlacedResource]:
        return [p for p in self.placements if p.category is None]


@dataclass(frozen=True, slots=True)
class ImportedRecord:
    """One record of an import: written now (``existing`` false) or found written before."""

    record_id: bytes
    category: str
    identity: str
    kind: RecordKind
    resources: tuple[str, ...]
    existing: bool


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_fhir` did: every record of the plan, new or already there."""

    plan: ImportPlan
    imported: list[ImportedRecord]

    @property
    def written(self) -> list[ImportedRecord]:
        return [r for r in self.imported if not r.existing]

    @property
    def existing(self) -> list[ImportedRecord]:
        return [r for r in self.imported if r.existing]

    @property
    def resources(self) -> int:
        """How many resources the imported records hold."""
        return sum(len(r.resources) for r in self.imported if r.kind != "attachment")


class RecordSink(Protocol):
    """Where an import writes: :class:`~emrshare.roles.Provider` is one."""

    def writable_categories(self, patient: str) -> Mapping[str, int]: ...

    def add_record_groups(
        self,
        patient: str,
        groups: Sequence[tuple[str, str, Sequence[bytes | Path], Sequence[str] | None]],
        *,
        batch_size: int = ...,
        on_stage: Callable[[str, bytes], None] | None = ...,
    ) -> Sequence[Sequence[bytes]]:
        """Write each group (category, media type, contents, identities); the record
        ids of each. ``on_stage("existing", id)`` names a record written before."""
        ...


# -- planning --------------------------------------------------------------------------------


def plan_import(
    sources: Iterable[Path | str | Mapping[str, Any]],
    *,
    version: FhirVersion | str | None = None,
    mapping: CategoryMapping | None = None,
    per_encounter: bool = False,
    on_invalid: OnInvalid = "stop",
    subject: str | None = None,
) -> ImportPlan:
    """Read, validate and place every resource of ``sources`` (as
    :func:`~emrshare.fhir.read_resources` takes them) and lay out its records.

    The input must be about one patient: resources of several (a group's Bulk export) are
    refused unless ``subject`` (``Patient/123``) picks one, and the others are left out.
    A resource no rule places, an attachment file that is missing or outside the input's
    folder, is a problem like an invalid one: ``on_invalid="stop"`` raises
    :class:`InvalidFhir` naming every one, ``"skip"`` leaves them out and reports them.
    """
    parsed = read_resources(sources, version=version, on_invalid=on_invalid)
    mapping = mapping or CategoryMapping.default()
    problems = list(parsed.problems)
    resources, about_no_one = _of_subject(parsed.resources, subject)
    placements: list[PlacedResource] = []
    placed: list[tuple[FhirResource, str]] = []
    for res in resources:
        where = mapping.place(res)
        if where.refused:
            problems.append(_problem(res, "", f"{where.rule}; add a rule or a fallback"))
            continue
        if where.category is not None and res.identity in about_no_one:
            problems.append(
                _problem(
                    res,
                    "",
                    f"the input holds several patients' resources and this one names no "
                    f"patient, so which patient it is about is unknown: it is not taken as "
                    f"{subject}'s; import it with that patient's own export",
                )
            )
            continue
        placements.append(
            PlacedResource(res.reference, res.resource_type, where.category, where.rule)
        )
        if where.category is not None:
            placed.append((res, where.category))
    records: list[PlannedRecord] = []
    bodies: list[tuple[FhirResource, str, dict[str, Any]]] = []
    for res, category in placed:
        try:
            body, attachments = take_attachments(res)
        except AttachmentProblem as exc:
            problems.append(_problem(res, exc.path, exc.reason))
            continue
        records.extend(
            PlannedRecord(
                category,
                f"{res.identity}/attachment/{a.index}",
                a.media_type,
                a.content,
                (res.reference,),
                "attachment",
            )
            for a in attachments
        )
        bodies.append((res, category, body))
    if problems and on_invalid == "stop":
        raise InvalidFhir(problems)
    media_type = parsed.version.media_type
    records.extend(
        _encounter_records(bodies, media_type)
        if per_encounter
        else _resource_records(bodies, media_type)
    )
    return ImportPlan(parsed.version, records, placements, problems)


def _problem(res: FhirResource, path: str, reason: str) -> FhirProblem:
    return FhirProblem(res.source, res.location, res.reference, path, reason)


def _patient_of(res: FhirResource, entries: Mapping[str, str]) -> str | None:
    """``Patient/123`` for the resource's subject, from a relative or absolute reference
    (``https://ehr.example/fhir/Patient/123/_history/2``) or a ``urn:uuid:`` one naming
    the ``fullUrl`` of an entry in ``entries`` (a transaction's: ``fullUrl`` → its
    ``Type/id``); ``None`` without one, or for a ``urn:`` no entry of the input has."""
    ref = res.subject
    if ref is not None and ref.startswith("urn:"):
        ref = entries.get(ref)
    if ref is None:
        return None
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ref


def _of_subject(
    resources: list[FhirResource], subject: str | None
) -> tuple[list[FhirResource], set[str]]:
    """The resources about ``subject`` (all, if ``None`` and the input names one patient)
    and the identities of those among them about no patient the input names: in a
    several-patient input picked with ``subject`` they may be anyone's (a Binary)."""
    entries = {r.full_url: r.reference for r in resources if r.full_url.startswith("urn:")}
    patients = [_patient_of(r, entries) for r in resources]
    subjects = sorted({p for p in patients if p is not None})
    if subject is not None:
        if subject not in subjects:
            raise InvalidInput(
                f"no resource of the input is about {subject}; the input's patients are "
                f"{', '.join(subjects) or 'none'}"
            )
        taken = [(r, p) for r, p in zip(resources, patients, strict=True) if p in (None, subject)]
        unknown = {r.identity for r, p in taken if p is None} if len(subjects) > 1 else set()
        return [r for r, _ in taken], unknown
    if len(subjects) > 1:
        shown = ", ".join(subjects[:5]) + (" …" if len(subjects) > 5 else "")
        raise InvalidInput(
            f"the input holds the resources of {len(subjects)} patients ({shown}); import "
            "one patient at a time: name the FHIR patient to take (subject='Patient/…')"
        )
    return resources, set()


def _resource_records(
    bodies: Sequence[tuple[FhirResource, str, dict[str, Any]]], media_type: str
) -> list[PlannedRecord]:
    return [
        PlannedRecord(category, res.identity, media_type, canonical_json(body), (res.reference,))
        for res, category, body in bodies
    ]


def _encounter_records(
    bodies: Sequence[tuple[FhirResource, str, dict[str, Any]]], media_type: str
) -> list[PlannedRecord]:
    """One collection Bundle per (encounter, category); resources of no encounter alone."""
    groups: dict[tuple[str, str], list[tuple[FhirResource, dict[str, Any]]]] = {}
    alone: list[tuple[FhirResource, str, dict[str, Any]]] = []
    for res, category, body in bodies:
        if res.encounter is None:
            alone.append((res, category, body))
        else:
            groups.setdefault((res.encounter, category), []).append((res, body))
    out = _resource_records(alone, media_type)
    for (encounter, category), members in groups.items():
        members.sort(key=lambda m: m[0].reference)
        names = "\n".join(m[0].identity for m in members).encode()
        body = bundle([b for _, b in members])
        identity = f"{encounter}/_bundle/{category}/#{hashlib.sha256(names).hexdigest()}"
        refs = tuple(m[0].reference for m in members)
        out.append(
            PlannedRecord(category, identity, media_type, canonical_json(body), refs, "encounter")
        )
    return out


def _check_records(records: Sequence[PlannedRecord]) -> None:
    """Refuse, before the first write, a record that would fail part-way through the
    import: a media type no index entry carries (a plan made by hand), or an attachment
    file gone, or no longer a file, since the plan was made."""
    for rec in records:
        try:
            validate_media_type(rec.media_type)
        except InvalidMediaType as exc:
            raise InvalidInput(f"the record {rec.identity} of the plan: {exc}") from exc
        if isinstance(rec.content, Path) and not rec.content.is_file():
            raise InvalidInput(
                f"the attachment file {rec.content} of {', '.join(rec.resources)} is gone, "
                "or no longer a file, since the import was planned; nothing was written: "
                "plan the import again"
            )


# -- reading back -------------------------------------------------------------------------------


def record_resources(obj: Any) -> list[dict[str, Any]]:
    """The resources one record holds: itself, or the entries of the collection Bundle
    an encounter record is."""
    if not isinstance(obj, dict):
        return []
    if obj.get("resourceType") == "Bundle" and obj.get("type") == "collection":
        return [
            e["resource"]
            for e in obj.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    return [obj]


# -- writing -----------------------------------------------------------------------------------


def import_fhir(
    sink: RecordSink,
    patient: str,
    plan: ImportPlan,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Write ``plan``'s records for ``patient`` to ``sink``; records it wrote before (by
    identity, through its journal) are reported, not written again.

    Refused with :class:`AccessDenied` before anything is written if the patient has not
    let the sink write a category the plan needs. ``progress(done, total)`` counts
    records. A crash part-way is resumed by the sink's journal: importing the same input
    again writes each record exactly once.
    """
    allowed = set(sink.writable_categories(patient))
    missing = [c for c in plan.categories if c not in allowed]
    if missing:
        raise AccessDenied(
            f"patient {patient} has not authorized this provider to write "
            f"{', '.join(missing)} (the import needs {', '.join(plan.categories)}); ask the "
            "patient to authorize it for each, or map those resources elsewhere (a mapping)",
            {"chain": "not_authorized"},
        )
    _check_records(plan.records)
    ordered = sorted(plan.records, key=lambda r: (r.category, r.media_type))
    total = len(ordered)
    imported: list[ImportedRecord] = []
    if progress is not None:
        progress(0, total)
    for start in range(0, total, CHUNK):
        chunk = ordered[start : start + CHUNK]
        groups: dict[tuple[str, str], list[PlannedRecord]] = {}
        for rec in chunk:
            groups.setdefault((rec.category, rec.media_type), []).append(rec)
        existing: set[bytes] = set()

        def seen(stage: str, record_id: bytes, existing: set[bytes] = existing) -> None:
            if stage == "existing":
                existing.add(bytes(record_id))

        ids = sink.add_record_groups(
            patient,
            [
                (category, media_type, [r.content for r in recs], [r.identity for r in recs])
                for (category, media_type), recs in groups.items()
            ],
            batch_size=BATCH,
            on_stage=seen,
        )
        for recs, group_ids in zip(groups.values(), ids, strict=True):
            for rec, rid in zip(recs, group_ids, strict=True):
                imported.append(
                    ImportedRecord(bytes(rid), rec.category, rec.identity, rec.kind,
                                   rec.resources, bytes(rid) in existing)
                )  # fmt: skip
        if progress is not None:
            progress(start + len(chunk), total)
    return ImportReport(plan, imported)
