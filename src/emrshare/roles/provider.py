"""``Provider``: a hospital EHR integration that writes records for the patients who
authorized it and reads what it was granted; :class:`AsyncProvider` for event loops."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import umbral_pre

from emrshare.categories import normalize_category
from emrshare.chain import WriterAuthorized, WriterRevoked
from emrshare.crypto import MemberKeys, open_writer_authorization
from emrshare.errors import AccessDenied, EmrShareError
from emrshare.fhir import CategoryMapping, FhirVersion, OnInvalid
from emrshare.fhir.importer import ImportPlan, ImportReport, import_fhir, plan_import
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._sealing_pool import PoolSealer
from emrshare.roles._writer import OnStage, RecordGroup, RecordSource, RecordWriter, WriteTarget
from emrshare.roles.requester import AsyncRequester, Requester
from emrshare.types import RecordId

__all__ = ["AsyncProvider", "Provider"]


class Provider(Requester):
    """A hospital EHR integration: writes records for patients that authorized it, and
    reads what it was granted.

    Example::

        hospital = Provider(net, keys, state_dir=Path("/var/lib/ehr/emrshare"))
        rid = hospital.add_record(patient, "lab", Path("cbc.pdf"), media_type="application/pdf")
        ids = hospital.add_records(patient, "lab", [b"...", b"..."], media_type="text/plain")

    Writes are journaled in ``state_dir``: a crash, a chain outage or a store outage at
    any step is finished by the next call or by :meth:`recover`, with exactly one index
    entry per record.
    """

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        *,
        state_dir: Path,
        proxy_timeout: float = 10.0,
        retry_for: float = 5.0,
        emergency_key_file: Path | None = None,
    ) -> None:
        super().__init__(
            network,
            keys,
            state_dir=state_dir,
            proxy_timeout=proxy_timeout,
            retry_for=retry_for,
            emergency_key_file=emergency_key_file,
        )
        self._targets: dict[tuple[str, str, int], WriteTarget] = {}
        self._revoked: set[tuple[str, bytes]] = set()
        self._scanned: dict[str, int] = {}
        self._writer: RecordWriter | None = None
        self._opening = threading.Lock()
        self.prescriptions.write = lambda patient, category, data, media_type: self.add_record(
            patient, category, data, media_type=media_type
        )
        self.claims.write = self.drugs.write = self.prescriptions.write
        self.claims.tag_of = lambda patient, category: (
            self._current_targets(patient, [category])[0].tag
        )

    @property
    def writer(self) -> RecordWriter:
        """The journaled write path of this identity (opened on first use, by whichever
        thread writes first; writes from several threads take turns)."""
        with self._opening:
            if self._writer is None:
                self._writer = RecordWriter(
                    self.network,
                    eth_key=self.keys.ethereum_key,
                    box_key=self.keys.box_private_key,
                    state_dir=self.state_dir,
                    resolve=self._current_targets,
                    target_for_epoch=self._target_for_epoch,
                    sealer=PoolSealer(self.keys.ethereum_key),
                )
            return self._writer

    def _load_authorizations(self, patient: str) -> None:
        """Follow this writer's authorizations for ``patient`` from the chain (only the
        blocks not seen yet), so a write costs no full event scan."""
        index = self.network.contracts.index
        start = self._scanned.get(patient, index.start_block)
        end = self.network.chain.safe_block()
        if end < start:
            return
        found = index.writer_events(patient, self.address, start, end)
        self._take_authorizations(patient, found)
        self._scanned[patient] = end + 1

    def _take_authorizations(
        self, patient: str, found: Sequence[WriterAuthorized | WriterRevoked]
    ) -> None:
        verifying: umbral_pre.PublicKey | None = None
        for ev in found:
            if isinstance(ev, WriterRevoked):
                self._revoked.add((patient, bytes(ev.tag)))
                continue
            if verifying is None:
                profile = self.network.contracts.profiles.profile(patient)
                verifying = umbral_pre.PublicKey.from_compressed_bytes(bytes(profile.verifying_key))
            try:
                auth = open_writer_authorization(
                    bytes(ev.sealed_payload), self.keys, patient_verifying_key=verifying
                )
            except EmrShareError:
                continue
            if bytes(auth.tag) != bytes(ev.tag) or checksum(auth.patient) != patient:
                continue  # a payload copied from another authorization
            self._revoked.discard((patient, bytes(auth.tag)))
            self._targets[(patient, auth.category, auth.epoch)] = WriteTarget(
                checksum(patient), auth.category, auth.epoch, auth.tag, auth.category_public_key
            )

    def writable_categories(self, patient: str) -> dict[str, int]:
        """Categories ``patient`` currently lets this member write, with their epochs."""
        patient = checksum(patient)
        self._load_authorizations(patient)
        out: dict[str, int] = {}
        for (p, cat, epoch), target in self._targets.items():
            if (
                p == patient
                and epoch >= out.get(cat, -1)
                and (patient, bytes(target.tag)) not in self._revoked
            ):
                out[cat] = epoch
        return out

    def _current_targets(self, patient: str, categories: Sequence[str]) -> list[WriteTarget]:
        """The current write target of each category (one authorization scan for all)."""
        patient = checksum(patient)
        current = self.writable_categories(patient)
        out = []
        for name in categories:
            category = normalize_category(name, known=current)  # "LAB" -> "lab-results"
            if category not in current:
                if not current:  # no authorization at all: is it a patient?
                    self._require_patient(patient)
                raise AccessDenied(
                    f"patient {patient} has not authorized {self.address} to write "
                    f"{category!r} records; ask the patient to authorize this provider",
                    {"chain": "not_authorized"},
                )
            out.append(self._targets[(patient, category, current[category])])
        return out

    def _target_for_epoch(self, patient: str, category: str, epoch: int) -> WriteTarget:
        key = (checksum(patient), category, epoch)
        if key not in self._targets:
            self._load_authorizations(checksum(patient))
        if key not in self._targets:
            raise AccessDenied(
                f"no authorization to write {category!r} (epoch {epoch}) for {patient}",
                {"chain": "not_authorized"},
            )
        return self._targets[key]

    def add_record(
        self,
        patient: str,
        category: str,
        content: RecordSource,
        *,
        media_type: str = "application/octet-stream",
        progress: Progress | None = None,
        created_at: int | None = None,
        again: bool = False,
        on_stage: OnStage | None = None,
    ) -> RecordId:
        """Encrypt, store and index one record; returns its record id once on chain.

        ``content`` is bytes, a binary file object, an iterable of byte strings or a
        ``Path`` (streamed in constant memory; a path also lets a crash during encryption
        be resumed). ``progress(done, total)`` is called as content is read.

        Idempotent for bytes and files: the same content, patient and category again
        returns the record this provider already wrote (or finishes the interrupted write
        of it) instead of writing a copy, unless ``again=True``. ``on_stage(stage, id)``
        says which, then reports each step (``encrypt``, ``store``, ``append``, ``confirm``).
        """
        return self.writer.add(
            patient,
            category,
            content,
            media_type=media_type,
            progress=progress,
            created_at=created_at,
            again=again,
            on_stage=on_stage,
        )

    def add_records(
        self,
        patient: str,
        category: str,
        contents: Sequence[RecordSource],
        *,
        media_type: str = "application/octet-stream",
        batch_size: int = 50,
        progress: Callable[[int, int], None] | None = None,
        again: bool = False,
        identities: Sequence[str] | None = None,
        on_stage: OnStage | None = None,
    ) -> list[RecordId]:
        """Bulk add: many records of one category, appended in batches of ``batch_size``.

        Files (``Path`` contents) this provider already wrote for the patient and category,
        or began to, are reported (or finished), not written again, unless ``again=True``;
        in-memory contents are written every time unless ``identities`` (one per content,
        e.g. a FHIR ``Type/id/_history/version``) names them: an identity written before is
        reported, not written again. ``on_stage(stage, id)`` says which (``existing``,
        ``resumed``, ``journaled``) for each. ``progress(done, total)`` counts records on
        chain: the ones already there first, then after each confirmed append batch
        (``done`` never decreases; the last call is ``(total, total)``)."""
        group: RecordGroup = (category, media_type, contents, identities)
        (ids,) = self.writer.add_groups(
            patient,
            [group],
            batch_size=batch_size,
            again=again,
            on_stage=on_stage,
            progress=progress,
        )
        return ids

    def add_record_groups(
        self,
        patient: str,
        groups: Sequence[RecordGroup],
        *,
        batch_size: int = 50,
        on_stage: OnStage | None = None,
    ) -> list[list[RecordId]]:
        """Bulk add across categories in one journaled run: ``groups`` are (category,
        media type, contents, identities or ``None``), as :meth:`add_records` takes them.
        Encryption, storage and sealing of every group go together; each category's
        entries are appended in its own transactions. Returns each group's record ids."""
        return self.writer.add_groups(patient, groups, batch_size=batch_size, on_stage=on_stage)

    def import_fhir(
        self,
        patient: str,
        sources: Iterable[Path | str | Mapping[str, Any]] | ImportPlan,
        *,
        mapping: CategoryMapping | None = None,
        version: FhirVersion | str | None = None,
        per_encounter: bool = False,
        on_invalid: OnInvalid = "stop",
        subject: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Publish what the EHR exported (Bundles, Bulk Data NDJSON, single resources) as
        the patient's records: one per resource (or per encounter and category, with
        ``per_encounter``) and one per attachment, each in the category ``mapping``
        places it in (:func:`~emrshare.fhir.importer.plan_import`; a plan made before
        may be passed instead of ``sources``).

        Nothing is written unless every resource is valid (or ``on_invalid="skip"``) and
        the patient authorized this provider for every category needed. The same input
        again writes nothing; an interrupted import resumes where it stopped.
        ``progress(done, total)`` counts records.
        """
        plan = (
            sources
            if isinstance(sources, ImportPlan)
            else plan_import(
                sources,
                version=version,
                mapping=mapping,
                per_encounter=per_encounter,
                on_invalid=on_invalid,
                subject=subject,
            )
        )
        return import_fhir(self, checksum(patient), plan, progress=progress)

    def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """Finish (or roll back) interrupted writes; never duplicates an index entry."""
        return self.writer.recover(rollback=rollback)

    def close(self) -> None:
        """Close the write journal (a later write opens it again)."""
        with self._opening:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


class AsyncProvider(AsyncRequester):
    """A :class:`Provider` for code that runs an event loop: reads as
    :class:`AsyncRequester`, writes on this facade's worker thread."""

    _facade = Provider

    @property
    def provider(self) -> Provider:
        """The blocking facade over the same state (:attr:`sync`, typed)."""
        return cast(Provider, self.sync)

    async def add_record(
        self,
        patient: str,
        category: str,
        content: RecordSource,
        *,
        media_type: str = "application/octet-stream",
        created_at: int | None = None,
    ) -> RecordId:
        """As :meth:`Provider.add_record` (without ``progress``: it would be called on the
        facade's worker thread, not the caller's loop)."""
        return await self._run(
            lambda: self.provider.add_record(
                patient, category, content, media_type=media_type, created_at=created_at
            )
        )

    async def add_records(
        self,
        patient: str,
        category: str,
        contents: Sequence[RecordSource],
        *,
        media_type: str = "application/octet-stream",
        batch_size: int = 50,
    ) -> list[RecordId]:
        """As :meth:`Provider.add_records`."""
        return await self._run(
            lambda: self.provider.add_records(
                patient, category, contents, media_type=media_type, batch_size=batch_size
            )
        )

    async def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """As :meth:`Provider.recover`."""
        return await self._run(lambda: self.provider.recover(rollback=rollback))

    async def writable_categories(self, patient: str) -> dict[str, int]:
        """As :meth:`Provider.writable_categories`."""
        return await self._run(lambda: self.provider.writable_categories(patient))
