"""What every consortium member facade shares: identity, membership, access requests,
the grants it holds and the verified read path (:class:`~emrshare.roles._reads.GrantedReader`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from nacl.public import PublicKey

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.categories import normalize_category, normalize_purpose
from emrshare.chain import (
    AccessRequestAnswered,
    AccessRequested,
    GrantStatus,
    PatientProfile,
    ProxyReported,
    Role,
)
from emrshare.crypto import IndexEntry, MemberKeys, load_member_keystore
from emrshare.crypto.requests import AccessRequestBody, open_answer, seal_request
from emrshare.errors import ContractRevert, EmrShareError, NotFound
from emrshare.fhir import CategoryMapping
from emrshare.network import Network
from emrshare.roles._claims import MemberClaims
from emrshare.roles._common import (
    AccessRequestInfo,
    AccessRequestStatus,
    GrantInfo,
    RecordInfo,
    checksum,
)
from emrshare.roles._drugs import MemberDrugs
from emrshare.roles._emergency import MemberEmergency
from emrshare.roles._listing import open_granted_sync
from emrshare.roles._prescriptions import MemberPrescriptions
from emrshare.roles._reads import GrantedReader, MembershipCache
from emrshare.roles._reports import read_evidence
from emrshare.roles._scope import names_entry
from emrshare.roles._study_researcher import ResearcherStudies
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = ["MemberFacade"]


class MemberFacade:
    """A consortium member's identity and everything it does besides writing records.
    ``state_dir`` keeps what the chain does not: the requests it sent, evidence against
    proxies (and, for a ``Provider``, its write journal); created when first written to."""

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
        self.network = network
        self.keys = keys
        self.address: Address = keys.address
        self.state_dir = Path(state_dir)
        self._contracts = signed = network.contracts_for(keys.ethereum_key)
        self._members = MembershipCache(network.contracts.registry)
        self.emergency = MemberEmergency(network, keys, signed, emergency_key_file)
        self._reads = GrantedReader(
            network,
            keys,
            self.state_dir,
            self._members,
            proxy_timeout=proxy_timeout,
            retry_for=retry_for,
        )
        self.prescriptions = MemberPrescriptions(network, signed, self._reads, self.records)
        self.research = ResearcherStudies(network, keys, signed.studies)
        self.claims = MemberClaims(network, signed, self._reads)
        self.drugs = MemberDrugs(network, signed, self.state_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    @classmethod
    def from_keystore(
        cls, network: Network, keystore: Path, password: str, *, state_dir: Path, **options: Any
    ) -> Self:
        """Open a member keystore (``KeystoreError`` on a wrong password); ``options`` are
        the constructor's other keywords."""
        keys = load_member_keystore(keystore, password)
        return cls(network, keys, state_dir=state_dir, **options)

    @property
    def last_evidence(self) -> list[Path]:
        """Evidence files written by the last read (a proxy signed a bad cfrag)."""
        return self._reads.last_evidence

    # -- membership ---------------------------------------------------------------------

    def apply(self, endpoint: str = "") -> bool:
        """Publish this member's keys (and ``endpoint``); False if it is a member already."""
        if self.network.contracts.registry.role_of(self.address) is not Role.NONE:
            return False
        pub = self.keys.public_keys()
        self._contracts.registry.apply(pub.receiving_key_bytes, pub.box_key_bytes, endpoint)
        return True

    @property
    def role(self) -> Role:
        """This account's consortium role now (``Role.NONE`` before admission)."""
        return self.network.contracts.registry.role_of(self.address)

    def report_proxy(self, evidence_path: Path) -> int:
        """Publish an evidence file against its proxy (``ConsortiumRegistry.reportProxy``);
        returns the report id. The evidence is parsed first (:class:`InvalidEvidence`)."""
        evidence = read_evidence(Path(evidence_path))
        receipt = self._contracts.registry.report_proxy(evidence.proxy, bytes(evidence))
        return int(receipt.event(ProxyReported).report_id)

    # -- requests -------------------------------------------------------------------------

    def request_access(
        self,
        patient: str,
        category: str,
        *,
        purpose: str = "TREAT",
        reason: str = "",
        new_category: bool = False,
    ) -> int:
        """Ask ``patient`` for ``category``, for a FHIR PurposeOfUse (TREAT, HPAYMT, …).

        The category is normalized (:func:`~emrshare.categories.normalize_category`: a
        name outside the vocabulary, such as a custom category of the patient's, needs
        ``new_category``), the purpose too (``treat`` → ``TREAT``;
        :func:`~emrshare.categories.normalize_purpose`).

        Returns the request id. The category, purpose and reason are sealed to the
        patient's box key and padded to one size (:mod:`emrshare.crypto.requests`): the
        chain shows only that this member asked this patient something. A reason over
        :data:`~emrshare.crypto.requests.MAX_REASON_BYTES` UTF-8 bytes, a bad category
        or purpose (:class:`InvalidInput`), or an address with no patient profile on
        chain (:class:`NotFound`) is refused before any transaction is sent.
        """
        patient = checksum(patient)
        category = normalize_category(category, new_category=new_category)
        body = AccessRequestBody(
            patient=patient,
            requester=self.address,
            category=category,
            purpose=normalize_purpose(purpose),
            reason=reason,
            created_at=self.network.chain_time(),
        )
        profile = self._require_patient(patient)
        sealed = seal_request(PublicKey(bytes(profile.box_key)), body)
        receipt = self._contracts.grants.request_access(patient, sealed)
        request_id = int(receipt.event(AccessRequested).request_id)
        self._remember_request(request_id, body)
        return request_id

    def request_fhir_access(
        self,
        patient: str,
        resource_types: Sequence[str],
        category_codes: Sequence[str] = (),
        *,
        purpose: str = "TREAT",
        reason: str = "",
        mapping: CategoryMapping | None = None,
    ) -> dict[str, int]:
        """Ask for what FHIR names (``["Observation", "DiagnosticReport"]``, category
        code ``laboratory``): the types resolve through the importer's ``mapping``
        (:meth:`~emrshare.fhir.CategoryMapping.categories_for`) to categories, and one
        sealed :meth:`request_access` goes out per category. Returns category → request
        id. The chain shows only how many requests this member sent the patient."""
        found = (mapping or CategoryMapping.default()).categories_for(
            resource_types, category_codes
        )
        return {c: self.request_access(patient, c, purpose=purpose, reason=reason) for c in found}

    def _require_patient(self, patient: Address) -> PatientProfile:
        try:
            return self.network.contracts.profiles.profile(patient)
        except ContractRevert as exc:
            if exc.name != "PatientProfiles_NotRegistered":
                raise
            raise NotFound(
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
        private_dir(self.state_dir)
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
            status: AccessRequestStatus = "pending"
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

    # -- grants and records ----------------------------------------------------------------

    def grants(self, patient: str | None = None, *, active_only: bool = False) -> list[GrantInfo]:
        """Grants made to this member (by ``patient``), with their status on chain time."""
        status = self.network.contracts.grants.status
        out = []
        for ev, gmap in self._reads.grant_events(patient):
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
                    status=st,
                    block_number=ev.block_number,
                    records=tuple(RecordId(bytes(r)) for r in ev.records),
                )
            )
        return out

    def records(
        self, patient: str, category: str | None = None, *, open_entries: bool = False
    ) -> list[RecordInfo]:
        """The patient's records this member holds a grant for (any status), by category.

        Media type, size and creation time are inside each sealed entry: with
        ``open_entries`` the entries under active grants are opened through the proxies
        (one batched request per proxy and grant, logged on the patient's audit trail as
        one read of those records); otherwise they are ``None``.
        """
        details = open_granted_sync(self._reads, patient, category) if open_entries else {}
        return self._listed(patient, category, details)

    def record_id(self, patient: str, record: RecordId | bytes | str) -> RecordId:
        """The full id that ``record`` (an id, or a unique prefix of 8 or more hex digits
        among the records ``patient`` granted this member) names; :class:`AmbiguousId`
        or :class:`RecordNotFound` if it names several or none."""
        return RecordId(bytes(self._reads.entry_event(checksum(patient), record).record_id))

    def _listed(
        self, patient: str, category: str | None, details: Mapping[bytes, IndexEntry]
    ) -> list[RecordInfo]:
        """:meth:`records`, with the opened entries ``details`` (by record id)."""
        patient = checksum(patient)
        grants = self._reads.grant_events(patient)
        named = {bytes(ev.tag): (gmap.category, gmap.epoch) for ev, gmap in grants}
        shown = names_entry(ev for ev, _ in grants)
        if category is not None:
            name = normalize_category(category, known={c for c, _ in named.values()})
            named = {t: v for t, v in named.items() if v[0] == name}
        if not named:
            return []
        out = []
        for ev in self._reads.patient_chain(patient).values():
            if bytes(ev.tag) not in named or not shown(ev):
                continue
            cat, epoch = named[bytes(ev.tag)]
            entry = details.get(bytes(ev.record_id))
            out.append(
                RecordInfo(
                    record_id=RecordId(bytes(ev.record_id)),
                    patient=patient,
                    author=checksum(ev.author),
                    category=cat,
                    epoch=epoch,
                    tag=CategoryTag(bytes(ev.tag)),
                    block_number=ev.block_number,
                    media_type=entry.media_type if entry else None,
                    size=entry.size if entry else None,
                    created_at=entry.created_at if entry else None,
                    author_signature=entry.author_signature if entry else None,
                )
            )
        return out

    def close(self) -> None:
        """Release what this facade holds (nothing for a pure reader)."""
