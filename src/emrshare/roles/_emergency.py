"""Emergency (break-glass) declarations for the facades (issue 15): declare with a
justification sealed to the patient and the regulator, and list declarations with their
justifications opened, for the patient's notifications and the regulator's review."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from eth_utils.crypto import keccak
from nacl.public import PrivateKey, PublicKey

from emrshare._addresses import address_bytes
from emrshare.chain import (
    Contracts,
    Emergency,
    EmergencyAccessLogged,
    EmergencyDeclared,
    EmergencyOptInParams,
    EmergencyPolicyCreated,
    EmergencyReview,
    EmergencyStatus,
    Role,
)
from emrshare.crypto import MemberKeys, MemberPublicKeys, PatientKeys
from emrshare.crypto.emergency import (
    Cosignature,
    Justification,
    open_justification,
    seal_justification,
)
from emrshare.crypto.grants import make_grant
from emrshare.errors import ConfigurationError, CryptoError, WireFormatError
from emrshare.network import Network
from emrshare.roles._common import checksum
from emrshare.roles._emergency_cosign import check_cosignature, cosign
from emrshare.roles._emergency_optin import OptInLimits, check_opt_in, opt_in_epochs
from emrshare.roles._emergency_read import (
    EmergencyRead,
    EmergencyRecord,
    emergency_read,
    load_emergency_key,
)
from emrshare.roles._ops import member_public_keys
from emrshare.roles._reads import MembershipCache
from emrshare.types import CategoryTag, PolicyId

__all__ = [
    "EmergencyAccess",
    "EmergencyNotice",
    "EmergencyRead",
    "EmergencyRecord",
    "MemberEmergency",
    "PatientEmergency",
    "declare",
    "notices",
]


@dataclass(frozen=True, slots=True)
class EmergencyAccess:
    """One emergency serve a proxy logged on chain (``EmergencyAccessLogged``): which
    proxy re-encrypted how many records for the declaring clinician, in which block, at
    which chain time; ``category`` when the reader can name the tag (the patient)."""

    proxy: str
    block_number: int
    timestamp: int
    records: int
    category: str | None


@dataclass(frozen=True, slots=True)
class EmergencyNotice:
    """One emergency declaration as its patient or the regulator sees it: who (the
    clinician's account, a member: the hospital), when, why (``justification``, opened;
    ``None`` if it did not open as this declaration's), its status and review, and the
    serves the proxies logged under it (``accesses``: who read, when)."""

    declaration_id: int
    patient: str
    clinician: str
    cosigner: str | None
    reason_code: int
    purpose_of_use: str  # HL7 PurposeOfUse: ETREAT
    block_number: int
    ends_at: int  # unix seconds, chain time
    status: EmergencyStatus
    review: EmergencyReview
    justification: str | None
    accesses: tuple[EmergencyAccess, ...] = ()


def _notice(
    em: Emergency,
    ev: EmergencyDeclared,
    justification: str | None,
    accesses: tuple[EmergencyAccess, ...] = (),
) -> EmergencyNotice:
    """The notice of declaration ``ev``, its status and review read from chain now."""
    return EmergencyNotice(
        ev.declaration_id,
        ev.patient,
        ev.clinician,
        None if int(ev.cosigner, 16) == 0 else ev.cosigner,
        ev.reason_code,
        bytes(ev.purpose_of_use).rstrip(b"\0").decode(),
        ev.block_number,
        ev.ends_at,
        em.status(ev.declaration_id),
        em.declaration(ev.declaration_id).review,
        justification,
        accesses,
    )


def _accesses(
    network: Network, patient: str | None, categories: Mapping[bytes, str]
) -> dict[int, list[EmergencyAccess]]:
    em = network.contracts.emergency
    logs = (
        em.events(EmergencyAccessLogged)
        if patient is None
        else em.events(EmergencyAccessLogged, patient=checksum(patient))
    )
    out: dict[int, list[EmergencyAccess]] = {}
    for lg in logs:
        out.setdefault(lg.declaration_id, []).append(
            EmergencyAccess(
                lg.proxy,
                lg.block_number,
                network.chain.block_time(lg.block_number),
                len(lg.capsule_hashes),
                categories.get(bytes(lg.tag)),
            )
        )
    return out


def _regulator_box_key(network: Network) -> PublicKey:
    regulators = [
        m
        for m in network.contracts.registry.all_members()
        if m.role is Role.REGULATOR and m.suspended_at == 0
    ]
    if not regulators:
        raise ConfigurationError(
            "the consortium has no active regulator to seal the justification to; "
            "ask the admins to admit one"
        )
    return PublicKey(bytes(regulators[0].box_key))


def declare(
    network: Network,
    signed: Contracts,
    clinician: str,
    patient: str,
    reason_code: int,
    justification: str,
    cosignature: Cosignature | None = None,
) -> int:
    """Declare an emergency for ``patient`` as ``clinician`` (with a second clinician's
    ``cosignature`` if given); returns the declaration id."""
    patient = checksum(patient)
    if cosignature is not None:
        check_cosignature(cosignature, clinician, patient, reason_code, network.chain_time())
    box = PublicKey(bytes(network.contracts.profiles.profile(patient).box_key))
    j = Justification(patient, checksum(clinician), reason_code, justification)
    for_patient, for_regulator = seal_justification(
        j, patient_box_key=box, regulator_box_key=_regulator_box_key(network)
    )
    if cosignature is None:
        r = signed.emergency.declare(patient, reason_code, for_patient, for_regulator)
    else:
        r = signed.emergency.declare(
            patient,
            reason_code,
            for_patient,
            for_regulator,
            cosigner=cosignature.cosigner,
            cosign_deadline=cosignature.deadline,
            cosignature=cosignature.signature,
        )
    return int(r.event(EmergencyDeclared).declaration_id)


def notices(
    network: Network,
    box_private_key: PrivateKey,
    *,
    patient: str | None,
    regulator: bool,
    categories: Mapping[bytes, str] | None = None,
) -> list[EmergencyNotice]:
    """Declarations (of ``patient``, or all), newest first, justifications opened with
    ``box_private_key`` (the patient's copy, or with ``regulator`` the regulator's), each
    with its logged serves (``categories`` names their tags)."""
    em = network.contracts.emergency
    served = _accesses(network, patient, categories or {})
    events = (
        em.events(EmergencyDeclared)
        if patient is None
        else em.events(EmergencyDeclared, patient=checksum(patient))
    )
    out: list[EmergencyNotice] = []
    for ev in events:
        sealed = ev.sealed_for_regulator if regulator else ev.sealed_for_patient
        try:
            text: str | None = open_justification(
                box_private_key,
                sealed,
                patient=ev.patient,
                clinician=ev.clinician,
                reason_code=ev.reason_code,
            ).text
        except (CryptoError, WireFormatError):
            text = None
        out.append(_notice(em, ev, text, tuple(served.get(ev.declaration_id, ()))))
    return sorted(out, key=lambda n: -n.declaration_id)


class PatientEmergency:
    """A patient's side of emergency access (``patient.emergency``).

    Example::

        for n in patient.emergency.notifications():
            print(n.clinician, n.justification)
        patient.emergency.end(n.declaration_id)
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        signed: Contracts,
        epochs: Callable[[], Mapping[str, int]],
    ) -> None:
        self.network = network
        self.keys = keys
        self.signed = signed
        self._epochs = epochs

    def opt_in(
        self,
        categories: Sequence[str],
        window: timedelta,
        *,
        threshold: int | None = None,
    ) -> int:
        """Opt in to emergency access of ``categories`` for ``window`` per declaration:
        kfrags of **every epoch** of each category (records written before a revocation
        moved it on stay readable in an emergency) and of the next epoch go, sealed, to
        every active proxy (M = ``threshold``, default a majority), towards the consortium
        emergency key published in the Emergency contract. Replaces an earlier opt-in;
        returns its generation. :class:`ConfigurationError` if the keys are not published
        yet; :class:`InvalidInput` (before anything is sent) for a window outside 1 s ..
        7 days, more category epochs than one opt-in holds, or a threshold outside 1 ..
        the active proxies.

        **Warning:** a category moved on two epochs or more after the opt-in has records
        the opt-in does not cover: opt in again after revoking grants (an emergency read
        flags it, :attr:`EmergencyRead.may_be_incomplete`)."""
        em = self.network.contracts.emergency
        umbral, box = em.emergency_keys()
        if not umbral:
            raise ConfigurationError(
                "the consortium has not published its emergency keys yet; ask the admins"
            )
        grantee = MemberPublicKeys(checksum(em.address), umbral, box)
        proxies = self.network.proxies()
        m = len(proxies) // 2 + 1 if threshold is None else threshold
        pairs = opt_in_epochs(categories, self._epochs())
        limits = OptInLimits(em.max_tags(), em.max_proxies(), em.max_window())
        seconds = check_opt_in(pairs, window, len(proxies), m, limits)
        tags: list[CategoryTag] = []
        kfrags: list[bytes] = []
        maps: list[bytes] = []
        for category, epoch in pairs:
            tag = self.keys.tag(category, epoch)
            made = make_grant(
                self.keys,
                category=category,
                epoch=epoch,
                policy_id=PolicyId(keccak(bytes(tag) + address_bytes(self.keys.address))),
                grantee=grantee,
                proxies=[member_public_keys(p) for p in proxies],
                threshold=m,
            )
            tags.append(tag)
            kfrags += made.sealed_kfrags
            maps.append(made.sealed_grantee_map)
        params = EmergencyOptInParams(tags, seconds, [p.account for p in proxies], m, kfrags, maps)
        return int(self.signed.emergency.opt_in(params).event(EmergencyPolicyCreated).generation)

    def notifications(self) -> list[EmergencyNotice]:
        """Emergency declarations for this patient, newest first: who (clinician, a
        member: the hospital), when, until when, why (the justification, opened), status
        and review, and each serve the proxies logged under it (``accesses``: which
        proxy, when, how many records of which category)."""
        epochs = self._epochs()
        tags = {bytes(self.keys.tag(c, e)): c for c, e in opt_in_epochs(list(epochs), epochs)}
        return notices(
            self.network,
            self.keys.box_private_key,
            patient=self.keys.address,
            regulator=False,
            categories=tags,
        )

    def end(self, declaration_id: int) -> None:
        """End an active declaration early (``Emergency_NotActive`` if it is not)."""
        self.signed.emergency.end(declaration_id)

    def withdraw(self) -> None:
        """Withdraw the opt-in: its declarations stop being served and the proxies delete
        its kfrags (``Emergency_NotOptedIn`` if there is none)."""
        self.signed.emergency.withdraw()


class MemberEmergency:
    """A member's side of emergency access (``member.emergency``): a clinician declares
    and reads, the regulator reviews. Reading needs the consortium emergency key, a file
    the member hospital's emergency service holds (``key_file``, 0600; the facades'
    ``emergency_key_file=``).

    Example::

        did = hospital.emergency.declare(patient, 1, "unconscious, allergy check")
        for rec in hospital.emergency.read(did, "allergies"):
            print(rec.record_id, rec.media_type, rec.content[:60])
        regulator.emergency.mark(did, EmergencyReview.REVIEWED)
    """

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        signed: Contracts,
        key_file: Path | None = None,
        *,
        members: MembershipCache | None = None,
    ) -> None:
        self.network = network
        self.keys = keys
        self.signed = signed
        self.key_file = None if key_file is None else Path(key_file)
        self._members = members or MembershipCache(network.contracts.registry)
        self._emergency_keys: MemberKeys | None = None

    def read(self, declaration_id: int, category: str) -> EmergencyRead:
        """Every record of ``category`` (of every epoch the opt-in covers; a sequence of
        :class:`EmergencyRecord`, flagged ``may_be_incomplete`` with a ``warning`` when
        the patient may have moved the category past the opt-in) of the declaration's
        patient, while the
        declaration this member declared is active: capsule fragments from M of the
        opt-in's proxies (each request signed by this member, each serve logged on chain
        by the proxies), verified and decrypted with the consortium emergency key.
        :class:`EmergencyRefused` when the proxies refuse (``name``: their reason, e.g.
        ``declaration_expired``, ``declaration_ended``, ``declaration_withdrawn``,
        ``not_declarer``, ``clinician_not_capable``) or the opt-in does not open the category
        (``category_not_opted_in``); :class:`ConfigurationError` without a key file."""
        if self._emergency_keys is None:
            if self.key_file is None:
                raise ConfigurationError(
                    "this member holds no consortium emergency key; pass the key file your "
                    "hospital's emergency service keeps (emergency_key_file=)"
                )
            self._emergency_keys = load_emergency_key(self.key_file)
        return emergency_read(
            self.network,
            self.keys.ethereum_key,
            self._emergency_keys,
            self._members,
            declaration_id,
            category,
        )

    def declarations(self) -> list[EmergencyNotice]:
        """This member's own declarations, newest first, with their status on chain time
        (the justification is sealed to the patient and the regulator only: ``None``)."""
        em = self.network.contracts.emergency
        out = [
            _notice(em, ev, None)
            for ev in em.events(EmergencyDeclared, clinician=self.keys.address)
        ]
        return sorted(out, key=lambda n: -n.declaration_id)

    def cosign(
        self,
        clinician: str,
        patient: str,
        reason_code: int,
        *,
        valid_for: timedelta = timedelta(minutes=10),
    ) -> Cosignature:
        """Co-sign ``clinician``'s emergency declaration for ``patient`` (this member: a
        second Provider with the EMERGENCY capability). The result (``.hex()`` to pass it
        on as text) backs one declaration with that ``reason_code``, within ``valid_for``
        of chain time (at most 15 minutes)."""
        return cosign(
            self.network,
            self.keys.ethereum_key,
            self.keys.address,
            clinician,
            patient,
            reason_code,
            valid_for,
        )

    def declare(
        self,
        patient: str,
        reason_code: int,
        justification: str,
        *,
        cosignature: Cosignature | None = None,
    ) -> int:
        """Declare an emergency for ``patient`` (this member must be an active Provider
        holding the EMERGENCY capability; the patient must have opted in); the free-text
        ``justification`` is sealed to the patient and to the regulator. Returns the
        declaration id; raises :class:`EmergencyRefused` (``Emergency_NotCapable``,
        ``Emergency_NotProvider``, ``Emergency_NotOptedIn``, ``Emergency_CoolDown``, …)
        saying what to do. ``cosignature``: a second clinician's :meth:`cosign` of this
        declaration (required where the consortium requires co-signatures)."""
        return declare(
            self.network,
            self.signed,
            self.keys.address,
            patient,
            reason_code,
            justification,
            cosignature,
        )

    def review(self) -> list[EmergencyNotice]:
        """Every declaration, newest first, justification opened with this member's box
        key (the regulator's copy)."""
        return notices(self.network, self.keys.box_private_key, patient=None, regulator=True)

    def mark(self, declaration_id: int, verdict: EmergencyReview) -> None:
        """Mark a declaration reviewed or disputed (an active Regulator only)."""
        self.signed.emergency.review(declaration_id, verdict)
