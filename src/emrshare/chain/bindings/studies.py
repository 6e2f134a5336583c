"""The Studies binding: research studies, participants joining and leaving by their
per-study keys' proofs, dataset releases and incentive points."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.study_values import (
    DatasetReleased,
    ParticipantState,
    PointsAwarded,
    Study,
    StudyClosed,
    StudyJoined,
    StudyLeft,
    StudyPublished,
    StudyStatus,
)

__all__ = ["Studies"]


class Studies(Binding):
    """Research studies: publish, join and leave (by a participant key's proof), release
    de-identified datasets and credit points, close."""

    NAME = "Studies"
    EVENTS = (
        StudyPublished,
        StudyJoined,
        StudyLeft,
        DatasetReleased,
        PointsAwarded,
        StudyClosed,
    )

    # reads (each at ``block``, default latest)
    def study(self, study_id: bytes, *, block: int | None = None) -> Study:
        """The study's on-chain part; ``status`` is ``NONE`` if there is none."""
        (s,) = self._call("studyOf", study_id, block=block)
        return Study(
            study_id=bytes(study_id),
            researcher=normalize_abi_value(s[0]),
            published_at=int(s[1]),
            ends_at=int(s[2]),
            closed=bool(s[3]),
            service=normalize_abi_value(s[4]),
            participants=int(s[5]),
            releases=int(s[6]),
            profile=bytes(s[7]),
            status=StudyStatus.from_code(int(s[8])),
        )

    def participant(
        self, study_id: bytes, participant: str, *, block: int | None = None
    ) -> ParticipantState:
        """Whether ``participant`` is in the study, since when, and its points."""
        (p,) = self._call("participantOf", study_id, participant, block=block)
        return ParticipantState(
            joined=bool(p[0]), joined_at=int(p[1]), points=int(p[2]), nonce=int(p[3])
        )

    def nonce(self, study_id: bytes, participant: str, *, block: int | None = None) -> int:
        """The participant key's next proof nonce in the study."""
        return self.participant(study_id, participant, block=block).nonce

    def hash_join(self, study_id: bytes, participant: str, nonce: int) -> bytes:
        """The EIP-712 digest a join proof signs (``hashJoin``)."""
        return bytes(self._call("hashJoin", study_id, participant, nonce)[0])

    def hash_leave(self, study_id: bytes, participant: str, nonce: int) -> bytes:
        """The EIP-712 digest a leave proof signs (``hashLeave``)."""
        return bytes(self._call("hashLeave", study_id, participant, nonce)[0])

    def published_event(self, study_id: bytes) -> StudyPublished | None:
        """The ``StudyPublished`` event of ``study_id`` (its needs and digests), or ``None``."""
        return next(self.events(StudyPublished, study_id=study_id), None)

    # transactions
    def publish(
        self,
        protocol: bytes,
        profile: bytes,
        ethics: bytes,
        ends_at: int,
        service: str,
        needs: Sequence[str],
    ) -> Receipt:
        """Publish the study of ``protocol`` (the caller must hold the Researcher role); its
        id is ``receipt.event(StudyPublished).study_id``."""
        return self._send("publish", protocol, profile, ethics, ends_at, service, list(needs))

    def join(self, study_id: bytes, participant: str, proof: bytes) -> Receipt:
        """Add ``participant`` (``proof``: :meth:`ParticipantKey.join_proof`)."""
        return self._send("join", study_id, participant, proof)

    def leave(self, study_id: bytes, participant: str, proof: bytes) -> Receipt:
        """Remove ``participant`` (``proof``: :meth:`ParticipantKey.leave_proof`)."""
        return self._send("leave", study_id, participant, proof)

    def release(
        self,
        study_id: bytes,
        cid: str,
        digest: bytes,
        resources: int,
        credited: Sequence[str],
        points: int,
    ) -> Receipt:
        """Record a dataset (the study's service only) and credit ``credited``."""
        return self._send("release", study_id, cid, digest, resources, list(credited), points)

    def close(self, study_id: bytes) -> Receipt:
        """Close the study early (its researcher only)."""
        return self._send("close", study_id)
