"""The patient: owns the keys, decides who writes and who reads each category."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.public import PublicKey

from emrshare.chain import (
    AccessLogged,
    AccessRequestAnswered,
    AccessRequested,
    EntryAppended,
    GrantCreated,
    GrantParams,
    GrantStatus,
    Member,
    ProfileRegistered,
    RequestStatus,
    Role,
    policy_id,
)
from emrshare.crypto import (
    IndexEntry,
    MemberPublicKeys,
    PatientKeys,
    SealedEntry,
    load_patient_keystore,
    make_grant,
    open_entry,
    save_keystore,
    seal_writer_authorization,
    validate_category,
)
from emrshare.crypto.requests import (
    AccessAnswer,
    AccessRequestBody,
    open_answer,
    open_request,
    policy_ids_for_answer,
    seal_answer,
)
from emrshare.errors import ConfigurationError, ContractRevert, EmrShareError, GrantRevoked
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    MembershipCache,
    Progress,
    RecordInfo,
    check_entry,
    check_output_path,
    checksum,
    id32,
    read_record,
    read_record_to,
    verified_entries,
)
from emrshare.roles._writes import RecordSource, RecordWriter, WriteTarget
from emrshare.roles.profiles import default_data_dir
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = ["Patient"]

Expiry = timedelta | datetime | int


def member_public_keys(member: Member) -> MemberPublicKeys:
    """A registered member's public keys, as the crypto core takes them."""
    return MemberPublicKeys(
        checksum(member.account), bytes(member.umbral_key), bytes(member.box_key)
    )


class Patient:
    """A patient's view of the network.

    Example::

        patient = Patient(net, PatientKeys.generate(), state_dir=Path("alice"))
        patient.register()
        patient.authorize_writer(hospital_a, "lab")
        grant = patient.grant(hospital_b, "lab", expires=timedelta(days=30))
        patient.revoke(grant.policy_id)

    ``state_dir`` keeps the write journal and the category epochs (default
    ``~/.emrshare/state/<address>``); ``known_categories`` adds names to recognise on a
    machine that lost that state.
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
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._contracts = network.contracts_for(keys.ethereum_key)
        self._state_path = self.state_dir / "patient.json"
        self._epochs: dict[str, int] = self._load_state()
        for c in known_categories:
            self._epochs.setdefault(validate_category(c), 0)
        self._writer: RecordWriter | None = None
        self._members = MembershipCache(network.contracts.registry)
        self._verified: tuple[bytes, int, int] | None = None
        self._chain: list[EntryAppended] = []

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

    def _load_state(self) -> dict[str, int]:
        try:
            data = json.loads(self._state_path.read_text())
            return {str(k): int(v) for k, v in data.get("epochs", {}).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"patient state {self._state_path} is unreadable: {exc}"
            ) from exc

    def _save_state(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epochs": self._epochs}, indent=2, sort_keys=True))
        os.replace(tmp, self._state_path)

    def epoch(self, category: str) -> int:
        """The current epoch of ``category`` (new records and grants use it)."""
        return self._epochs.get(validate_category(category), 0)

    def categories(self) -> list[str]:
        """Categories this patient has used (or was told about)."""
        return sorted(self._epochs)

    def _remember(self, category: str) -> int:
        category = validate_category(category)
        if category not in self._epochs:
            self._epochs[category] = 0
            self._save_state()
        return self._epochs[category]

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

    def _member(self, who: str, role_hint: str = "member") -> MemberPublicKeys:
        if self.network.contracts.registry.role_of(who) is Role.NONE:
            raise ConfigurationError(
                f"{who} is not an admitted consortium {role_hint}; ask the consortium "
                "admin to admit it first"
            )
        return member_public_keys(self.network.member(who))

    def authorize_writer(self, writer: str, category: str) -> None:
        """Let ``writer`` (a hospital) append records of ``category`` to this index."""
        pub = self._member(checksum(writer), "provider")
        epoch = self._remember(category)
        sealed = seal_writer_authorization(self.keys, pub, category, epoch)
        self._contracts.index.authorize_writer(self.keys.tag(category, epoch), pub.address, sealed)

    def deauthorize_writer(self, writer: str, category: str) -> None:
        """Stop ``writer`` from appending records of ``category`` (every epoch)."""
        writer = checksum(writer)
        index = self.network.contracts.index
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
        return [w for w in self._authorized(tag) if index.is_writer(self.address, tag, w)]

    def _authorized(self, tag: CategoryTag) -> list[Address]:
        """Members holding an authorization for ``tag``, whether active members or not."""
        from emrshare.chain import WriterAuthorized

        index = self.network.contracts.index
        seen = {
            checksum(ev.writer)
            for ev in index.events(WriterAuthorized, patient=self.address, tag=tag)
        }
        return sorted(w for w in seen if index.is_authorized(self.address, tag, w))

    # -- grants -------------------------------------------------------------------------

    def _expiry(self, expires: Expiry) -> int:
        if isinstance(expires, timedelta):
            return self.network.chain_time() + int(expires.total_seconds())
        if isinstance(expires, datetime):
            return int(expires.timestamp())
        return int(expires)

    def _grant_params(
        self,
        grantee: str,
        category: str,
        epoch: int,
        expiry: int,
        proxies: list[str] | None,
        threshold: int | None,
    ) -> GrantParams:
        pub = self._member(checksum(grantee), "member")
        members = [self.network.member(p) for p in proxies] if proxies else self.network.proxies()
        if not members:
            raise ConfigurationError("the consortium has no proxies registered; admit some first")
        default = min(self.network.threshold, len(members))
        # ``None`` means the default; 0 is a caller's mistake, not a request for the default.
        if threshold is not None and not 1 <= threshold <= len(members):
            raise ConfigurationError(
                f"threshold {threshold} is out of range: use 1 to {len(members)} (the number "
                f"of proxies), or leave it unset for the consortium's ({default})"
            )
        m = default if threshold is None else threshold
        nonce = secrets.token_bytes(32)
        pid = policy_id(self.address, nonce)
        grant = make_grant(
            self.keys,
            category=category,
            epoch=epoch,
            policy_id=pid,
            grantee=pub,
            proxies=[member_public_keys(p) for p in members],
            threshold=m,
        )
        return GrantParams(
            nonce=nonce,
            grantee=pub.address,
            tag=self.keys.tag(category, epoch),
            expiry=expiry,
            proxies=list(grant.proxies),
            threshold=m,
            sealed_kfrags=list(grant.sealed_kfrags),
            sealed_grantee_map=grant.sealed_grantee_map,
        )

    def grant(
        self,
        grantee: str,
        category: str,
        *,
        expires: Expiry,
        proxies: list[str] | None = None,
        threshold: int | None = None,
        all_epochs: bool = True,
    ) -> GrantInfo:
        """Grant ``grantee`` read access to ``category`` until ``expires``.

        ``expires`` is a duration from now (chain time), a datetime or unix seconds.
        Proxies default to every registered proxy, the threshold to the consortium's; a
        threshold below 1 or above the number of proxies is a :class:`ConfigurationError`.
        With ``all_epochs`` (default) earlier epochs of the category are granted too, so
        the grantee reads the whole history; the returned grant is the current epoch's.
        """
        infos = self._grant_epochs(grantee, category, expires, proxies, threshold, all_epochs)
        return infos[-1]

    def _grant_epochs(
        self,
        grantee: str,
        category: str,
        expires: Expiry,
        proxies: list[str] | None,
        threshold: int | None,
        all_epochs: bool,
    ) -> list[GrantInfo]:
        """One grant per epoch (oldest first; the last one is the current epoch's)."""
        epoch = self._remember(category)
        expiry = self._expiry(expires)
        epochs = range(epoch + 1) if all_epochs else [epoch]
        infos = []
        for e in epochs:
            params = self._grant_params(grantee, category, e, expiry, proxies, threshold)
            receipt = self._contracts.grants.grant(params)
            infos.append(self._info(receipt.event(GrantCreated)))
        return infos

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

    def revoke(self, policy: PolicyId | bytes | str, *, new_epoch: bool = True) -> None:
        """Revoke one grant.

        With ``new_epoch`` (default) the category moves to a new epoch: new records are
        sealed under a fresh key, so the revoked grantee cannot read them even with
        colluding proxies; every remaining active grantee of the category and every
        authorized writer is re-issued a grant / authorization for the new epoch.

        A grant that was already revoked raises :class:`GrantRevoked` and changes nothing.

        **Warning:** revocation stops future re-encryption by honest proxies. It cannot
        take back what the grantee already read.
        """
        pid = id32(policy)
        events = {bytes(ev.policy_id): ev for ev in self._grant_events()}
        ev = events.get(pid)
        if ev is None:
            raise ConfigurationError(
                f"0x{pid.hex()} is not a grant of this patient; list them with `grant list`"
            )
        grants = self.network.contracts.grants
        revoked_at = grants.policy(PolicyId(pid)).revoked_at
        if revoked_at:
            # Revoking again must not move the category to yet another epoch.
            raise GrantRevoked(
                f"grant 0x{pid.hex()} was already revoked at block {revoked_at}; nothing "
                "to do (see `grant list` for the grants still active)",
                {"chain": "policy_revoked"},
            )
        if grants.status(PolicyId(pid)) is GrantStatus.ACTIVE:
            self._contracts.grants.revoke(PolicyId(pid))
        if not new_epoch:
            return
        category, epoch = self._tags().get(bytes(ev.tag), (None, 0))
        if category is None or epoch != self.epoch(category):
            return  # an old epoch's grant: the current epoch is already beyond it
        old_tag = self.keys.tag(category, epoch)
        writers = self._authorized(old_tag)
        # One re-issued grant per remaining grantee: the one that lasts longest.
        remaining: dict[str, GrantCreated] = {}
        for e in events.values():
            grantee = checksum(e.grantee)
            if (
                bytes(e.tag) == bytes(old_tag)
                and grantee != checksum(ev.grantee)
                and grants.status(e.policy_id) is GrantStatus.ACTIVE
                and (grantee not in remaining or e.expiry > remaining[grantee].expiry)
            ):
                remaining[grantee] = e
        self._epochs[category] = epoch + 1
        self._save_state()
        self._rekey_writers(category, old_tag, epoch + 1, writers)
        for e in remaining.values():
            params = self._grant_params(
                e.grantee, category, epoch + 1, e.expiry, list(e.proxies), e.threshold
            )
            self._contracts.grants.grant(params)

    def _rekey_writers(
        self, category: str, old_tag: CategoryTag, epoch: int, writers: list[Address]
    ) -> None:
        """Move every writer of ``old_tag`` to the new epoch's tag in one transaction, so
        none stays authorized on the old tag. A writer that is no longer an active Provider
        cannot be re-authorized: it is only revoked on the old tag."""
        registry = self.network.contracts.registry
        active = [w for w in writers if registry.has_role(w, Role.PROVIDER)]
        gone = [w for w in writers if w not in active]
        index = self._contracts.index
        if active:
            payloads = [
                seal_writer_authorization(self.keys, self._member(w, "provider"), category, epoch)
                for w in active
            ]
            index.rekey_writers(old_tag, self.keys.tag(category, epoch), active, payloads)
        if gone:
            index.revoke_writers(old_tag, gone)

    # -- access requests -----------------------------------------------------------------

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]:
        """Access requests addressed to this patient, oldest first, opened.

        Requests and answers are sealed on chain (only this patient reads the category,
        purpose and reason; see :mod:`emrshare.crypto.requests`). A request whose box
        does not open (not sealed to this patient, or copied from another request) is
        listed with ``category``, ``purpose`` and ``reason`` ``None``: it can only be denied.
        """
        grants = self.network.contracts.grants
        answers = {
            ev.request_id: ev for ev in grants.events(AccessRequestAnswered, patient=self.address)
        }
        out = []
        for ev in grants.events(AccessRequested, patient=self.address):
            req = grants.request(ev.request_id)
            if pending_only and req.status is not RequestStatus.PENDING:
                continue
            body: AccessRequestBody | None
            try:
                body = open_request(
                    bytes(ev.sealed_request),
                    self.keys.box_private_key,
                    patient=self.address,
                    requester=checksum(ev.requester),
                )
            except EmrShareError:
                body = None
            status: str = "pending"
            policies: tuple[PolicyId, ...] = ()
            if req.status is not RequestStatus.PENDING:
                status, policies = self._answer_of(answers.get(ev.request_id), ev)
            out.append(
                AccessRequestInfo(
                    request_id=ev.request_id,
                    patient=checksum(ev.patient),
                    requester=checksum(ev.requester),
                    category=body.category if body else None,
                    purpose=body.purpose if body else None,
                    reason=body.reason if body else None,
                    status=status,
                    policy_ids=policies,
                    block_number=ev.block_number,
                )
            )
        return out

    def _answer_of(
        self, ans: AccessRequestAnswered | None, req: AccessRequested
    ) -> tuple[str, tuple[PolicyId, ...]]:
        if ans is None:
            return "answered", ()
        try:
            opened = open_answer(
                bytes(ans.sealed_answer),
                self.keys.box_private_key,
                request_id=req.request_id,
                patient=self.address,
                requester=checksum(req.requester),
            )
        except EmrShareError:
            return "answered", ()
        return opened.decision, opened.policy_ids

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
            raise _request_closed(req)
        return req

    def _answer(self, req: AccessRequestInfo, approved: bool, policies: list[PolicyId]) -> None:
        answer = AccessAnswer(
            request_id=req.request_id,
            patient=self.address,
            requester=req.requester,
            decision="approved" if approved else "denied",
            policy_ids=policy_ids_for_answer(policies),
            created_at=self.network.chain_time(),
        )
        blob = seal_answer(
            answer,
            requester_box_key=PublicKey(bytes(self.network.member(req.requester).box_key)),
            patient_box_key=self.keys.box_public_key,
        )
        try:
            self._contracts.grants.answer_request(req.request_id, blob)
        except ContractRevert as exc:
            # Answered in between (another device of this patient): say so, not the revert.
            if exc.name != "Grants_RequestClosed":
                raise
            raise _request_closed(self._request(req.request_id)) from exc

    def approve(
        self,
        request_id: int,
        *,
        expires: Expiry,
        category: str | None = None,
        threshold: int | None = None,
    ) -> GrantInfo:
        """Approve an access request: grant the category (every epoch, so the requester
        sees the whole history), then send the sealed answer naming the grants.

        The grants and the answer are separate transactions, and nothing on chain links
        them (the answer is sealed). A request that was already approved or denied is a
        :class:`ConfigurationError`; one answered by another device of this patient
        between the grants and the answer too (the grants stay: revoke them if unwanted).
        Returns the current epoch's grant.
        """
        req = self._pending_request(request_id)
        name = category or req.category
        if name is None:
            raise ConfigurationError(
                f"request #{request_id} cannot be opened by this patient (it names no "
                "category it can read); pass the category name explicitly, or deny it"
            )
        infos = self._grant_epochs(req.requester, name, expires, None, threshold, True)
        # The current epoch's grant first (an answer names at most 8), then the older ones.
        self._answer(req, True, [i.policy_id for i in reversed(infos)])
        return infos[-1]

    def deny(self, request_id: int) -> None:
        """Deny an access request (one already approved or denied is a ConfigurationError)."""
        self._answer(self._pending_request(request_id), False, [])

    # -- own records ----------------------------------------------------------------------

    def _entries(self) -> list[EntryAppended]:
        """Every entry of this patient's index up to the newest confirmed block, verified
        to be the whole hash chain there (count and head equal the contract's at that
        block, so a withheld tail is an :class:`IndexIntegrityError`)."""
        block = self.network.chain.safe_block()
        new, self._verified = verified_entries(
            self.network.contracts.index, self.address, block, after=self._verified
        )
        self._chain.extend(new)
        return list(self._chain)

    def records(self, category: str | None = None) -> list[RecordInfo]:
        """This patient's records (optionally of one category), opened and verified."""
        tags = self._tags()
        out = []
        for ev in self._entries():
            named = tags.get(bytes(ev.tag))
            if named is None or (category is not None and named[0] != category):
                continue
            entry = self._open(ev, named)
            out.append(
                RecordInfo(
                    record_id=RecordId(bytes(ev.record_id)),
                    patient=self.address,
                    author=checksum(ev.author),
                    category=named[0],
                    epoch=named[1],
                    tag=CategoryTag(bytes(ev.tag)),
                    block_number=ev.block_number,
                    media_type=entry.media_type,
                    size=entry.size,
                    created_at=entry.created_at,
                )
            )
        return out

    def _open(self, ev: EntryAppended, named: tuple[str, int]) -> IndexEntry:
        entry = open_entry(SealedEntry.from_bytes(bytes(ev.entry)), self.keys, *named)
        return check_entry(entry, ev, self.address, named[1], self._members)

    def _find(self, record: RecordId | bytes | str) -> tuple[EntryAppended, tuple[str, int]]:
        rid = id32(record)
        tags = self._tags()
        for ev in self._entries():
            if bytes(ev.record_id) == rid:
                named = tags.get(bytes(ev.tag))
                if named is None:
                    raise ConfigurationError(
                        f"record 0x{rid.hex()} is under a category this machine does not "
                        "know; pass known_categories"
                    )
                return ev, named
        raise ConfigurationError(f"no record 0x{rid.hex()} in this patient's index")

    def read(self, record: RecordId | bytes | str) -> bytes:
        """The plaintext of one of the patient's own records (fully verified)."""
        ev, named = self._find(record)
        return read_record(self.network.store, self._open(ev, named))

    def read_to(self, record: RecordId | bytes | str, path: Path) -> int:
        """Write one record to ``path`` (only once verified); returns its size."""
        path = check_output_path(path)
        ev, named = self._find(record)
        return read_record_to(self.network.store, self._open(ev, named), path)

    # -- writing own records ---------------------------------------------------------------

    def _target(self, patient: str, category: str, epoch: int | None = None) -> WriteTarget:
        if checksum(patient) != self.address:
            raise ConfigurationError("a patient writes only to its own index")
        e = self._remember(category) if epoch is None else epoch
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
        tags = self._tags()
        # capsule hash -> (tag, record id) of this patient's own, verified entries.
        capsules: dict[bytes, list[tuple[bytes, RecordId]]] = {}
        for ev in self._entries():
            try:
                h = SealedEntry.from_bytes(bytes(ev.entry)).capsule_hash
            except EmrShareError:
                continue  # an entry that does not parse names no capsule
            capsules.setdefault(bytes(h), []).append((bytes(ev.tag), RecordId(bytes(ev.record_id))))
        w3 = self.network.w3
        times: dict[int, int] = {}

        def time_of(block: int) -> int | None:
            if block not in times:
                try:
                    times[block] = int(w3.eth.get_block(block)["timestamp"])
                except Exception:
                    return None
            return times[block]

        out: list[AccessEvent] = []
        seen: set[tuple[str, str, int]] = set()
        for log in self.network.contracts.audit.events(AccessLogged, patient=self.address):
            g = grants.get(bytes(log.policy_id))
            hashes = tuple(bytes(h) for h in log.capsule_hashes)
            rids: list[RecordId] = []
            anomaly = ""
            if g is None:
                anomaly = "the policy is not a grant of this patient"
            elif checksum(log.requester) != checksum(g.grantee):
                anomaly = "the requester is not the grantee of the policy"
            elif time_of(log.evaluated_at) != log.evaluated_time:
                anomaly = (
                    f"the logged evaluation time {log.evaluated_time} is not the time of "
                    f"block {log.evaluated_at}"
                )
            else:
                for h in hashes:
                    match = [rid for tag, rid in capsules.get(h, []) if tag == bytes(g.tag)]
                    if not match:
                        anomaly = (
                            f"capsule 0x{h.hex()} is not one of this patient's records "
                            "under the policy's category"
                        )
                        break
                    rids.append(match[0])
            key = (checksum(log.proxy), checksum(log.requester), int(log.nonce))
            if not anomaly and key in seen:
                anomaly = "a repeat of an access this proxy already logged (same nonce)"
            if not anomaly:
                seen.add(key)
            out.append(
                AccessEvent(
                    policy_id=PolicyId(bytes(log.policy_id)),
                    requester=checksum(log.requester),
                    proxy=checksum(log.proxy),
                    capsule_hashes=hashes,
                    nonce=int(log.nonce),
                    evaluated_at_block=int(log.evaluated_at),
                    evaluated_time=int(log.evaluated_time),
                    block_number=log.block_number,
                    timestamp=time_of(log.block_number) or 0,
                    category=tags.get(bytes(g.tag), (None, 0))[0] if g is not None else None,
                    record_ids=tuple(rids) if not anomaly else None,
                    anomaly=anomaly,
                )
            )
        return out

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _request_closed(req: AccessRequestInfo) -> ConfigurationError:
    if req.policy_id is not None:
        what = (
            f"approved (grant 0x{bytes(req.policy_id).hex()}); to change that access, "
            "revoke the grant with `grant revoke`"
        )
    else:
        what = (
            f"{req.status}; nothing to do (the requester can send a new request, or grant "
            "access directly with `grant add`)"
        )
    return ConfigurationError(f"access request #{req.request_id} was already {what}")
