"""Research studies (issue 16): what a study is to a patient and to a researcher, the
signed messages the de-identification service takes, and the dataset a release holds.

A study names its needs: category names (``laboratory``) or FHIR resource types
(``Observation``, placed into categories by the default :class:`CategoryMapping`). A
patient joins by granting the study's de-identification service, never the researcher,
those categories until the study's end, and by a participant key's proof the service puts
on chain; the service reads, de-identifies, seals the dataset to the researcher and
credits each included participant with points.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from emrshare.categories import normalize_category
from emrshare.chain import Study, StudyPublished, StudyStatus
from emrshare.chain.bindings import Studies
from emrshare.errors import InvalidInput, StudyServiceError
from emrshare.fhir import CategoryMapping
from emrshare.roles._common import readable_repr
from emrshare.types import PolicyId

__all__ = [
    "DatasetInfo",
    "StudyDataset",
    "StudyInfo",
    "dataset_bytes",
    "grant_expiry",
    "join_body",
    "join_digest",
    "leave_body",
    "needs_categories",
    "needs_types",
    "normalized_needs",
    "parse_dataset",
    "parse_study_id",
    "post_to_service",
    "release_digest",
    "study_info",
]

#: The sealed-box brand of a study dataset (sealed to the researcher's box key).
DATASET_BRAND = b"EMDS"
#: How long a researcher's signed release request stays valid, in seconds.
RELEASE_TTL = 600
_JOIN = b"emrshare/study-join/v1"
_RELEASE = b"emrshare/study-release/v1"


@dataclass(frozen=True, slots=True)
class StudyInfo:
    """A study as the chain holds it. ``joined`` and ``points`` are the asking patient's
    (``None`` for anyone else)."""

    __repr__ = readable_repr

    study_id: bytes
    researcher: str
    service: str
    needs: tuple[str, ...]
    profile: bytes  # sha256 of the de-identification profile's name
    protocol: bytes  # the protocol document's commitment
    ethics: bytes  # the ethics approval reference's digest
    ends_at: int
    status: StudyStatus
    participants: int
    releases: int
    block_number: int
    joined: bool | None = None
    points: int | None = None

    @property
    def open(self) -> bool:
        """Whether it takes joins and releases now (on chain time)."""
        return self.status is StudyStatus.OPEN


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One released dataset: where it is stored (sealed to the researcher) and its size."""

    __repr__ = readable_repr

    study_id: bytes
    release: int
    cid: str
    digest: bytes  # SHA-256 of the stored (sealed) bytes
    participants: int
    resources: int
    block_number: int


@dataclass(frozen=True, slots=True)
class StudyDataset:
    """A dataset opened by its researcher: the de-identified FHIR resources (JSON)."""

    info: DatasetInfo
    profile: str
    resources: tuple[dict[str, Any], ...]

    def __repr__(self) -> str:
        return (
            f"StudyDataset(study=0x{self.info.study_id.hex()[:12]}…, release="
            f"{self.info.release}, resources={len(self.resources)})"
        )


def study_info(
    studies: Studies, ev: StudyPublished, state: Study | None = None, **mine: Any
) -> StudyInfo:
    """The :class:`StudyInfo` of the study ``ev`` published (its state read now unless
    given)."""
    s = state if state is not None else studies.study(bytes(ev.study_id))
    return StudyInfo(
        study_id=bytes(ev.study_id),
        researcher=ev.researcher,
        service=ev.service,
        needs=tuple(ev.needs),
        profile=bytes(ev.profile),
        protocol=bytes(ev.protocol),
        ethics=bytes(ev.ethics),
        ends_at=s.ends_at,
        status=s.status,
        participants=s.participants,
        releases=s.releases,
        block_number=ev.block_number,
        **mine,
    )


def _is_type(need: str) -> bool:
    return need[:1].isupper()


def normalized_needs(needs: Sequence[str]) -> list[str]:
    """``needs`` as a study publishes them: category names normalized (an unknown custom
    name must be a slug), FHIR resource types as given; :class:`InvalidInput` if empty."""
    names = [str(n).strip() for n in needs]
    if not names or any(not n for n in names):
        raise InvalidInput("name at least one category or FHIR resource type the study reads")
    return [n if _is_type(n) else normalize_category(n, new_category=True) for n in names]


def needs_types(needs: Sequence[str]) -> frozenset[str]:
    """The FHIR resource types a study's needs name (empty: every type of its categories)."""
    return frozenset(n for n in needs if _is_type(n))


def needs_categories(needs: Sequence[str], mapping: CategoryMapping | None = None) -> list[str]:
    """The categories a study's needs name, sorted: category names as they go on the
    wire (``lab`` is ``lab-results``), FHIR resource types placed by ``mapping`` (default:
    the default mapping)."""
    names = {normalize_category(n, new_category=True) for n in needs if not _is_type(n)}
    types = needs_types(needs)
    if types:
        names.update((mapping or CategoryMapping.default()).categories_for(sorted(types)))
    return sorted(names)


def join_digest(
    chain_id: int,
    contract: str,
    study_id: bytes,
    participant: str,
    patient: str,
    policies: Sequence[bytes],
) -> bytes:
    """What a join request binds: ``participant`` of ``study_id`` is ``patient`` and
    ``policies`` are its grants for the study. Both the patient's account and the
    participant key sign it (EIP-191), so nobody pairs another's participant with their
    own account, or their account with another's participant."""
    listed = keccak(b"".join(bytes(p) for p in policies))
    return keccak(
        _JOIN
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(to_checksum_address(contract)[2:])
        + bytes(study_id)
        + bytes.fromhex(to_checksum_address(participant)[2:])
        + bytes.fromhex(to_checksum_address(patient)[2:])
        + listed
    )


def release_digest(
    chain_id: int, contract: str, study_id: bytes, release: int, deadline: int
) -> bytes:
    """What a study's researcher signs (EIP-191) to ask its service for release number
    ``release`` (the study's next) now: a replay asks for a release that exists already."""
    return keccak(
        _RELEASE
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(to_checksum_address(contract)[2:])
        + bytes(study_id)
        + release.to_bytes(32, "big")
        + deadline.to_bytes(32, "big")
    )


def leave_body(study_id: bytes, participant: str, proof: bytes) -> dict[str, str]:
    """The JSON body of a leave request (the participant key's proof only)."""
    return {
        "study": "0x" + bytes(study_id).hex(),
        "participant": participant,
        "proof": "0x" + proof.hex(),
    }


def join_body(
    study_id: bytes,
    participant: str,
    proof: bytes,
    patient: str,
    policies: Sequence[PolicyId | bytes],
    signature: bytes,
    participant_signature: bytes,
) -> dict[str, Any]:
    """The JSON body of a join request (``signature``: the patient account's of
    :func:`join_digest`; ``participant_signature``: the participant key's)."""
    return {
        **leave_body(study_id, participant, proof),
        "patient": patient,
        "policies": ["0x" + bytes(p).hex() for p in policies],
        "signature": "0x" + signature.hex(),
        "participant_signature": "0x" + participant_signature.hex(),
    }


#: Grants of a study expire at the study's end rounded up to this many seconds since the
#: epoch (30 days): the studies of one service ending in the same window share one expiry,
#: so a grant's expiry does not name the study it serves.
GRANT_BUCKET = 30 * 86_400


def grant_expiry(ends_at: int) -> int:
    """The expiry of a patient's grants for a study ending at ``ends_at``."""
    return -(-ends_at // GRANT_BUCKET) * GRANT_BUCKET


def post_to_service(url: str, path: str, body: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """POST ``body`` to the service at ``url``; its JSON answer, or
    :class:`StudyServiceError` with the service's machine-readable reason."""
    if not url.startswith(("http://", "https://")):
        raise StudyServiceError(
            "unreachable",
            "the study's service publishes no HTTP endpoint in the registry; ask its operator",
        )
    try:
        r = httpx.post(url.rstrip("/") + path, json=body, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        raise StudyServiceError(
            "unreachable",
            f"the study's service at {url} did not answer ({type(exc).__name__}); "
            "try again later (your grants stay in place, and the same call resumes)",
        ) from None
    try:
        answer = r.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise StudyServiceError(
            "bad_answer", f"the study's service answered HTTP {r.status_code} without JSON"
        )
    if r.status_code != 200:
        reason = str(answer.get("error", "refused"))[:64]
        detail = str(answer.get("detail", ""))[:300]
        raise StudyServiceError(reason, f"the study's service refused ({reason}): {detail}")
    return answer


def dataset_bytes(profile: str, study_id: bytes, resources: Sequence[dict[str, Any]]) -> bytes:
    """A dataset's plaintext: a JSON header line, then one resource per line (NDJSON),
    in canonical JSON (sorted keys), so that equal datasets are equal bytes."""
    head = {"emrshare": "study-dataset/1", "study": "0x" + bytes(study_id).hex()}
    lines = [json.dumps({**head, "profile": profile}, sort_keys=True, separators=(",", ":"))]
    lines += [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in resources]
    return ("\n".join(lines) + "\n").encode()


def parse_dataset(data: bytes, study_id: bytes) -> tuple[str, list[dict[str, Any]]]:
    """``(profile, resources)`` of a dataset's plaintext, checked to be of ``study_id``."""
    lines = data.decode("utf-8", errors="strict").splitlines()
    try:
        head = json.loads(lines[0]) if lines else None
        resources = [json.loads(line) for line in lines[1:] if line]
    except ValueError:
        head, resources = None, []
    if (
        not isinstance(head, dict)
        or head.get("emrshare") != "study-dataset/1"
        or head.get("study") != "0x" + bytes(study_id).hex()
        or not all(isinstance(r, dict) for r in resources)
    ):
        raise InvalidInput(
            "the released dataset is not one of this study; report it to the study's service"
        )
    return str(head.get("profile", "")), resources


def digest_of(data: bytes) -> bytes:
    """The SHA-256 a release records of the stored bytes."""
    return hashlib.sha256(data).digest()


def parse_study_id(study: bytes | str) -> bytes:
    """A study id given as 32 bytes or 0x-hex; :class:`InvalidInput` otherwise."""
    raw: bytes | None
    if isinstance(study, bytes | bytearray):
        raw = bytes(study)
    else:
        text = str(study).strip().lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        raise InvalidInput(f"{study!r} is not a study id (32 bytes, 0x-hex)")
    return raw
