"""A patient's guardians: name one (sealing it a key bundle), list them, withdraw one, and
see every action a guardian took in the patient's name (from the forwarder's ``Relayed``
events). The guardian's own side is :mod:`emrshare.roles.guardian`; the design and its
limits are in docs/threat-model.md ("Guardians")."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from nacl.public import PublicKey

from emrshare.categories import normalize_category
from emrshare.chain import (
    AccessRequestAnswered,
    Contracts,
    GrantCreated,
    GrantRevokedEvent,
    Grants,
    GuardianSet,
    Relayed,
)
from emrshare.crypto import PatientKeys
from emrshare.crypto.guardian import seal_guardian_bundle
from emrshare.errors import (
    ContractRevert,
    EmrShareError,
    GuardianshipEnded,
    InvalidInput,
    NotDelegated,
    NotFound,
)
from emrshare.network import Network
from emrshare.roles._common import GrantInfo, checksum, readable_repr
from emrshare.roles._grants import Expiry, checked_expiry, grant_info
from emrshare.types import Address, PolicyId

__all__ = [
    "GuardianAction",
    "GuardianInfo",
    "PatientGuardians",
    "grant_infos",
    "guardian_error",
    "guardian_signers",
]

#: What a guardian may do in the patient's name: the Grants functions the forwarder lets
#: it call (``PatientForwarder._checkSigner``).
_ACTIONS = {
    "grant": "grant",
    "revoke": "revoke",
    "revokeTag": "revoke_tag",
    "answerRequest": "answer",
}


@functools.cache
def _action_names() -> dict[bytes, str]:
    """Selector → action name, from the shipped Grants ABI."""
    return {Grants.selector(fn): name for fn, name in _ACTIONS.items()}


GuardianStatus = Literal["active", "ended", "withdrawn"]


@dataclass(frozen=True, slots=True)
class GuardianInfo:
    """A guardian the patient named: until when (unix seconds, chain time), at which block
    it was (last) named, and whether it acts now (``active``), its date passed
    (``ended``) or the patient withdrew it (``withdrawn``)."""

    __repr__ = readable_repr

    guardian: Address
    until: int
    named_at_block: int
    status: GuardianStatus

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class GuardianAction:
    """One operation a guardian ran in the patient's name (``action``: ``grant``,
    ``revoke``, ``revoke_tag`` or ``answer``), with the grants it made or revoked and the
    request it answered."""

    __repr__ = readable_repr

    guardian: Address
    action: str
    policy_ids: tuple[PolicyId, ...]
    request_id: int | None
    nonce: int
    block_number: int
    tx_hash: bytes


def _guardian_relays(network: Network, patient: str) -> list[Relayed]:
    """The forwarded operations of ``patient`` that a guardian it named signed."""
    fwd = network.contracts.forwarder
    named = {checksum(ev.guardian) for ev in fwd.events(GuardianSet, patient=patient)}
    if not named:
        return []
    return list(fwd.events(Relayed, patient=patient, signer=sorted(named)))


def guardian_signers(network: Network, patient: str) -> dict[bytes, Address]:
    """The transactions a guardian of ``patient`` signed: tx hash → guardian."""
    return {bytes(ev.tx_hash): checksum(ev.signer) for ev in _guardian_relays(network, patient)}


def grant_infos(
    network: Network,
    patient: str,
    events: Iterable[GrantCreated],
    tags: Mapping[bytes, tuple[str, int]],
) -> list[GrantInfo]:
    """The patient's grants as :meth:`Patient.grants` lists them, each with ``by``: the
    guardian whose signed request made it (``None``: the patient)."""
    by = guardian_signers(network, patient)
    return [grant_info(network, ev, tags, None, by.get(bytes(ev.tx_hash))) for ev in events]


def guardian_error(exc: ContractRevert, patient: str, guardian: str) -> EmrShareError:
    """The typed error for a forwarder refusal of a guardian's request (or ``exc``)."""
    name = exc.name or ""
    if name == "PatientForwarder_InvalidSigner":
        return GuardianshipEnded(
            f"{guardian} is not (or no longer) a guardian of {patient}: the patient withdrew "
            "or never named it; ask the patient to name you again",
            {"chain": "withdrawn"},
        )
    if name == "PatientForwarder_GuardianshipEnded":
        return GuardianshipEnded(
            f"the guardianship of {guardian} for {patient} has ended (its date passed); ask "
            "the patient to renew it",
            {"chain": "ended"},
        )
    if name == "PatientForwarder_NotDelegated":
        return NotDelegated(
            f"a guardian may only grant, revoke and answer requests for {patient}; the patient "
            "does the rest",
            {"chain": "not_delegated"},
        )
    return exc


class PatientGuardians:
    """``Patient.guardians``: name, list and withdraw guardians; their actions.

    ``signed`` are the patient's contracts (direct or relayed); ``epochs`` gives the
    patient's current epochs (the categories it can name).
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

    def __repr__(self) -> str:
        return f"PatientGuardians({self.keys.address})"

    def add(
        self, guardian: str, *, until: Expiry, categories: Iterable[str] | None = None
    ) -> GuardianInfo:
        """Name ``guardian`` (a registered patient profile: a person with their own keys)
        until ``until`` (as a grant's ``expires``), for ``categories`` (default: every
        category this patient has), sealing it the keys of every epoch up to the current
        one. Naming it again renews it with the current epochs (do so after a revocation
        moved a category to a new epoch)."""
        who = checksum(guardian)
        if who == self.keys.address:
            raise InvalidInput("a patient cannot be its own guardian; name another person")
        profiles = self.network.contracts.profiles
        if not profiles.is_registered(who):
            raise NotFound(
                f"{who} has no patient profile on chain; the guardian registers one first "
                "(with their own keys), then name them again"
            )
        known = dict(self._epochs())
        names = (
            sorted(known)
            if categories is None
            else sorted({normalize_category(c, known=known) for c in categories})
        )
        unused = [c for c in names if c not in known]
        if unused:
            raise InvalidInput(
                f"this patient has no {unused[0]!r} records or writers yet, so there is no key "
                "to hand over; name categories it uses"
            )
        if not names:
            raise InvalidInput(
                "this patient has no categories yet: authorize a writer or add a record first"
            )
        at = checked_expiry(self.network, until)
        sealed = seal_guardian_bundle(
            self.keys,
            guardian=who,
            guardian_box_key=PublicKey(bytes(profiles.profile(who).box_key)),
            epochs={c: known[c] for c in names},
        )
        self.signed.forwarder.set_guardian(who, at, sealed)
        return self.get(who)

    def get(self, guardian: str) -> GuardianInfo:
        """One guardian as :meth:`list` shows it (:class:`NotFound` if never named)."""
        who = checksum(guardian)
        for g in self.all():
            if g.guardian == who:
                return g
        raise NotFound(f"{who} was never named a guardian of {self.keys.address}")

    def all(self) -> list[GuardianInfo]:
        """Every guardian ever named, in the order first named."""
        fwd = self.network.contracts.forwarder
        end = self.network.chain.latest_block()
        order: dict[Address, None] = {}
        for ev in fwd.events(GuardianSet, patient=self.keys.address, to_block=end):
            order.setdefault(checksum(ev.guardian), None)
        now = self.network.chain_time()
        out = []
        for who in order:
            until, since = fwd.guardian_of(self.keys.address, who, block=end)
            if since == 0:
                last = list(fwd.events(GuardianSet, patient=self.keys.address, guardian=who))
                out.append(GuardianInfo(who, last[-1].until, last[-1].block_number, "withdrawn"))
            else:
                out.append(GuardianInfo(who, until, since, "active" if until > now else "ended"))
        return out

    def withdraw(self, guardian: str) -> None:
        """End ``guardian``'s guardianship now: its next action reverts. It keeps what it
        already read: revoke its grants and move categories to new epochs if needed."""
        who = checksum(guardian)
        try:
            self.signed.forwarder.withdraw_guardian(who)
        except ContractRevert as exc:
            if exc.name != "PatientForwarder_NotGuardian":
                raise
            raise NotFound(
                f"{who} is not a guardian of {self.keys.address} (never named, or already "
                "withdrawn); see the guardian list"
            ) from exc

    def actions(self) -> list[GuardianAction]:
        """Every operation a guardian ran in this patient's name, oldest first."""
        relays = _guardian_relays(self.network, self.keys.address)
        if not relays:
            return []
        me = self.keys.address
        grants = self.network.contracts.grants
        policies: dict[bytes, list[PolicyId]] = {}
        for made in grants.events(GrantCreated, patient=me):
            policies.setdefault(made.tx_hash, []).append(PolicyId(bytes(made.policy_id)))
        for gone in grants.events(GrantRevokedEvent, patient=me):
            policies.setdefault(gone.tx_hash, []).append(PolicyId(bytes(gone.policy_id)))
        answered = {
            bytes(ev.tx_hash): ev.request_id
            for ev in grants.events(AccessRequestAnswered, patient=me)
        }
        out = []
        for ev in relays:
            tx = bytes(ev.tx_hash)
            out.append(
                GuardianAction(
                    checksum(ev.signer),
                    _action_names().get(bytes(ev.selector), "other"),
                    tuple(policies.get(tx, ())),
                    answered.get(tx),
                    ev.nonce,
                    ev.block_number,
                    tx,
                )
            )
        return out
