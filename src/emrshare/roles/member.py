"""Consortium members: ``Requester`` (insurer, pharmacy, researcher: read what was granted),
``Provider`` (a hospital EHR: also writes records), ``ConsortiumAdmin`` (admits members)."""

from __future__ import annotations

import functools
import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import umbral_pre
from nacl.public import PublicKey

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain import (
    AccessRequestAnswered,
    AccessRequested,
    Action,
    EntryAppended,
    GrantCreated,
    GrantStatus,
    MemberApplied,
    ProposalCreated,
    ProxyReported,
    Role,
    WriterAuthorized,
    WriterRevoked,
)
from emrshare.chain.artifacts import load_artifact
from emrshare.chain.events import event_topic, get_logs_paged, topic_for
from emrshare.crypto import (
    GranteeMap,
    IndexEntry,
    MemberKeys,
    SealedEntry,
    load_member_keystore,
    open_entry_as_grantee,
    open_grantee_map,
    open_writer_authorization,
    validate_category,
)
from emrshare.crypto.requests import AccessRequestBody, open_answer, seal_request
from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    ContractRevert,
    EmrShareError,
    GrantExpired,
    GrantRevoked,
    InvalidEvidence,
    Unavailable,
)
from emrshare.journal import RecoveryReport
from emrshare.network import Network
from emrshare.roles._common import (
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
from emrshare.roles._reports import VerifiedReport, keep_evidence, read_evidence, verify_report
from emrshare.roles._writes import RecordSource, RecordWriter, WriteTarget
from emrshare.roles.profiles import default_data_dir
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = ["ConsortiumAdmin", "Provider", "Requester"]

log = logging.getLogger("emrshare.roles")


class Requester:
    """A consortium member that reads what patients granted it (insurer, pharmacy, …).

    Example::

        insurer = Requester(net, MemberKeys.generate())
        rid = insurer.request_access(patient, "lab", purpose="HPAYMT")
        # … the patient approves …
        data = insurer.read(patient, record_id)

    Every read is fully verified: the proxies' capsule fragments, the entry against its
    chain event, the author's signature, the CID, the AEAD and the plaintext SHA-256.
    """

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        *,
        state_dir: Path | None = None,
        proxy_timeout: float = 10.0,
        retry_for: float = 5.0,
    ) -> None:
        self.network = network
        self.keys = keys
        self.retry_for = retry_for
        self.address: Address = keys.address
        self.state_dir = Path(state_dir or default_data_dir() / "state" / keys.address)
        private_dir(self.state_dir)
        self.proxy_timeout = proxy_timeout
        self._contracts = network.contracts_for(keys.ethereum_key)
        self._maps: dict[bytes, GranteeMap] = {}
        self._grants_seen: list[tuple[GrantCreated, GranteeMap]] = []
        self._grants_scanned = network.contracts.grants.start_block
        self._entries: dict[str, dict[bytes, EntryAppended]] = {}
        self._verified: dict[str, tuple[bytes, int, int]] = {}
        self._members = MembershipCache(network.contracts.registry)
        self._endpoints: dict[str, str] = {}
        self._tls: ssl.SSLContext | None = None
        #: Evidence files written by the last read (a proxy signed a bad cfrag).
        self.last_evidence: list[Path] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    @classmethod
    def from_keystore(cls, network: Network, keystore: Path, password: str, **kwargs: Any) -> Self:
        """Open a member keystore (``KeystoreError`` on a wrong password)."""
        return cls(network, load_member_keystore(keystore, password), **kwargs)

    # -- membership ---------------------------------------------------------------------

    def apply(self, endpoint: str = "") -> bool:
        """Publish this member's keys to the registry (before admission); False if this
        account is a member already."""
        if self.network.contracts.registry.role_of(self.address) is not Role.NONE:
            return False
        pub = self.keys.public_keys()
        self._contracts.registry.apply(pub.receiving_key_bytes, pub.box_key_bytes, endpoint)
        return True

    @property
    def role(self) -> Role:
        return self.network.contracts.registry.role_of(self.address)

    # -- requests -------------------------------------------------------------------------

    def request_access(
        self, patient: str, category: str, *, purpose: str = "TREAT", reason: str = ""
    ) -> int:
        """Ask ``patient`` for ``category``, for a FHIR PurposeOfUse (TREAT, HPAYMT, …).

        Returns the request id. The category, purpose and reason are sealed to the
        patient's box key and padded to one size (:mod:`emrshare.crypto.requests`): the
        chain shows only that this member asked this patient something. A reason over
        :data:`~emrshare.crypto.requests.MAX_REASON_BYTES` UTF-8 bytes, a bad category
        or purpose, or an address with no patient profile on chain is refused with a
        :class:`ConfigurationError` before any transaction is sent.
        """
        patient = checksum(patient)
        try:
            category = validate_category(category)
        except ValueError as exc:
            raise ConfigurationError(f"invalid category {category!r}: {exc}") from None
        body = AccessRequestBody(
            patient=patient,
            requester=self.address,
            category=category,
            purpose=purpose,
            reason=reason,
            created_at=self.network.chain_time(),
        )
        profile = self._require_patient(patient)
        sealed = seal_request(PublicKey(bytes(profile.box_key)), body)
        receipt = self._contracts.grants.request_access(patient, sealed)
        request_id = int(receipt.event(AccessRequested).request_id)
        self._remember_request(request_id, body)
        return request_id

    def _require_patient(self, patient: Address) -> Any:
        try:
            return self.network.contracts.profiles.profile(patient)
        except ContractRevert as exc:
            if exc.name != "PatientProfiles_NotRegistered":
                raise
            raise ConfigurationError(
                f"{patient} is not a registered patient (no patient profile on chain); "
                "check the address, or ask the patient to register first"
            ) from exc

    # The sealed request opens only for the patient: the requester keeps what it asked
    # for locally (0600), to show it next to the answer.
    def _requests_path(self) -> Path:
        return self.state_dir / "requests.json"

    def _sent_requests(self) -> dict[str, dict[str, str]]:
        # A damaged file is a LocalStateError, never silently replaced by an empty one.
        try:
            return read_json_object(self._requests_path(), "the member's request log")
        except FileNotFoundError:
            return {}

    def _remember_request(self, request_id: int, body: AccessRequestBody) -> None:
        sent = self._sent_requests()
        sent[str(request_id)] = {
            "category": body.category,
            "purpose": body.purpose,
            "reason": body.reason,
        }
        write_atomically(self._requests_path(), json.dumps(sent, indent=2, sort_keys=True))

    def my_requests(self) -> list[AccessRequestInfo]:
        """The requests this member made, with their (sealed, now opened) answers.

        ``category``, ``purpose`` and ``reason`` come from this machine's copy (``None``
        for a request sent from elsewhere). An answer whose box does not open, or that
        is not the answer to that request, leaves the request ``answered``.
        """
        grants = self.network.contracts.grants
        sent = self._sent_requests()
        answers = {
            ev.request_id: ev for ev in grants.events(AccessRequestAnswered, requester=self.address)
        }
        out = []
        for ev in grants.events(AccessRequested, requester=self.address):
            status: str = "pending"
            policies: tuple[PolicyId, ...] = ()
            ans = answers.get(ev.request_id)
            if ans is not None:
                try:
                    opened = open_answer(
                        bytes(ans.sealed_answer),
                        self.keys.box_private_key,
                        request_id=ev.request_id,
                        patient=checksum(ev.patient),
                        requester=self.address,
                    )
                    status, policies = opened.decision, opened.policy_ids
                except EmrShareError:
                    status = "answered"
            mine = sent.get(str(ev.request_id), {})
            out.append(
                AccessRequestInfo(
                    request_id=ev.request_id,
                    patient=checksum(ev.patient),
                    requester=self.address,
                    category=mine.get("category"),
                    purpose=mine.get("purpose"),
                    reason=mine.get("reason"),
                    status=status,
                    policy_ids=policies,
                    block_number=ev.block_number,
                )
            )
        return out

    # -- grants -----------------------------------------------------------------------------

    def _open_map(self, ev: GrantCreated) -> GranteeMap:
        key = bytes(ev.policy_id)
        if key not in self._maps:
            profile = self.network.contracts.profiles.profile(ev.patient)
            self._maps[key] = open_grantee_map(
                bytes(ev.sealed_grantee_map),
                self.keys,
                patient_verifying_key=umbral_pre.PublicKey.from_compressed_bytes(
                    bytes(profile.verifying_key)
                ),
            )
        return self._maps[key]

    def _grant_events(self, patient: str | None) -> list[tuple[GrantCreated, GranteeMap]]:
        # Grants to this member, followed incrementally: a read costs no full event scan.
        grants = self.network.contracts.grants
        end = self.network.chain.safe_block()
        if end >= self._grants_scanned:
            for ev in grants.events(
                GrantCreated, from_block=self._grants_scanned, to_block=end, grantee=self.address
            ):
                try:
                    self._grants_seen.append((ev, self._open_map(ev)))
                except EmrShareError:
                    continue  # not a grant this member can use (forged or not for us)
            self._grants_scanned = end + 1
        if patient is None:
            return list(self._grants_seen)
        patient = checksum(patient)
        return [(ev, m) for ev, m in self._grants_seen if checksum(ev.patient) == patient]

    def grants(self, patient: str | None = None, *, active_only: bool = False) -> list[GrantInfo]:
        """Grants made to this member (by ``patient``), with their status on chain time."""
        status = self.network.contracts.grants.status
        out = []
        for ev, gmap in self._grant_events(patient):
            st = status(ev.policy_id)
            if active_only and st is not GrantStatus.ACTIVE:
                continue
            out.append(
                GrantInfo(
                    policy_id=PolicyId(bytes(ev.policy_id)),
                    patient=checksum(ev.patient),
                    grantee=self.address,
                    category=gmap.category,
                    epoch=gmap.epoch,
                    tag=CategoryTag(bytes(ev.tag)),
                    expiry=ev.expiry,
                    threshold=ev.threshold,
                    proxies=tuple(checksum(p) for p in ev.proxies),
                    status=st.name.lower(),
                    block_number=ev.block_number,
                )
            )
        return out

    # -- reading ------------------------------------------------------------------------------

    def records(self, patient: str, category: str | None = None) -> list[RecordInfo]:
        """The patient's records this member holds a grant for (any status), by category."""
        patient = checksum(patient)
        named = {
            bytes(ev.tag): (gmap.category, gmap.epoch) for ev, gmap in self._grant_events(patient)
        }
        if category is not None:
            named = {t: v for t, v in named.items() if v[0] == category}
        if not named:
            return []
        out = []
        for ev in self._patient_chain(patient).values():
            if bytes(ev.tag) not in named:
                continue
            cat, epoch = named[bytes(ev.tag)]
            out.append(
                RecordInfo(
                    record_id=RecordId(bytes(ev.record_id)),
                    patient=patient,
                    author=checksum(ev.author),
                    category=cat,
                    epoch=epoch,
                    tag=CategoryTag(bytes(ev.tag)),
                    block_number=ev.block_number,
                )
            )
        return out

    def _patient_chain(self, patient: str) -> dict[bytes, EntryAppended]:
        """The patient's whole index up to the newest confirmed block, verified.

        A grantee reads one category, but it verifies the patient's whole hash chain (a
        node cannot withhold entries, also not the newest): the events read since the last
        call extend the verified head, and the head and count must equal the contract's
        at that block (:class:`IndexIntegrityError` otherwise). Kept in order, by record id.
        """
        seen = self._entries.setdefault(patient, {})
        new, self._verified[patient] = verified_entries(
            self.network.contracts.index,
            patient,
            self.network.chain.safe_block(),
            after=self._verified.get(patient),
        )
        for ev in new:
            seen[bytes(ev.record_id)] = ev
        return seen

    def _entry_event(self, patient: str, record: RecordId | bytes | str) -> EntryAppended:
        rid = id32(record)
        seen = self._patient_chain(patient)
        if rid not in seen:
            raise ConfigurationError(f"no record 0x{rid.hex()} in the index of patient {patient}")
        return seen[rid]

    def _transport(self) -> httpx.AsyncBaseTransport:
        # A fresh transport per read (each read runs its own event loop) but one TLS
        # context: building it loads the CA bundle, ~50 ms, more than the read itself.
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return httpx.AsyncHTTPTransport(verify=self._tls)

    def _endpoint(self, proxy: str, refresh: bool = False) -> str:
        if refresh or proxy not in self._endpoints:
            self._endpoints[proxy] = self.network.contracts.registry.member(proxy).endpoint
        return self._endpoints[proxy]

    def _open(self, patient: str, record: RecordId | bytes | str) -> IndexEntry:
        from emrshare.proxy.client import ProxyEndpoint, ThresholdClient, ThresholdPolicy

        patient = checksum(patient)
        ev = self._entry_event(patient, record)
        candidates = [
            (g, m) for g, m in self._grant_events(patient) if bytes(g.tag) == bytes(ev.tag)
        ]
        if not candidates:
            raise AccessDenied(
                f"no grant covers record 0x{bytes(ev.record_id).hex()} (its category was "
                f"never granted to {self.address}); request access from the patient",
                {"chain": "no_grant"},
            )
        status = self.network.contracts.grants.status
        active = [(g, m) for g, m in candidates if status(g.policy_id) is GrantStatus.ACTIVE]
        # With no active grant we still ask the proxies with the newest one: they are the
        # authority, and their refusal carries the reason (revoked, expired).
        grant, gmap = (active or candidates)[-1]
        # Only active Proxy members count (a suspended or removed proxy's answer is not
        # asked for, so its cfrags cannot make up the threshold); one registry read each.
        registry = self.network.contracts.registry
        endpoints = [
            ProxyEndpoint(p, self._endpoint(p))
            for p in grant.proxies
            if registry.has_role(p, Role.PROXY)
        ]
        policy = ThresholdPolicy.from_grantee_map(
            gmap, endpoints, self.keys.receiving_public_key.to_compressed_bytes()
        )
        sealed = SealedEntry.from_bytes(bytes(ev.entry))
        self.network.settle()
        client = ThresholdClient(
            self.keys.ethereum_key,
            chain_id=self.network.deployment.chain_id,
            grants_contract=self.network.deployment.address_of("Grants"),
            timeout=self.proxy_timeout,
            transport=self.network.proxy_transport or self._transport(),
        )
        try:
            result = self._reencrypt(client, policy, sealed)
        except AccessDenied as exc:
            self._name_evidence(exc, client.evidence)
            st = status(grant.policy_id)
            if st is GrantStatus.REVOKED and not isinstance(exc, GrantRevoked):
                raise GrantRevoked(str(exc), exc.reasons) from exc
            if st is GrantStatus.EXPIRED and not isinstance(exc, GrantExpired):
                raise GrantExpired(str(exc), exc.reasons) from exc
            raise
        except Unavailable as exc:
            self._name_evidence(exc, client.evidence)
            raise
        self.last_evidence = keep_evidence(self.state_dir, client.evidence)
        for path in self.last_evidence:
            log.warning("a proxy signed a bad capsule fragment; evidence written to %s", path)
        entry = open_entry_as_grantee(sealed, self.keys, gmap, result.cfrags[0])
        return check_entry(entry, ev, patient, gmap.epoch, self._members)

    def _name_evidence(self, exc: Exception, evidence: Sequence[Any]) -> None:
        """Write the read's evidence and name the files in ``exc``'s message."""
        self.last_evidence = keep_evidence(self.state_dir, evidence)
        if self.last_evidence:
            named = ", ".join(str(p) for p in self.last_evidence)
            exc.args = (
                f"{exc}; a proxy signed a bad capsule fragment: evidence written to {named} "
                "(report it to the consortium)",
            )

    def report_proxy(self, evidence_path: Path) -> int:
        """Publish an evidence file against its proxy (``ConsortiumRegistry.reportProxy``);
        returns the report id. The evidence is parsed first (:class:`InvalidEvidence`)."""
        evidence = read_evidence(Path(evidence_path))
        receipt = self._contracts.registry.report_proxy(evidence.proxy, bytes(evidence))
        return int(receipt.event(ProxyReported).report_id)

    def _reencrypt(self, client: Any, policy: Any, sealed: SealedEntry) -> Any:
        # "Not now" answers (a proxy has not seen a fresh grant yet, or is down) are
        # retried for a short while; refusals ("no") are not. One chain deadline for the
        # whole read: every retry sends each proxy the same signed request (same nonce),
        # which it answers again without logging a second access.
        deadline = time.monotonic() + self.retry_for
        chain_deadline = self.network.chain_time() + 300
        while True:
            try:
                return client.reencrypt_sync(policy, [sealed.capsule], deadline=chain_deadline)
            except Unavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
                self.network.settle()

    def read(self, patient: str, record: RecordId | bytes | str) -> bytes:
        """One granted record's plaintext, through M-of-N proxies, fully verified.

        Raises :class:`AccessDenied` (or ``GrantRevoked`` / ``GrantExpired``) when the
        proxies refuse and :class:`Unavailable` when too few answer.
        """
        return read_record(self.network.store, self._open(patient, record))

    def read_to(self, patient: str, record: RecordId | bytes | str, path: Path) -> int:
        """Write one granted record to ``path`` (renamed into place only once verified)."""
        path = check_output_path(path)
        return read_record_to(self.network.store, self._open(patient, record), path)

    def close(self) -> None:
        """Nothing to release for a pure reader (kept for symmetry with ``Provider``)."""


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
        state_dir: Path | None = None,
        proxy_timeout: float = 10.0,
        retry_for: float = 5.0,
    ) -> None:
        super().__init__(
            network, keys, state_dir=state_dir, proxy_timeout=proxy_timeout, retry_for=retry_for
        )
        self._targets: dict[tuple[str, str, int], WriteTarget] = {}
        self._revoked: set[tuple[str, bytes]] = set()
        self._scanned: dict[str, int] = {}
        self._writer: RecordWriter | None = None

    @property
    def writer(self) -> RecordWriter:
        if self._writer is None:
            self._writer = RecordWriter(
                self.network,
                eth_key=self.keys.ethereum_key,
                box_key=self.keys.box_private_key,
                state_dir=self.state_dir,
                resolve=self._current_target,
                target_for_epoch=self._target_for_epoch,
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
        # Both event kinds in one eth_getLogs (topic0 is either; patient and writer are
        # the same indexed positions in both), which every write does once.
        topics = [
            [_event_topic("WriterAuthorized"), _event_topic("WriterRevoked")],
            topic_for("address", patient),
            None,
            topic_for("address", self.address),
        ]
        found: list[WriterAuthorized | WriterRevoked] = []
        for log in get_logs_paged(index.client.w3, index.address, topics, start, end):
            ev = index.decode_log(log)
            if isinstance(ev, WriterAuthorized | WriterRevoked):
                found.append(ev)
        found.sort(key=lambda ev: (ev.block_number, ev.log_index))
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
        self._scanned[patient] = end + 1

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

    def _current_target(self, patient: str, category: str) -> WriteTarget:
        patient = checksum(patient)
        validate_category(category)
        current = self.writable_categories(patient)
        if category not in current:
            raise AccessDenied(
                f"patient {patient} has not authorized {self.address} to write {category!r} "
                "records; ask the patient to authorize this provider",
                {"chain": "not_authorized"},
            )
        return self._targets[(patient, category, current[category])]

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
    ) -> RecordId:
        """Encrypt, store and index one record; returns its record id once on chain.

        ``content`` is bytes, a binary file object, an iterable of byte strings or a
        ``Path`` (streamed in constant memory; a path also lets a crash during encryption
        be resumed). ``progress(done, total)`` is called as content is read.
        """
        return self.writer.add(
            patient,
            category,
            content,
            media_type=media_type,
            progress=progress,
            created_at=created_at,
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
    ) -> list[RecordId]:
        """Bulk add: many records of one category, appended in batches of ``batch_size``."""
        return self.writer.add_many(
            patient,
            category,
            contents,
            media_type=media_type,
            batch_size=batch_size,
            progress=progress,
        )

    def recover(self, *, rollback: bool = False) -> RecoveryReport:
        """Finish (or roll back) interrupted writes; never duplicates an index entry."""
        return self.writer.recover(rollback=rollback)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ConsortiumAdmin:
    """A consortium admin: admits members and suspends proxies by M-of-N approval.

    Example::

        admin = ConsortiumAdmin(net, admin_eth_key)
        admin.admit(hospital_address, Role.PROVIDER)   # the member applied first
    """

    def __init__(self, network: Network, eth_key: bytes) -> None:
        self.network = network
        self._contracts = network.contracts_for(eth_key)

    def admit(self, account: str, role: Role) -> int:
        """Propose admitting ``account`` with ``role`` (and execute if the threshold is met).

        Returns the proposal id; with more than one approval needed, other admins call
        :meth:`approve` and the last one executes.
        """
        account = checksum(account)
        registry = self._contracts.registry
        if not any(registry.events(MemberApplied, account=account)):
            raise ConfigurationError(
                f"{account} has not applied for membership yet; it must publish its keys "
                "first (Requester.apply / `emrshare member add`)"
            )
        current = self.network.member(account)
        if current.role is role:
            return -1
        action = Action.ADMIT if current.role is Role.NONE else Action.CHANGE_ROLE
        receipt = registry.propose(action, account, role)
        pid = int(receipt.event(ProposalCreated).proposal_id)
        self._maybe_execute(pid)
        return pid

    def approve(self, proposal_id: int) -> None:
        """Approve a proposal (and execute it once it has enough approvals).

        A suspension is approved only after its evidence is verified locally: the report
        whose evidence hash the proposal cites must prove that the target misbehaved
        (:meth:`verify_report`; :class:`InvalidEvidence` otherwise).
        """
        proposal = self._contracts.registry.proposal(proposal_id)
        if proposal.action is Action.SUSPEND:
            self._verify_cited(proposal.target, bytes(proposal.reference), proposal_id)
        self._contracts.registry.approve(proposal_id)
        self._maybe_execute(proposal_id)

    def verify_report(self, report_id: int) -> VerifiedReport:
        """Check proxy report ``report_id`` against the chain before acting on it.

        Raises :class:`InvalidEvidence` when the evidence does not prove misbehaviour
        (malformed, not signed by the proxy or the grantee, other keys than the grant's,
        or the cfrag verifies).
        """
        return verify_report(self.network, report_id)

    def suspend(self, proxy: str, report_id: int) -> int:
        """Propose suspending ``proxy`` on report ``report_id`` (verified locally first;
        the proposal cites its evidence hash), and execute if the threshold is met.

        Returns the proposal id; other admins :meth:`approve` it, each verifying again.
        """
        verified = self.verify_report(report_id)
        if verified.proxy != checksum(proxy):
            raise InvalidEvidence(
                f"report {report_id} is about {verified.proxy}, not {checksum(proxy)}"
            )
        receipt = self._contracts.registry.propose(
            Action.SUSPEND, verified.proxy, reference=verified.evidence_hash
        )
        pid = int(receipt.event(ProposalCreated).proposal_id)
        self._maybe_execute(pid)
        return pid

    def _verify_cited(self, target: str, reference: bytes, proposal_id: int) -> None:
        registry = self.network.contracts.registry
        for ev in registry.events(ProxyReported, proxy=checksum(target)):
            if bytes(ev.evidence_hash) == reference:
                self.verify_report(ev.report_id)
                return
        raise InvalidEvidence(
            f"suspension proposal {proposal_id} cites no report against {target}; do not approve it"
        )

    def _maybe_execute(self, proposal_id: int) -> None:
        registry = self._contracts.registry
        proposal = registry.proposal(proposal_id)
        if not proposal.executed and proposal.approvals >= registry.admin_config().threshold:
            registry.execute(proposal_id)


@functools.cache
def _event_topic(name: str) -> bytes:
    (item,) = [
        i
        for i in load_artifact("RecordIndex").abi
        if i.get("type") == "event" and i.get("name") == name
    ]
    return event_topic(item)
