"""Research studies on chain (``Studies``): the study's state, a participant's state, and
the events the contract emits. A participant is a per-study key, never the patient's
account (:class:`~emrshare.chain.ParticipantKey`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from emrshare.chain.events import ChainEvent
from emrshare.chain.values import status_from_code

__all__ = [
    "DatasetReleased",
    "ParticipantState",
    "PointsAwarded",
    "Study",
    "StudyClosed",
    "StudyJoined",
    "StudyLeft",
    "StudyPublished",
    "StudyStatus",
]


class StudyStatus(StrEnum):
    """A study's state on chain time (``Studies.studyOf``); ``NONE``: no such study."""

    NONE = "none"
    OPEN = "open"
    ENDED = "ended"
    CLOSED = "closed"

    @classmethod
    def from_code(cls, code: int) -> StudyStatus:
        """The status the contract encodes as ``code`` (``ChainError`` for an unknown one)."""
        return status_from_code(cls, code, "Studies.studyOf")


@dataclass(frozen=True, slots=True)
class Study:
    """A study's on-chain part (``Studies.studyOf``)."""

    study_id: bytes
    researcher: str
    published_at: int  # unix seconds, chain time
    ends_at: int  # unix seconds, chain time
    closed: bool
    service: str  # the de-identification service's account
    participants: int  # joined and not left
    releases: int
    profile: bytes  # sha256 of the de-identification profile's name
    status: StudyStatus


@dataclass(frozen=True, slots=True)
class ParticipantState:
    """One participant of one study (``Studies.participantOf``)."""

    joined: bool  # joined and not left
    joined_at: int  # unix seconds of the last join (0: never)
    points: int  # incentive points credited, kept after leaving
    nonce: int = 0  # the next proof nonce (each join and leave uses one)


@dataclass(frozen=True, slots=True)
class StudyPublished(ChainEvent):
    """A researcher published study ``study_id``; ``needs`` names the categories (or FHIR
    resource types) it reads; ``protocol`` and ``ethics`` are digests of its documents."""

    study_id: bytes
    researcher: str
    service: str
    protocol: bytes
    profile: bytes
    ethics: bytes
    ends_at: int
    needs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StudyJoined(ChainEvent):
    """A participant key joined study ``study_id``."""

    study_id: bytes
    participant: str


@dataclass(frozen=True, slots=True)
class StudyLeft(ChainEvent):
    """A participant key left study ``study_id``."""

    study_id: bytes
    participant: str


@dataclass(frozen=True, slots=True)
class DatasetReleased(ChainEvent):
    """The study's service released dataset number ``release`` (from 1) at ``cid``,
    sealed to the researcher; ``digest`` is the SHA-256 of the stored bytes."""

    study_id: bytes
    release: int
    cid: str
    digest: bytes
    participants: int
    resources: int


@dataclass(frozen=True, slots=True)
class PointsAwarded(ChainEvent):
    """A release credited ``participant`` with ``points``; ``total`` is its new count."""

    study_id: bytes
    participant: str
    points: int
    total: int


@dataclass(frozen=True, slots=True)
class StudyClosed(ChainEvent):
    """The researcher closed study ``study_id`` early."""

    study_id: bytes
