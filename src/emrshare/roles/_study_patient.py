"""``patient.studies``: list the research studies, join one (grants to its
de-identification service, and the participant key's proof the service puts on chain),
leave it (the study's grants revoked, the leave on chain), and see the points earned."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain import GrantStatus, ParticipantKey, StudyPublished
from emrshare.crypto import PatientKeys
from emrshare.crypto.entry import sign_eip191
from emrshare.errors import InvalidInput, NotFound, StudyServiceError
from emrshare.network import Network
from emrshare.roles._common import GrantInfo, readable_repr
from emrshare.roles._grants import Expiry
from emrshare.roles._research import (
    StudyInfo,
    grant_expiry,
    join_body,
    join_digest,
    leave_body,
    needs_categories,
    parse_study_id,
    post_to_service,
    study_info,
)
from emrshare.types import PolicyId

__all__ = ["LeftStudy", "PatientStudies"]

_FILE = "studies.json"


class _Granting(Protocol):
    """What :class:`PatientStudies` needs of the patient facade."""

    def categories(self) -> list[str]: ...
    def grant(
        self, grantee: str, category: str, *, expires: Expiry, all_epochs: bool = True
    ) -> GrantInfo: ...
    def grants(self, *, active_only: bool = False) -> list[GrantInfo]: ...
    def revoke(self, policy: PolicyId | bytes | str, *, new_epoch: bool = True) -> None: ...


@dataclass(frozen=True, slots=True)
class LeftStudy:
    """What leaving a study did: the grants it revoked, and whether the leave is on chain
    (``False``: the service was unreachable; it releases nothing of yours anyway, since
    the grants are revoked, and ``leave`` again puts it on chain)."""

    __repr__ = readable_repr

    study_id: bytes
    revoked: tuple[PolicyId, ...]
    left_on_chain: bool


class PatientStudies:
    """The research studies from a patient's side (``patient.studies``).

    Example::

        for s in patient.studies.list(open_only=True):
            print(s.study_id.hex(), s.needs, s.ends_at)
        patient.studies.join(study_id)     # grants the study's service, not the researcher
        patient.studies.points(study_id)   # incentive points earned so far
        patient.studies.leave(study_id)    # later releases leave you out

    **Warning:** what a study released while you were in it stays with its researcher:
    leaving stops later releases only.
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        patient: _Granting,
        state_dir: Path,
        *,
        timeout: float = 60.0,
    ) -> None:
        self._net = network
        self._keys = keys
        self._patient = patient
        self._file = Path(state_dir) / _FILE
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"PatientStudies({self._keys.address})"

    @property
    def _studies(self) -> Any:
        return self._net.contracts.studies

    def participant(self, study: bytes | str) -> str:
        """This patient's participant address in ``study`` (derived; nobody else can link
        it to the patient)."""
        return self._key(parse_study_id(study)).address

    def list(self, *, open_only: bool = False) -> builtins.list[StudyInfo]:
        """Every published study (oldest first), with whether this patient is in it and
        its points."""
        out = []
        for ev in self._studies.events(StudyPublished):
            sid = bytes(ev.study_id)
            mine = self._studies.participant(sid, self._key(sid).address)
            info = study_info(self._studies, ev, joined=mine.joined, points=mine.points)
            if not open_only or info.open:
                out.append(info)
        return out

    def show(self, study: bytes | str) -> StudyInfo:
        """One study; :class:`NotFound` if none has that id."""
        sid = parse_study_id(study)
        ev = self._studies.published_event(sid)
        if ev is None:
            raise NotFound(f"no study 0x{sid.hex()} was published; list them with studies.list()")
        mine = self._studies.participant(sid, self._key(sid).address)
        return study_info(self._studies, ev, joined=mine.joined, points=mine.points)

    def points(self, study: bytes | str) -> int:
        """The incentive points this patient earned in ``study`` (kept after leaving)."""
        sid = parse_study_id(study)
        return int(self._studies.participant(sid, self._key(sid).address).points)

    def join(
        self, study: bytes | str, *, progress: Callable[[str], None] | None = None
    ) -> StudyInfo:
        """Join ``study``: grant its de-identification service each category it needs that
        this patient has, until the study ends (rounded up to :data:`GRANT_BUCKET`, so the
        expiry does not name the study; grants this call made before are reused: the same
        call after an interruption resumes), then hand the service the participant key's
        proof, which it puts on chain. Checked on chain before it returns. Joining again
        while in the study re-sends the grants (after a lost answer, or to renew them).

        :class:`InvalidInput` if the study is not open or this patient has none of its
        categories; :class:`StudyServiceError` if the service refuses or is down."""
        say = progress or (lambda _line: None)
        info = self.show(study)
        if not info.open:
            raise InvalidInput(
                f"study 0x{info.study_id.hex()} is {info.status.value}; it takes no joins"
            )
        wanted = set(needs_categories(info.needs)) & set(self._patient.categories())
        if not wanted:
            raise InvalidInput(
                f"you have no records in the categories study 0x{info.study_id.hex()[:12]}… "
                f"needs ({', '.join(needs_categories(info.needs))}); nothing to join with"
            )
        policies = self._grants_for(info, sorted(wanted), say)
        key = self._key(info.study_id)
        nonce = self._studies.nonce(info.study_id, key.address)
        chain_id, contract = self._net.w3.eth.chain_id, self._studies.address
        proof = key.join_proof(info.study_id, nonce, chain_id, contract)
        digest = join_digest(
            chain_id, contract, info.study_id, key.address, self._keys.address, policies
        )
        body = join_body(
            info.study_id,
            key.address,
            proof,
            self._keys.address,
            policies,
            sign_eip191(digest, self._keys.ethereum_key)[0],
            key.sign(digest),
        )
        say(f"asking the study's service to add participant {key.address}")
        post_to_service(self._endpoint(info.service), "/v1/join", body, timeout=self._timeout)
        joined = self.show(info.study_id)
        if not joined.joined:
            raise StudyServiceError(
                "not_landed",
                "the study's service said it added you, but the chain does not show it; join again",
            )
        return joined

    def leave(self, study: bytes | str, *, new_epoch: bool = True) -> LeftStudy:
        """Leave ``study``: revoke the grants made for it (``new_epoch``: the categories
        move to a new epoch, as :meth:`Patient.revoke` does) and have the service put the
        leave on chain. Later releases leave this patient out; earlier ones cannot be
        taken back.

        Only the grants this device recorded for the study are revoked (joined from
        another device: revoke them there, or with ``Patient.revoke``).

        **Warning:** as every revocation does, it revokes all of the service's grants of
        those categories: those made for another study of the same service (join it
        again) and, if the service is a hospital that also treats you, its care grants of
        those categories (grant them again)."""
        sid = parse_study_id(study)
        info = self.show(sid)
        revoked: builtins.list[PolicyId] = []
        for g in self._study_grants(info):
            # Revoking one grant revokes the grantee's other active grants of that category
            # too (Patient.revoke): only those still active are revoked here.
            if self._net.contracts.grants.status(g.policy_id) is GrantStatus.ACTIVE:
                self._patient.revoke(g.policy_id, new_epoch=new_epoch)
            revoked.append(g.policy_id)
        self._forget(sid)
        key = self._key(sid)
        on_chain = not self._studies.participant(sid, key.address).joined
        if not on_chain:
            chain_id, contract = self._net.w3.eth.chain_id, self._studies.address
            proof = key.leave_proof(sid, self._studies.nonce(sid, key.address), chain_id, contract)
            try:
                post_to_service(
                    self._endpoint(info.service),
                    "/v1/leave",
                    leave_body(sid, key.address, proof),
                    timeout=self._timeout,
                )
                on_chain = not self._studies.participant(sid, key.address).joined
            except StudyServiceError:
                on_chain = False
        return LeftStudy(study_id=sid, revoked=tuple(revoked), left_on_chain=on_chain)

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, study_id: bytes) -> ParticipantKey:
        return ParticipantKey(self._keys.study_participant_secret(study_id))

    def _endpoint(self, service: str) -> str:
        return str(self._net.contracts.registry.member(service).endpoint)

    def _grants_for(
        self, info: StudyInfo, categories: builtins.list[str], say: Callable[[str], None]
    ) -> builtins.list[PolicyId]:
        """The active grants this flow made for the study (recorded on this device),
        granting what is missing; never a grant made for something else (a care grant to
        the same member, another study)."""
        recorded = {bytes(p) for p in self._recorded(info.study_id)}
        every = self._patient.grants()
        seen = {bytes(g.policy_id) for g in every}
        mine = [
            g
            for g in every
            if g.active and g.grantee == info.service and bytes(g.policy_id) in recorded
        ]
        for category in categories:
            if any(g.category == category for g in mine):
                continue
            say(f"granting {category} to the study's service until the study ends")
            self._patient.grant(
                info.service, category, expires=grant_expiry(info.ends_at), all_epochs=True
            )
            every = self._patient.grants()
            mine += [
                g
                for g in every
                if g.active
                and g.grantee == info.service
                and g.category == category
                and not g.records
                and bytes(g.policy_id) not in seen
            ]
            seen |= {bytes(g.policy_id) for g in every}
            self._record(info.study_id, [g.policy_id for g in mine])
        return [g.policy_id for g in mine]

    def _study_grants(self, info: StudyInfo) -> builtins.list[GrantInfo]:
        """The active grants this device recorded for the study (none: another device
        joined; revoke those with ``Patient.revoke``)."""
        recorded = {bytes(p) for p in self._recorded(info.study_id)}
        return [
            g
            for g in self._patient.grants(active_only=True)
            if g.grantee == info.service and bytes(g.policy_id) in recorded
        ]

    def _state(self) -> dict[str, Any]:
        if not self._file.exists():
            return {}
        return read_json_object(self._file, "the patient's studies file")

    def _recorded(self, study_id: bytes) -> builtins.list[bytes]:
        entry = self._state().get(study_id.hex(), {})
        return [bytes.fromhex(p) for p in entry.get("policies", []) if isinstance(p, str)]

    def _record(self, study_id: bytes, policies: builtins.list[PolicyId]) -> None:
        state = self._state()
        state[study_id.hex()] = {"policies": [bytes(p).hex() for p in policies]}
        private_dir(self._file.parent)
        write_atomically(self._file, _dump(state))

    def _forget(self, study_id: bytes) -> None:
        state = self._state()
        if state.pop(study_id.hex(), None) is not None:
            write_atomically(self._file, _dump(state))


def _dump(state: dict[str, Any]) -> str:
    return json.dumps(state, indent=1, sort_keys=True) + "\n"
