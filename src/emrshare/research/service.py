"""The de-identification service of research studies: a consortium member's process that
adds participants (their proofs, on chain), reads the records they granted it, removes
the HIPAA Safe Harbor identifiers and releases the dataset sealed to the researcher.

Nothing in a request is trusted before it is checked: a join names a patient, its grants
and a participant, and is refused unless the patient's account signed it, every grant is
the patient's, to this service, active, of the whole category and of a category the study
needs; the participant key's proof is checked by the contract. A release request is
refused unless the study's researcher signed it within its deadline. Every refusal is a
4xx answer with a machine-readable ``error``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from nacl.public import PublicKey

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain import DatasetReleased, StudyStatus
from emrshare.crypto import MemberKeys
from emrshare.crypto.entry import recover_eip191
from emrshare.crypto.sealing import seal
from emrshare.errors import ContractRevert, EmrShareError, InvalidInput
from emrshare.fhir.deid import DEID_PROFILES, Deidentifier, profile_id
from emrshare.network import Network
from emrshare.roles import Requester
from emrshare.roles._research import (
    DATASET_BRAND,
    RELEASE_TTL,
    dataset_bytes,
    join_digest,
    needs_categories,
    needs_types,
    release_digest,
)

__all__ = ["Answer", "DeidService", "Refused"]

log = logging.getLogger("emrshare.research")

#: Most grants one join may name.
MAX_POLICIES = 64
#: Most participants one release credits (``Studies.MAX_CREDITED``).
MAX_CREDITED = 512
_STATE = "participants.json"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: ``status`` and JSON ``body``."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """A request the service refuses: HTTP ``status`` with ``reason`` and ``detail``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        self.status, self.reason, self.detail = status, reason, detail
        super().__init__(detail)

    def answer(self) -> Answer:
        return Answer(self.status, {"error": self.reason, "detail": self.detail})


def _hex(body: Mapping[str, Any], key: str, size: int) -> bytes:
    value = body.get(key)
    if not isinstance(value, str) or len(value) > 2 + 2 * size:
        raise Refused(400, "bad_request", f"{key} must be 0x-hex of {size} bytes")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise Refused(400, "bad_request", f"{key} must be 0x-hex of {size} bytes")
    return raw


def _address(body: Mapping[str, Any], key: str) -> str:
    return to_checksum_address(_hex(body, key, 20))


def parse_body(raw: bytes, keys: set[str]) -> dict[str, Any]:
    """A JSON object with exactly ``keys``; :class:`Refused` (400) otherwise."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(400, "bad_request", "the body is not JSON") from None
    if not isinstance(body, dict) or set(body) != keys:
        raise Refused(400, "bad_request", f"the body is a JSON object of {', '.join(sorted(keys))}")
    return body


class DeidService:
    """One de-identification service: ``keys`` is its member identity (the grantee of the
    participants' grants), ``state_dir`` keeps who joined with which grants (0600)."""

    def __init__(
        self,
        network: Network,
        keys: MemberKeys,
        state_dir: Path,
        *,
        points_per_release: int = 10,
    ) -> None:
        self.network = network
        self.keys = keys
        self.address = keys.address
        self.state_dir = private_dir(Path(state_dir))
        self.points = points_per_release
        self._reader = Requester(network, keys, state_dir=self.state_dir / "reader")
        self._studies = network.contracts_for(keys.ethereum_key).studies
        self._lock = threading.Lock()  # the participants file and the lock table
        self._locks: dict[tuple[str, bytes], threading.Lock] = {}
        self._needs: dict[bytes, tuple[str, ...]] = {}  # a study's needs (its event's)

    def __repr__(self) -> str:
        return f"DeidService({self.address})"

    # -- requests ------------------------------------------------------------------------

    def health(self) -> Answer:
        """The service's account, chain and number of studies it serves participants of."""
        return Answer(
            200,
            {
                "service": self.address,
                "chain_id": self.network.w3.eth.chain_id,
                "studies": len(self._state()),
            },
        )

    def join(self, raw: bytes) -> Answer:
        """Add a participant: check that the patient's account and the participant key
        both signed the pairing, the patient's grants, one participant per patient; submit
        the participant's proof (unless the chain has it already); remember which grants
        serve it. Joining again (a lost answer, renewed grants) replaces the grants."""
        keys = {"study", "participant", "proof", "patient", "policies", "signature"}
        body = parse_body(raw, keys | {"participant_signature"})
        sid, proof = _hex(body, "study", 32), _hex(body, "proof", 65)
        participant, patient = _address(body, "participant"), _address(body, "patient")
        listed = body["policies"]
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_POLICIES:
            raise Refused(400, "bad_request", f"policies lists 1 to {MAX_POLICIES} grant ids")
        policies = [_hex({"p": p}, "p", 32) for p in listed]
        study = self._open_study(sid)
        digest = join_digest(
            self.network.w3.eth.chain_id, self._studies.address, sid, participant, patient,
            policies,
        )  # fmt: skip
        if recover_eip191(digest, _hex(body, "signature", 65)) != patient:
            raise Refused(403, "bad_signature", "the join is not signed by the patient's account")
        if recover_eip191(digest, _hex(body, "participant_signature", 65)) != participant:
            raise Refused(403, "bad_signature", "the join is not signed by the participant's key")
        self._check_grants(patient, policies, needs_categories(study["needs"]))
        with self._lock_of("join", sid):  # one patient, one participant: no two at once
            return self._joined(sid, participant, patient, policies, proof)

    def _joined(
        self, sid: bytes, participant: str, patient: str, policies: list[bytes], proof: bytes
    ) -> Answer:
        entries = self._state().get(sid.hex(), {})
        if any(e["patient"] == patient for p, e in entries.items() if p != participant):
            raise Refused(409, "already_participating", "this patient is in the study already")
        if not self._studies.participant(sid, participant).joined:
            try:
                self._studies.join(sid, participant, proof)
            except ContractRevert as exc:
                # Another sender may have put this very proof on chain first: that is a join.
                if not self._studies.participant(sid, participant).joined:
                    raise Refused(409, exc.name, str(exc)) from None
        with self._lock:
            state = self._state()
            state.setdefault(sid.hex(), {})[participant] = {
                "patient": patient,
                "policies": [p.hex() for p in policies],
            }
            self._write(state)
        log.info("study %s: participant %s joined", sid.hex()[:12], participant)
        return Answer(200, {"study": "0x" + sid.hex(), "participant": participant})

    def leave(self, raw: bytes) -> Answer:
        """Remove a participant (its proof, on chain) and forget its grants."""
        body = parse_body(raw, {"study", "participant", "proof"})
        sid, proof = _hex(body, "study", 32), _hex(body, "proof", 65)
        participant = _address(body, "participant")
        if self._studies.study(sid).service != self.address:
            raise Refused(404, "not_this_service", "this service does not serve that study")
        if self._studies.participant(sid, participant).joined:
            try:
                self._studies.leave(sid, participant, proof)
            except ContractRevert as exc:
                raise Refused(409, exc.name, str(exc)) from None
        with self._lock:
            state = self._state()
            state.get(sid.hex(), {}).pop(participant, None)
            self._write(state)
        return Answer(200, {"study": "0x" + sid.hex(), "participant": participant})

    def release_request(self, raw: bytes) -> Answer:
        """A release the study's researcher asked for (signed, before its deadline)."""
        body = parse_body(raw, {"study", "deadline", "signature"})
        sid, deadline = _hex(body, "study", 32), body["deadline"]
        now = int(time.time())
        if not isinstance(deadline, int) or not now <= deadline <= now + RELEASE_TTL + 60:
            raise Refused(
                400, "bad_deadline", f"the deadline must be within {RELEASE_TTL} s from now"
            )
        study = self._open_study(sid)
        number = study["releases"] + 1
        digest = release_digest(
            self.network.w3.eth.chain_id, self._studies.address, sid, number, deadline
        )
        if recover_eip191(digest, _hex(body, "signature", 65)) != study["researcher"]:
            raise Refused(
                403,
                "not_researcher",
                f"not the study's researcher's request for release {number} (its next): only "
                "the researcher asks, once per release",
            )
        lock = self._lock_of("release", sid)
        if not lock.acquire(blocking=False):
            raise Refused(429, "busy", "a release of this study is under way; ask again soon")
        try:
            return Answer(200, self.release(sid))
        finally:
            lock.release()

    # -- the release -------------------------------------------------------------------------

    def release(self, sid: bytes) -> dict[str, Any]:
        """Read, de-identify, seal to the researcher, store, and record on chain a dataset
        of every participant still in the study with an active grant."""
        study = self._open_study(sid)
        profile = next(
            (p for n, p in DEID_PROFILES.items() if profile_id(n) == study["profile"]), None
        )
        if profile is None:
            raise Refused(409, "unknown_profile", "the study names a profile this service lacks")
        types = sorted(needs_types(study["needs"])) or None
        deid = Deidentifier(profile, self._study_key(sid))
        rows: list[dict[str, Any]] = []
        credited, skipped = [], 0
        for participant, entry in sorted(self._state().get(sid.hex(), {}).items()):
            if not self._studies.participant(sid, participant).joined:
                continue
            found = self._read(entry["patient"], entry["policies"], types)
            if found is None:
                continue  # every grant revoked or expired: the patient left in effect
            for resource in found:
                try:
                    rows.append(deid.deidentify(as_participant(resource, participant)))
                except InvalidInput:
                    skipped += 1  # a type or element the profile has no rule for: left out
            credited.append(participant)
        if len(credited) > MAX_CREDITED:
            raise Refused(
                409,
                "too_many_participants",
                f"{len(credited)} participants are more than one release credits "
                f"({MAX_CREDITED}); this service does not split releases yet",
            )
        credited.sort(key=lambda a: int(a, 16))  # the contract takes them ascending
        researcher = self.network.contracts.registry.member(study["researcher"])
        sealed = seal(PublicKey(researcher.box_key), DATASET_BRAND, dataset_bytes(
            profile.name, sid, rows
        ))  # fmt: skip
        cid = self.network.store.put(sealed)
        r = self._studies.release(
            sid, str(cid), hashlib.sha256(sealed).digest(), len(rows), credited, self.points
        )
        number = r.event(DatasetReleased).release
        log.info(
            "study %s: release %d, %d resources, %d left out by the profile",
            sid.hex()[:12], number, len(rows), skipped,
        )  # fmt: skip
        return {
            "release": number,
            "cid": str(cid),
            "resources": len(rows),
            "participants": r.event(DatasetReleased).participants,
            "left_out": skipped,
        }

    def _read(
        self, patient: str, policies: list[str], types: list[str] | None
    ) -> list[dict[str, Any]] | None:
        granted = {
            bytes(g.policy_id).hex(): g for g in self._reader.grants(patient, active_only=True)
        }
        categories = sorted({str(granted[p].category) for p in policies if p in granted})
        if not categories:
            return None
        out: list[dict[str, Any]] = []
        for category in categories:
            models = self._reader.read_fhir(patient, category=category, resource_types=types)
            out += [json.loads(m.model_dump_json(exclude_none=True)) for m in models]
        return out

    # -- helpers -------------------------------------------------------------------------

    def _lock_of(self, kind: str, sid: bytes) -> threading.Lock:
        """The lock of ``kind`` (``join``, ``release``) of study ``sid``."""
        with self._lock:
            return self._locks.setdefault((kind, sid), threading.Lock())

    def _open_study(self, sid: bytes) -> dict[str, Any]:
        s = self._studies.study(sid)
        if s.status is StudyStatus.NONE:
            raise Refused(404, "unknown_study", "no study has that id")
        if s.service != self.address:
            raise Refused(404, "not_this_service", "this service does not serve that study")
        if s.status is not StudyStatus.OPEN:
            raise Refused(409, "study_not_open", f"the study is {s.status.value}")
        needs = self._needs.get(sid)
        if needs is None:  # the publication never changes: one log query per study
            ev = self._studies.published_event(sid)
            if ev is None:
                raise Refused(503, "not_indexed", "the study's publication is not readable yet")
            needs = self._needs[sid] = tuple(ev.needs)
        return {
            "needs": needs,
            "researcher": s.researcher,
            "profile": bytes(s.profile),
            "releases": s.releases,
        }

    def _check_grants(self, patient: str, policies: list[bytes], needed: list[str]) -> None:
        mine = {bytes(g.policy_id): g for g in self._reader.grants(patient, active_only=True)}
        for pid in policies:
            g = mine.get(pid)
            if g is None:
                raise Refused(
                    403,
                    "not_granted",
                    f"grant 0x{pid.hex()[:16]}… is not an active grant of the patient to "
                    "this service",
                )
            if g.records or g.category not in needed:
                raise Refused(
                    403,
                    "not_granted",
                    f"grant 0x{pid.hex()[:16]}… is not of a whole needed category",
                )

    def _study_key(self, sid: bytes) -> bytes:
        # The study's pseudonym and date-shift key: stable for this service and study,
        # unknown to the researcher (it never sees the service's keys).
        secret = bytes(self.keys.box_private_key)
        return hmac.new(secret, b"emrshare/deid-study-key/v1" + sid, hashlib.sha256).digest()

    def _state(self) -> dict[str, Any]:
        path = self.state_dir / _STATE
        return read_json_object(path, "the participants file") if path.exists() else {}

    def _write(self, state: dict[str, Any]) -> None:
        write_atomically(self.state_dir / _STATE, json.dumps(state, indent=1, sort_keys=True))


def as_participant(resource: dict[str, Any], participant: str) -> dict[str, Any]:
    """``resource`` with the patient named by ``participant`` (a ``Patient``'s id and every
    ``Patient/…`` reference): the pseudonym and the date shift then follow the
    participant, not a hospital's local patient id (two hospitals' ``Patient/1`` are two
    people; one patient's records from two hospitals are one)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            ref = out.get("reference")
            if isinstance(ref, str) and ref.startswith("Patient/"):
                out["reference"] = f"Patient/{participant}"
            if out.get("resourceType") == "Patient" and "id" in out:
                out["id"] = participant
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    walked: dict[str, Any] = walk(resource)
    return walked


def refusal_of(exc: EmrShareError) -> Answer:
    """A library error met while serving: a caller's or a study's bad data is 422
    ``invalid_data``; anything else (chain, store or proxies down) 503 ``unavailable``.
    Never a 500, never the error's internals."""
    if isinstance(exc, InvalidInput):
        return Answer(422, {"error": "invalid_data", "detail": type(exc).__name__})
    return Answer(503, {"error": "unavailable", "detail": type(exc).__name__})
