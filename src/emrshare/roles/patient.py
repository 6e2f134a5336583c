"""The patient: owns the keys, decides who writes and who reads each category."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emrshare._files import private_dir
from emrshare.chain import (
    GrantCreated,
    GrantStatus,
    ProfileRegistered,
)
from emrshare.crypto import (
    PatientKeys,
    load_patient_keystore,
    save_keystore,
    seal_writer_authorization,
    validate_category,
)
from emrshare.errors import ConfigurationError, ContractRevert
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._audit import audit_trail
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    MembershipCache,
    Progress,
    RecordInfo,
    checksum,
    id32,
)
from emrshare.roles._oplog import EpochState, Operation, OperationResult
from emrshare.roles._ops import (
    Operations,
    authorized_writers,
    expires_arg,
    grant_steps,
    member_keys,
    plan_revoke,
    resolve_proxies,
)
from emrshare.roles._own import OwnIndex
from emrshare.roles._requests import list_requests, request_closed, sealed_answer
from emrshare.roles._writes import RecordSource, RecordWriter, WriteTarget
from emrshare.roles.profiles import default_data_dir
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = ["Patient"]

Expiry = timedelta | datetime | int


class Patient:
    """A patient's view of the network.

    Example::

        patient = Patient(net, PatientKeys.generate(), state_dir=Path("alice"))
        patient.register()
        patient.authorize_writer(hospital_a, "lab")
        grant = patient.grant(hospital_b, "lab", expires=timedelta(days=30))
        patient.revoke(grant.policy_id)

    ``state_dir`` keeps the write journal, the category epochs and the log of interrupted
    operations (default ``~/.emrshare/state/<address>``); ``known_categories`` adds names
    to recognise on a machine that lost that state.
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        *,
        state_dir: Path | None = None,
        known_categories: Iterable[str] = (),
    ) -> None:
        self.network = network
        self.keys = keys
        self.address: Address = keys.address
        self.state_dir = Path(state_dir or default_data_dir() / "state" / keys.address)
        private_dir(self.state_dir)
        self._contracts = network.contracts_for(keys.ethereum_key)
        self._state = EpochState(self.state_dir / "patient.json")
        self._epochs = self._state.epochs
        for c in known_categories:
            self._epochs.setdefault(validate_category(c), 0)
        self._writer: RecordWriter | None = None
        self._members = MembershipCache(network.contracts.registry)
        self._own = OwnIndex(network, keys, self._members)
        self._ops = Operations(network, keys, self._contracts, self._state, self.state_dir)

    def __repr__(self) -> str:
        return f"Patient({self.address})"

    @classmethod
    def create(
        cls, network: Network, keystore: Path, password: str, **kwargs: Any
    ) -> tuple[Patient, str]:
        """A new patient identity: fresh keys saved to ``keystore`` (0600, argon2id).

        Returns the patient and the 24-word mnemonic that restores it; show it once.
        """
        keys = PatientKeys.generate()
        save_keystore(keystore, keys, password)
        return cls(network, keys, **kwargs), keys.to_mnemonic()

    @classmethod
    def restore(cls, network: Network, mnemonic: str, **kwargs: Any) -> Patient:
        """The patient whose keys the 24-word ``mnemonic`` holds."""
        return cls(network, PatientKeys.from_mnemonic(mnemonic), **kwargs)

    @classmethod
    def from_keystore(
        cls, network: Network, keystore: Path, password: str, **kwargs: Any
    ) -> Patient:
        """Open a patient keystore (``KeystoreError`` on a wrong password)."""
        return cls(network, load_patient_keystore(keystore, password), **kwargs)

    # -- state ---------------------------------------------------------------------------

    def epoch(self, category: str) -> int:
        """The current epoch of ``category`` (new records and grants use it)."""
        return self._state.get(category)

    def categories(self) -> list[str]:
        """Categories this patient has used (or was told about)."""
        return sorted(self._epochs)

    def _tags(self) -> dict[bytes, tuple[str, int]]:
        """Every (category, epoch) tag the patient can name, up to the current epochs."""
        return {
            bytes(self.keys.tag(c, e)): (c, e)
            for c, cur in self._epochs.items()
            for e in range(cur + 1)
        }

    # -- profile and writers ------------------------------------------------------------------

    def register(self) -> bool:
        """Publish the patient's verifying and box keys (once); True if it sent a transaction."""
        if self.is_registered():
            return False
        pub = self.keys.public_keys()
        self._contracts.profiles.register(pub.verifying_key_bytes, pub.box_key_bytes)
        return True

    def is_registered(self) -> bool:
        profiles = self.network.contracts.profiles
        return any(profiles.events(ProfileRegistered, patient=self.address))

    def authorize_writer(self, writer: str, category: str) -> None:
        """Let ``writer`` (a hospital) append records of ``category`` to this index."""
        pub = member_keys(self.network, checksum(writer), "provider")
        with self._ops.exclusive():  # a pending revocation first moves the epoch
            epoch = self._state.remember(category)
            sealed = seal_writer_authorization(self.keys, pub, category, epoch)
            tag = self.keys.tag(category, epoch)
            self._contracts.index.authorize_writer(tag, pub.address, sealed)

    def deauthorize_writer(self, writer: str, category: str) -> None:
        """Stop ``writer`` from appending records of ``category`` (every epoch)."""
        writer = checksum(writer)
        index = self.network.contracts.index
        with self._ops.exclusive():
            for e in range(self.epoch(category) + 1):
                tag = self.keys.tag(category, e)
                # The raw authorization: a suspended member's still stands (it would write
                # again once reinstated), so it is withdrawn too.
                if index.is_authorized(self.address, tag, writer):
                    self._contracts.index.revoke_writer(tag, writer)

    def writers(self, category: str) -> list[Address]:
        """Members currently allowed to write ``category`` at its current epoch (authorized
        and active Providers now)."""
        tag = self.keys.tag(category, self.epoch(category))
        index = self.network.contracts.index
        writers = authorized_writers(self.network, self.address, tag)
        return [w for w in writers if index.is_writer(self.address, tag, w)]

    # -- grants -------------------------------------------------------------------------

    def _expiry(self, expires: Expiry) -> int:
        if isinstance(expires, timedelta):
            return self.network.chain_time() + int(expires.total_seconds())
        if isinstance(expires, datetime):
            return int(expires.timestamp())
        return int(expires)

    def grant(
        self,
        grantee: str,
        category: str,
        *,
        expires: Expiry,
        proxies: list[str] | None = None,
        threshold: int | None = None,
        all_epochs: bool = True,
        progress: Progress | None = None,
    ) -> GrantInfo:
        """Grant ``grantee`` read access to ``category`` until ``expires``.

        ``expires`` is a duration from now (chain time), a datetime or unix seconds.
        Proxies default to every registered proxy, the threshold to the consortium's; a
        threshold below 1 or above the number of proxies is a :class:`ConfigurationError`.
        With ``all_epochs`` (default) earlier epochs of the category are granted too, so
        the grantee reads the whole history; the returned grant is the current epoch's.

        The grants are one logged, resumable operation (``progress(done, total)`` after
        each transaction); the same call after a crash finishes it instead of granting twice.
        """
        args = {
            "grantee": checksum(grantee),
            "category": validate_category(category),
            "expires": expires_arg(expires),
            "proxies": [checksum(p) for p in proxies] if proxies else None,
            "threshold": threshold,
            "all_epochs": all_epochs,
        }

        def plan() -> list[dict[str, Any]]:
            member_keys(self.network, checksum(grantee), "member")
            epoch = self._state.remember(category)
            chosen, m = resolve_proxies(self.network, proxies, threshold)
            epochs = range(epoch + 1) if all_epochs else [epoch]
            return grant_steps(grantee, category, epochs, self._expiry(expires), chosen, m)

        result = self._ops.run("grant", args, plan, progress)
        return self._grant_info(result)

    def _grant_info(self, result: OperationResult) -> GrantInfo:
        """The current epoch's grant of a finished grant or approve operation."""
        end = self.network.w3.eth.block_number
        pid = result.policy_ids[-1]
        found = list(
            self.network.contracts.grants.events(GrantCreated, policy_id=pid, to_block=end)
        )
        if not found:
            raise ConfigurationError(f"the grant was not made: {'; '.join(result.notes)}")
        ev = found[0]
        return self._info(ev)

    def _info(self, ev: GrantCreated, status: GrantStatus | None = None) -> GrantInfo:
        names = self._tags()
        # The chain no longer carries the epoch: the patient knows it from its own tags
        # (0 for a tag this machine cannot name).
        category, epoch = names.get(bytes(ev.tag), (None, 0))
        if status is None:
            status = self.network.contracts.grants.status(ev.policy_id)
        return GrantInfo(
            policy_id=PolicyId(bytes(ev.policy_id)),
            patient=checksum(ev.patient),
            grantee=checksum(ev.grantee),
            category=category,
            epoch=epoch,
            tag=CategoryTag(bytes(ev.tag)),
            expiry=ev.expiry,
            threshold=ev.threshold,
            proxies=tuple(checksum(p) for p in ev.proxies),
            status=status.name.lower(),
            block_number=ev.block_number,
        )

    def _grant_events(self) -> list[GrantCreated]:
        return list(self.network.contracts.grants.events(GrantCreated, patient=self.address))

    def grants(self, *, active_only: bool = False) -> list[GrantInfo]:
        """Every grant this patient made, oldest first, with its status on chain time."""
        infos = [self._info(ev) for ev in self._grant_events()]
        return [g for g in infos if g.active] if active_only else infos

    def revoke(
        self,
        policy: PolicyId | bytes | str,
        *,
        new_epoch: bool = True,
        progress: Progress | None = None,
    ) -> None:
        """Revoke one grant.

        With ``new_epoch`` (default) the category moves to a new epoch: new records are
        sealed under a fresh key, so the revoked grantee cannot read them even with
        colluding proxies; every remaining active grantee of the category and every
        authorized writer is re-issued a grant / authorization for the new epoch. These
        transactions are one logged, resumable operation (``progress(done, total)`` after
        each step); the same call after a crash finishes it.

        A grant that was already revoked raises :class:`GrantRevoked` and changes nothing.

        **Warning:** revocation stops future re-encryption by honest proxies. It cannot
        take back what the grantee already read.
        """
        pid = id32(policy)
        args = {"policy": pid.hex(), "new_epoch": new_epoch}

        def plan() -> list[dict[str, Any]]:
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
        """Finish every interrupted operation (grants, approvals, revocations), oldest
        first; a step already on chain is not sent again. Every patient write does this
        first (see :attr:`resumed`)."""
        return self._ops.resume(progress)

    # -- access requests -----------------------------------------------------------------

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]:
        """Access requests addressed to this patient, oldest first, opened.

        Requests and answers are sealed on chain (only this patient reads the category,
        purpose and reason; see :mod:`emrshare.crypto.requests`). A request whose box
        does not open (not sealed to this patient, or copied from another request) is
        listed with ``category``, ``purpose`` and ``reason`` ``None``: it can only be denied.
        """
        return list_requests(self.network, self.keys, pending_only=pending_only)

    def _request(self, request_id: int) -> AccessRequestInfo:
        for r in self.requests():
            if r.request_id == request_id:
                return r
        raise ConfigurationError(
            f"there is no access request #{request_id} for this patient; "
            "list them with `request list`"
        )

    def _pending_request(self, request_id: int) -> AccessRequestInfo:
        req = self._request(request_id)
        if req.status != "pending":
            raise request_closed(req)
        return req

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
        args = {
            "request": request_id,
            "expires": expires_arg(expires),
            "category": category,
            "threshold": threshold,
        }

        def plan() -> list[dict[str, Any]]:
            req = self._pending_request(request_id)
            name = category or req.category
            if name is None:
                raise ConfigurationError(
                    f"request #{request_id} cannot be opened by this patient (it names no "
                    "category it can read); pass the category name explicitly, or deny it"
                )
            member_keys(self.network, req.requester, "member")
            epoch = self._state.remember(name)
            chosen, m = resolve_proxies(self.network, None, threshold)
            expiry = self._expiry(expires)
            steps = grant_steps(req.requester, name, range(epoch + 1), expiry, chosen, m)
            # The answer names the grants, derived from the operation id when it runs.
            answer = {"do": "answer", "request": request_id, "requester": req.requester}
            return [*steps, {**answer, "decision": "approved"}]

        result = self._ops.run("approve", args, plan, progress)
        if any("another device" in n for n in result.notes):
            raise request_closed(self._request(request_id))
        return self._grant_info(result)

    def deny(self, request_id: int) -> None:
        """Deny an access request (one already approved or denied is a ConfigurationError)."""
        with self._ops.exclusive():
            req = self._pending_request(request_id)
            blob = sealed_answer(
                self.network, self.keys, req.request_id, req.requester, "denied", []
            )
            try:
                self._contracts.grants.answer_request(req.request_id, blob)
            except ContractRevert as exc:
                # Answered in between (another device of this patient): say so.
                if exc.name != "Grants_RequestClosed":
                    raise
                raise request_closed(self._request(req.request_id)) from exc

    # -- own records ----------------------------------------------------------------------

    def records(self, category: str | None = None) -> list[RecordInfo]:
        """This patient's records (optionally of one category), opened and verified."""
        return self._own.records(self._tags(), category)

    def read(self, record: RecordId | bytes | str) -> bytes:
        """The plaintext of one of the patient's own records (fully verified)."""
        return self._own.read(record, self._tags())

    def read_to(self, record: RecordId | bytes | str, path: Path) -> int:
        """Write one record to ``path`` (only once verified); returns its size."""
        return self._own.read_to(record, path, self._tags())

    # -- writing own records ---------------------------------------------------------------

    def _target(self, patient: str, category: str, epoch: int | None = None) -> WriteTarget:
        if checksum(patient) != self.address:
            raise ConfigurationError("a patient writes only to its own index")
        e = self._state.remember(category) if epoch is None else epoch
        return WriteTarget(
            self.address,
            category,
            e,
            self.keys.tag(category, e),
            self.keys.category_public_key(category, e),
        )

    @property
    def writer(self) -> RecordWriter:
        if self._writer is None:
            self._writer = RecordWriter(
                self.network,
                eth_key=self.keys.ethereum_key,
                box_key=self.keys.box_private_key,
                state_dir=self.state_dir,
                resolve=lambda p, c: self._target(p, c),
                target_for_epoch=lambda p, c, e: self._target(p, c, e),
            )
        return self._writer

    def add_record(
        self,
        category: str,
        content: RecordSource,
        *,
        media_type: str = "application/octet-stream",
        progress: Progress | None = None,
    ) -> RecordId:
        """Add a record to the patient's own index (e.g. a home measurement)."""
        with self._ops.exclusive():  # a pending revocation first moves the epoch
            return self.writer.add(
                self.address, category, content, media_type=media_type, progress=progress
            )

    def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """Finish or roll back interrupted writes of this patient."""
        return self.writer.recover(rollback=rollback)

    # -- audit -----------------------------------------------------------------------------

    def audit(self) -> list[AccessEvent]:
        """Who read which records, when: every access the proxies logged for this
        patient's grants that passes the reader's checks, oldest first.

        A proxy can log what it likes through the audit contract, within the grant's
        window; the contract checks the grantee's signature, but cannot check that the
        logged ``evaluated_time`` is the real time of block ``evaluated_at``. So an entry
        is shown only when its policy is this patient's, its requester is the policy's
        grantee, its ``evaluated_time`` equals that block's timestamp, and every capsule
        hash is one of this patient's entries under the policy's tag; repeats of one
        (proxy, requester, nonce) are dropped. The rest is in :meth:`audit_anomalies`.
        """
        return [e for e in self._audit() if not e.anomaly]

    def audit_anomalies(self) -> list[AccessEvent]:
        """Logged accesses :meth:`audit` does not show, each with ``anomaly`` saying
        which check failed (a proxy logging what did not happen, or a duplicate)."""
        return [e for e in self._audit() if e.anomaly]

    def _audit(self) -> list[AccessEvent]:
        self.network.settle()
        grants = {bytes(ev.policy_id): ev for ev in self._grant_events()}
        return audit_trail(self.network, self.address, grants, self._tags(), self._own.entries())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
