"""The patient: owns the keys, decides who writes and who reads each category."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Unpack

from emrshare.categories import normalize_category
from emrshare.chain import GrantCreated
from emrshare.crypto import (
    PatientKeys,
    load_patient_keystore,
    save_keystore,
)
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._audit import AuditTrail, group_reads
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    Progress,
    ReadEvent,
    RecordInfo,
    id32,
)
from emrshare.roles._emergency import PatientEmergency
from emrshare.roles._fhir_export import PatientFhir
from emrshare.roles._grants import (
    Expiry,
    approve_args,
    grant_args,
    keys_tags,
    made_grant,
    plan_approve,
    plan_grant,
)
from emrshare.roles._guardians import PatientGuardians, grant_infos
from emrshare.roles._oplog import Operation, OperationResult, Step
from emrshare.roles._ops import Operations, plan_revoke
from emrshare.roles._own import OwnIndex, OwnWrites
from emrshare.roles._patient_claims import PatientClaims
from emrshare.roles._patient_drugs import PatientDrugs
from emrshare.roles._patient_rotation import patient_rotate
from emrshare.roles._reads import MembershipCache
from emrshare.roles._relayed import Relay, patient_contracts
from emrshare.roles._requests import (
    deny_request,
    find_request,
    list_requests,
    request_closed,
)
from emrshare.roles._rotation import patient_refresh_rotated
from emrshare.roles._statelog import StateLog
from emrshare.roles._study_patient import PatientStudies
from emrshare.roles._writer import AddOptions, RecordSource
from emrshare.types import Address, PolicyId, RecordId

__all__ = ["Patient"]


class Patient:
    """A patient's view of the network. Example::

        patient = Patient(net, PatientKeys.generate(), state_dir=Path("alice"))
        patient.register()
        patient.authorize_writer(hospital_a, "lab")
        grant = patient.grant(hospital_b, "lab", expires=timedelta(days=30))
        patient.revoke(grant.policy_id)

    ``state_dir`` keeps the write journal, the category epochs and the log of interrupted
    operations; the epochs are also sealed to the chain's state log (:attr:`state`), so
    the mnemonic alone restores a new machine (:func:`restore_patient`). ``relay`` (a
    relay's URL, or a ``Submitter``) relays every write: no ETH needed."""

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        *,
        state_dir: Path,
        known_categories: Iterable[str] = (),
        relay: Relay | None = None,
    ) -> None:
        self.network = network
        self.keys = keys
        self.address: Address = keys.address
        self.state_dir = Path(state_dir)
        self._contracts = signed = patient_contracts(network, keys, relay)
        self.state = StateLog(network, keys, self._contracts, self.state_dir, known_categories)
        self._state = self.state.local  # restored from the chain's state log on first use
        self._members = MembershipCache(network.contracts.registry)
        self._own = OwnIndex(network, keys, self._members)
        self._ops = Operations(network, keys, self._contracts, self._state, self.state_dir)
        self._writes = OwnWrites(network, keys, self._contracts, self._state, self.state_dir)
        self.emergency = PatientEmergency(network, keys, signed, lambda: self._state.epochs)
        self.guardians = PatientGuardians(network, keys, signed, lambda: self._state.epochs)
        self.studies = PatientStudies(network, keys, self, self.state_dir)
        self.claims = PatientClaims(network, self.address, signed, self)
        self.drugs = PatientDrugs(network, keys, self.state_dir)

    def __repr__(self) -> str:
        return f"Patient({self.address})"

    @classmethod
    def create(
        cls, network: Network, keystore: Path, password: str, **kw: Any
    ) -> tuple[Patient, str]:
        """A new patient identity: fresh keys saved to ``keystore`` (0600, argon2id).
        Returns the patient and the 24-word mnemonic that restores it; show it once."""
        keys = PatientKeys.generate()
        save_keystore(keystore, keys, password)
        return cls(network, keys, **kw), keys.to_mnemonic()

    @classmethod
    def restore(cls, network: Network, mnemonic: str, **kwargs: Any) -> Patient:
        """The patient the 24 words hold (state from chain: see :func:`restore_patient`)."""
        return cls(network, PatientKeys.from_mnemonic(mnemonic), **kwargs)

    @classmethod
    def from_keystore(
        cls, network: Network, keystore: Path, password: str, *, state_dir: Path, **options: Any
    ) -> Patient:
        """Open a patient keystore (``KeystoreError`` on a wrong password)."""
        keys = load_patient_keystore(keystore, password)
        return cls(network, keys, state_dir=state_dir, **options)

    def epoch(self, category: str) -> int:
        """The current epoch of ``category`` (new records and grants use it)."""
        return self._state.get(self._category(category, True))

    def _category(self, name: str, new: bool = False) -> str:
        return normalize_category(name, known=self._state.epochs, new_category=new)

    def categories(self) -> list[str]:
        """Categories this patient has used (or was told about)."""
        return sorted(self._state.epochs)

    def _tags(self) -> dict[bytes, tuple[str, int]]:
        """Every (category, epoch) tag the patient can name, up to the current epochs."""
        return keys_tags(self.keys, self._state.epochs)

    # -- profile and writers ----------------------------------------------------------------

    def register(self) -> bool:
        """Publish the patient's verifying and box keys (once); True if it sent a transaction."""
        return self._writes.register()

    def is_registered(self) -> bool:
        """Whether this patient's profile (its public keys) is on chain."""
        return self._writes.is_registered()

    def authorize_writer(self, writer: str, category: str, *, new_category: bool = False) -> None:
        """Let ``writer`` (a hospital) append ``category`` records (new names: ``new_category``)."""
        with self._ops.exclusive():  # a pending revocation first moves the epoch
            self._writes.authorize(writer, self._category(category, new_category))

    def deauthorize_writer(self, writer: str, category: str) -> None:
        """Stop ``writer`` from appending records of ``category`` (every epoch)."""
        with self._ops.exclusive():
            self._writes.deauthorize(writer, self._category(category))

    def writers(self, category: str) -> list[Address]:
        """Active Providers now authorized to write ``category`` at its current epoch."""
        return self._writes.writers(self._category(category))

    # -- grants -------------------------------------------------------------------------

    def grant(
        self,
        grantee: str,
        category: str,
        *,
        expires: Expiry,
        proxies: list[str] | None = None,
        threshold: int | None = None,
        all_epochs: bool = True,
        new_category: bool = False,
        records: Sequence[RecordId | bytes | str] | None = None,
        progress: Progress | None = None,
    ) -> GrantInfo:
        """Grant ``grantee`` read access to ``category`` until ``expires``; with ``records``
        (at most 256 of that category), to those only: proxies serve no other record.

        ``category`` is normalized (a new name needs ``new_category``). ``expires``: a duration
        from now (chain time), a datetime or unix seconds, a minute or more after chain time.
        Proxies default to every registered one, the threshold to the consortium's. With
        ``all_epochs`` (default) earlier epochs are granted too; it returns the current
        epoch's. One logged, resumable operation (``progress(done, total)`` after each
        transaction): the same call after a crash finishes it, not granting twice."""
        name, tags = self._category(category, new_category), self._tags()
        scope = None if records is None else [bytes(self.record_id(r)) for r in records]
        args = grant_args(grantee, name, expires, proxies, threshold, all_epochs, scope)
        plan = functools.partial(
            plan_grant, self.network, self._state, args, expires, self.address, tags
        )
        result = self._ops.run("grant", args, plan, progress)
        return made_grant(self.network, result, self._tags())

    def _grant_events(self) -> list[GrantCreated]:
        return list(self.network.contracts.grants.events(GrantCreated, patient=self.address))

    def grants(self, *, active_only: bool = False) -> list[GrantInfo]:
        """Every grant this patient made, oldest first, with its status on chain time
        (``by``: the guardian that made it in the patient's name, if one did)."""
        infos = grant_infos(self.network, self.address, self._grant_events(), self._tags())
        return [g for g in infos if g.active] if active_only else infos

    def revoke(
        self,
        policy: PolicyId | bytes | str,
        *,
        new_epoch: bool = True,
        progress: Progress | None = None,
    ) -> None:
        """Revoke one grant (``policy``: its id, or a unique prefix of 8+ hex digits).

        With ``new_epoch`` (default) the category moves to a new epoch: new records are
        sealed under a fresh key, so the revoked grantee cannot read them even with
        colluding proxies; every remaining active grantee of the category and every
        authorized writer is re-issued a grant / authorization for the new epoch. These
        transactions are one logged, resumable operation (``progress(done, total)`` after
        each step); the same call after a crash finishes it. A grant already revoked raises
        :class:`GrantRevoked` and changes nothing.

        **Warning:** revocation stops future re-encryption by honest proxies. It cannot
        take back what the grantee already read.
        """
        pid = id32(policy, lambda: [bytes(g.policy_id) for g in self._grant_events()])
        args = {"policy": pid.hex(), "new_epoch": new_epoch}

        def plan() -> list[Step]:
            events = {bytes(ev.policy_id): ev for ev in self._grant_events()}
            return plan_revoke(self.network, self.keys, events, self._tags(), pid, new_epoch)

        self._ops.run("revoke", args, plan, progress)

    # -- logged operations ----------------------------------------------------------------

    def pending_operations(self) -> list[Operation]:
        """Operations a crash or an error interrupted (the next write finishes them)."""
        return self._ops.pending()

    @property
    def resumed(self) -> list[OperationResult]:
        """The interrupted operations the latest write (or :meth:`resume`) finished first."""
        return self._ops.resumed

    def resume(self, *, progress: Progress | None = None) -> list[OperationResult]:
        """Finish every interrupted operation (grants, approvals, revocations), oldest first,
        sending no step twice; every patient write does this first (:attr:`resumed`)."""
        return self._ops.resume(progress)

    refresh_rotated, rotate = patient_refresh_rotated, patient_rotate  # roles/_*rotation.py
    fhir = functools.cached_property(PatientFhir)  # grants, audit, authorship as FHIR
    _trail = functools.cached_property(AuditTrail)

    # -- access requests -----------------------------------------------------------------

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]:
        """Access requests addressed to this patient, oldest first, opened (they are
        sealed on chain: :mod:`emrshare.crypto.requests`). One whose box does not open (not
        sealed to this patient, or copied from another request) is listed with
        ``category``, ``purpose`` and ``reason`` ``None``: it can only be denied."""
        return list_requests(self.network, self.keys, pending_only=pending_only)

    def approve(
        self,
        request_id: int,
        *,
        expires: Expiry,
        category: str | None = None,
        threshold: int | None = None,
        progress: Progress | None = None,
    ) -> GrantInfo:
        """Approve an access request: grant the category (every epoch, so the requester
        sees the whole history), then send the sealed answer naming the grants.

        The grants and the answer are separate transactions, and nothing on chain links
        them (the answer is sealed); they are one logged, resumable operation. A request
        that was already approved or denied is a :class:`ConfigurationError`; one answered
        by another device of this patient between the grants and the answer too (the
        grants stay: revoke them if unwanted). Returns the current epoch's grant.
        """
        args = approve_args(self._state.epochs, request_id, expires, category, threshold)
        plan = functools.partial(plan_approve, self.network, self.keys, self._state, args, expires)
        result = self._ops.run("approve", args, plan, progress)
        if any("another device" in n for n in result.notes):
            raise request_closed(find_request(self.network, self.keys, request_id))
        return made_grant(self.network, result, self._tags())

    def deny(self, request_id: int) -> None:
        """Deny an access request (one already answered: a :class:`ConfigurationError`)."""
        with self._ops.exclusive():
            deny_request(self.network, self.keys, self._contracts, request_id)

    # -- own records: read and write ------------------------------------------------------

    def records(self, category: str | None = None) -> list[RecordInfo]:
        """This patient's records (optionally of one category), opened and verified."""
        return self._own.records(self._tags(), category and self._category(category))

    def verify(self) -> int:
        """Check the index is the whole hash chain at the newest confirmed block: its number."""
        return self._own.verify()

    def read(self, record: RecordId | bytes | str) -> bytes:
        """One own record's plaintext, fully verified (``record``: its id or a prefix)."""
        return self._own.read(record, self._tags())

    def read_to(self, record: RecordId | bytes | str, path: Path) -> int:
        """Write one record to ``path`` (only once verified); returns its size."""
        return self._own.read_to(record, path, self._tags())

    def record_id(self, record: RecordId | bytes | str) -> RecordId:
        """The full id that ``record`` (an id, or a unique prefix of 8+ hex digits) names."""
        return RecordId(bytes(self._own.find(record, self._tags())[0].record_id))

    def add_record(
        self,
        category: str,
        content: RecordSource,
        *,
        new_category: bool = False,
        **options: Unpack[AddOptions],
    ) -> RecordId:
        """Add a record to the patient's own index (e.g. a home measurement); ``options``
        and the same-content rule as :meth:`Provider.add_record`. A category outside the
        vocabulary and not yet used needs ``new_category``."""
        name = self._category(category, new_category)
        with self._ops.exclusive():  # a pending revocation first moves the epoch
            return self._writes.writer.add(self.address, name, content, **options)

    def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """Finish or roll back interrupted writes of this patient."""
        return self._writes.writer.recover(rollback=rollback)

    # -- audit (the logged accesses followed by self._trail, an AuditTrail) ------------------
    def audit(self) -> list[ReadEvent]:
        """Who read which records, when: one :class:`ReadEvent` per served read, oldest
        first (the entries of :meth:`audit_by_proxy`, grouped)."""
        grants = {bytes(g.policy_id): g for g in self._grant_events()}
        return group_reads(self._audit(grants), grants)

    def audit_by_proxy(self) -> list[AccessEvent]:
        """Every access a proxy logged for this patient's grants that passes the reader's
        checks (see :mod:`emrshare.roles._audit`), one per serving proxy, oldest first."""
        return [e for e in self._audit() if not e.anomaly]

    def audit_anomalies(self) -> list[AccessEvent]:
        """Logged accesses that fail a check (a proxy logging what did not happen, a
        duplicate): :meth:`audit` leaves them out; ``anomaly`` says which check failed."""
        return [e for e in self._audit() if e.anomaly]

    def _audit(self, grants: dict[bytes, GrantCreated] | None = None) -> list[AccessEvent]:
        grants = grants or {bytes(g.policy_id): g for g in self._grant_events()}
        return self._trail.accesses(grants, self._tags(), self._own.entries())

    def close(self) -> None:
        """Close the write journal."""
        self._writes.close()
