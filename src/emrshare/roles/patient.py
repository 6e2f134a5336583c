"""The patient: owns the keys, decides who writes and who reads each category."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emrshare._files import private_dir
from emrshare.chain import (
    AccessLogged,
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
    records_hash,
    verify_chain,
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
from emrshare.errors import ConfigurationError, ContractRevert, GrantRevoked
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    GrantInfo,
    Progress,
    RecordInfo,
    category_ref,
    check_entry,
    check_output_path,
    checksum,
    id32,
    read_record,
    read_record_to,
)
from emrshare.roles._state import load_epochs, save_epochs
from emrshare.roles._writes import RecordSource, RecordWriter, WriteTarget
from emrshare.roles.profiles import default_data_dir
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = ["COMMON_CATEGORIES", "Patient"]

#: Category names a patient recognises in access requests even before using them.
COMMON_CATEGORIES = (
    "lab",
    "imaging",
    "medication",
    "allergies",
    "immunizations",
    "notes",
    "discharge",
    "genomics",
)

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
        private_dir(self.state_dir)
        self._contracts = network.contracts_for(keys.ethereum_key)
        self._state_path = self.state_dir / "patient.json"
        self._epochs: dict[str, int] = self._load_state()
        for c in known_categories:
            self._epochs.setdefault(validate_category(c), 0)
        self._writer: RecordWriter | None = None

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
        return load_epochs(self._state_path)

    def _save_state(self) -> None:
        save_epochs(self._state_path, self._epochs)

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
            if index.is_writer(self.address, tag, writer):
                self._contracts.index.revoke_writer(tag, writer)

    def writers(self, category: str) -> list[Address]:
        """Members currently allowed to write ``category`` at its current epoch."""
        from emrshare.chain import WriterAuthorized

        tag = self.keys.tag(category, self.epoch(category))
        index = self.network.contracts.index
        seen = {
            checksum(ev.writer)
            for ev in index.events(WriterAuthorized, patient=self.address, tag=tag)
        }
        return sorted(w for w in seen if index.is_writer(self.address, tag, w))

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
            epoch=epoch,
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
        epoch = self._remember(category)
        expiry = self._expiry(expires)
        epochs = range(epoch + 1) if all_epochs else [epoch]
        info: GrantInfo | None = None
        for e in epochs:
            params = self._grant_params(grantee, category, e, expiry, proxies, threshold)
            receipt = self._contracts.grants.grant(params)
            info = self._info(receipt.event(GrantCreated))
        assert info is not None
        return info

    def _info(self, ev: GrantCreated, status: GrantStatus | None = None) -> GrantInfo:
        names = self._tags()
        category, _ = names.get(bytes(ev.tag), (None, ev.epoch))
        if status is None:
            status = self.network.contracts.grants.status(ev.policy_id)
        return GrantInfo(
            policy_id=PolicyId(bytes(ev.policy_id)),
            patient=checksum(ev.patient),
            grantee=checksum(ev.grantee),
            category=category,
            epoch=ev.epoch,
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
        category = self._tags().get(bytes(ev.tag), (None, 0))[0]
        if category is None or ev.epoch != self.epoch(category):
            return  # an old epoch's grant: the current epoch is already beyond it
        old_tag = self.keys.tag(category, ev.epoch)
        writers = self.writers(category)
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
        self._epochs[category] = ev.epoch + 1
        self._save_state()
        for w in writers:
            self.authorize_writer(w, category)
        for e in remaining.values():
            params = self._grant_params(
                e.grantee, category, ev.epoch + 1, e.expiry, list(e.proxies), e.threshold
            )
            self._contracts.grants.grant(params)

    # -- access requests -----------------------------------------------------------------

    def _category_of(self, ref: bytes) -> str | None:
        for c in (*self._epochs, *COMMON_CATEGORIES):
            if category_ref(self.address, c) == bytes(ref):
                return c
        return None

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]:
        """Access requests addressed to this patient, oldest first."""
        grants = self.network.contracts.grants
        out = []
        for ev in grants.events(AccessRequested, patient=self.address):
            req = grants.request(ev.request_id)
            if pending_only and req.status is not RequestStatus.PENDING:
                continue
            out.append(
                AccessRequestInfo(
                    request_id=ev.request_id,
                    patient=checksum(ev.patient),
                    requester=checksum(ev.requester),
                    category=self._category_of(ev.category),
                    category_ref=bytes(ev.category),
                    purpose=bytes(ev.purpose).rstrip(b"\0").decode(errors="replace"),
                    status=req.status.name.lower(),
                    policy_id=PolicyId(bytes(req.policy_id)) if any(req.policy_id) else None,
                    block_number=ev.block_number,
                )
            )
        return out

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
        if req.status != RequestStatus.PENDING.name.lower():
            raise _request_closed(req)
        return req

    def approve(
        self,
        request_id: int,
        *,
        expires: Expiry,
        category: str | None = None,
        threshold: int | None = None,
    ) -> GrantInfo:
        """Approve an access request: creates the grant (current epoch) in the same transaction.

        Earlier epochs of the category are granted in further transactions, so the
        requester sees the whole history. A request that was already approved or denied
        is a :class:`ConfigurationError`.
        """
        req = self._pending_request(request_id)
        name = category or req.category
        if name is None:
            raise ConfigurationError(
                f"request #{request_id} names a category this patient does not recognise; "
                "pass the category name explicitly"
            )
        epoch = self._remember(name)
        expiry = self._expiry(expires)
        params = self._grant_params(req.requester, name, epoch, expiry, None, threshold)
        try:
            receipt = self._contracts.grants.approve_request(request_id, params)
        except ContractRevert as exc:
            # Answered in between (another device of this patient): say so, not the revert.
            if exc.name != "Grants_RequestClosed":
                raise
            raise _request_closed(self._request(request_id)) from exc
        info = self._info(receipt.event(GrantCreated))
        for e in range(epoch):
            older = self._grant_params(req.requester, name, e, expiry, None, threshold)
            self._contracts.grants.grant(older)
        return info

    def deny(self, request_id: int) -> None:
        """Deny an access request (one already approved or denied is a ConfigurationError)."""
        self._pending_request(request_id)
        try:
            self._contracts.grants.deny_request(request_id)
        except ContractRevert as exc:
            if exc.name != "Grants_RequestClosed":
                raise
            raise _request_closed(self._request(request_id)) from exc

    # -- own records ----------------------------------------------------------------------

    def _entries(self) -> list[EntryAppended]:
        index = self.network.contracts.index
        entries = list(index.entries(self.address))
        head, count = verify_chain(entries)
        chain = index.head(self.address)
        if chain.count == count and bytes(chain.head) != head:
            from emrshare.errors import IndexIntegrityError

            raise IndexIntegrityError(
                "this patient's index events do not match the on-chain head; query another node"
            )
        return entries

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
                    epoch=ev.epoch,
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
        return check_entry(entry, ev, self.address, self.network.contracts.registry)

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
        patient's grants, oldest first."""
        self.network.settle()
        grants = {bytes(ev.policy_id): ev for ev in self._grant_events()}
        if not grants:
            return []
        tags = self._tags()
        by_hash: dict[bytes, RecordId] = {}
        for ev in self.network.contracts.index.entries(self.address):
            by_hash[records_hash([bytes(ev.record_id)])] = RecordId(bytes(ev.record_id))
        audit = self.network.contracts.audit
        out = []
        times: dict[int, int] = {}
        for log in audit.events(AccessLogged, policy_id=list(grants)):
            g = grants[bytes(log.policy_id)]
            if log.block_number not in times:
                times[log.block_number] = int(
                    self.network.w3.eth.get_block(log.block_number)["timestamp"]
                )
            rid = by_hash.get(bytes(log.records_hash))
            out.append(
                AccessEvent(
                    policy_id=PolicyId(bytes(log.policy_id)),
                    requester=checksum(log.requester),
                    proxy=checksum(log.proxy),
                    count=log.count,
                    records_hash=bytes(log.records_hash),
                    evaluated_at_block=log.evaluated_at,
                    block_number=log.block_number,
                    timestamp=times[log.block_number],
                    category=tags.get(bytes(g.tag), (None, 0))[0],
                    record_ids=(rid,) if rid is not None else None,
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
