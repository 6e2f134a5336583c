"""``member.research``: a researcher publishes a study, asks its de-identification service
for a release, and opens the datasets released to it (verified: the CID, the SHA-256 the
chain records, the sealed box, the study named inside)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from emrshare.chain import DatasetReleased, StudyPublished
from emrshare.chain.bindings import Studies
from emrshare.crypto import MemberKeys
from emrshare.crypto.entry import sign_eip191
from emrshare.crypto.sealing import open_sealed
from emrshare.errors import IntegrityError, InvalidInput, NotFound, StudyServiceError
from emrshare.fhir.deid import DEID_PROFILES, profile_id
from emrshare.network import Network
from emrshare.roles._grants import Expiry, checked_expiry
from emrshare.roles._research import (
    DATASET_BRAND,
    RELEASE_TTL,
    DatasetInfo,
    StudyDataset,
    StudyInfo,
    normalized_needs,
    parse_dataset,
    parse_study_id,
    post_to_service,
    release_digest,
    study_info,
)
from emrshare.types import Cid

__all__ = ["ResearcherStudies"]

#: The de-identification profile a study uses unless it names another.
DEFAULT_PROFILE = "hipaa-safe-harbor-shifted/1"


class ResearcherStudies:
    """Research studies from a researcher's side (``member.research``).

    Example::

        study = researcher.research.publish(
            protocol_document, ["laboratory"], ends=timedelta(days=180),
            service=deid_service_address, ethics="IRB-2026-117",
        )
        researcher.research.request_release(study.study_id)
        data = researcher.research.open_dataset(study.study_id)   # latest release
    """

    def __init__(
        self, network: Network, keys: MemberKeys, studies: Studies, *, timeout: float = 120.0
    ) -> None:
        self._net = network
        self._keys = keys
        self._studies = studies  # signing with this member's key
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ResearcherStudies({self._keys.address})"

    def publish(
        self,
        protocol: bytes,
        needs: Sequence[str],
        *,
        ends: Expiry,
        service: str,
        ethics: str,
        profile: str = DEFAULT_PROFILE,
    ) -> StudyInfo:
        """Publish a study: ``protocol`` is its protocol document (only its SHA-256 goes on
        chain), ``needs`` the categories or FHIR resource types it reads, ``service`` the
        de-identification service's account, ``ethics`` the ethics approval reference (its
        SHA-256 on chain), ``profile`` one of :data:`~emrshare.fhir.deid.DEID_PROFILES`."""
        if profile not in DEID_PROFILES:
            raise InvalidInput(
                f"{profile!r} is not a de-identification profile; use one of "
                f"{', '.join(sorted(DEID_PROFILES))}"
            )
        if not ethics.strip():
            raise InvalidInput("name the ethics approval (e.g. the IRB protocol number)")
        names = normalized_needs(needs)
        r = self._studies.publish(
            hashlib.sha256(protocol).digest(),
            profile_id(profile),
            hashlib.sha256(ethics.strip().encode()).digest(),
            checked_expiry(self._net, ends),
            service,
            names,
        )
        return study_info(self._studies, r.event(StudyPublished))

    def studies(self) -> list[StudyInfo]:
        """The studies this researcher published, oldest first."""
        events = self._studies.events(StudyPublished, researcher=self._keys.address)
        return [study_info(self._studies, ev) for ev in events]

    def show(self, study: bytes | str) -> StudyInfo:
        """One study (anybody's); :class:`NotFound` if none has that id."""
        sid = parse_study_id(study)
        ev = self._studies.published_event(sid)
        if ev is None:
            raise NotFound(f"no study 0x{sid.hex()} was published")
        return study_info(self._studies, ev)

    def close(self, study: bytes | str) -> StudyInfo:
        """Close the study early: no join or release after."""
        sid = parse_study_id(study)
        self._studies.close(sid)
        return self.show(sid)

    def datasets(self, study: bytes | str) -> list[DatasetInfo]:
        """The datasets released for ``study``, oldest first."""
        sid = parse_study_id(study)
        return [
            DatasetInfo(
                study_id=sid,
                release=ev.release,
                cid=ev.cid,
                digest=bytes(ev.digest),
                participants=ev.participants,
                resources=ev.resources,
                block_number=ev.block_number,
            )
            for ev in self._studies.events(DatasetReleased, study_id=sid)
        ]

    def request_release(self, study: bytes | str) -> DatasetInfo:
        """Ask the study's service to release a dataset now (signed by this researcher);
        returns it once the chain records it."""
        info = self.show(study)
        if info.researcher != self._keys.address:
            raise InvalidInput(f"study 0x{info.study_id.hex()} is not yours; its researcher asks")
        deadline = int(time.time()) + RELEASE_TTL
        chain_id, contract = self._net.w3.eth.chain_id, self._studies.address
        digest = release_digest(chain_id, contract, info.study_id, info.releases + 1, deadline)
        signature, _ = sign_eip191(digest, self._keys.ethereum_key)
        body: dict[str, Any] = {
            "study": "0x" + info.study_id.hex(),
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        }
        url = str(self._net.contracts.registry.member(info.service).endpoint)
        answer = post_to_service(url, "/v1/release", body, timeout=self._timeout)
        number = answer.get("release")
        released = [d for d in self.datasets(info.study_id) if d.release == number]
        if not released:
            raise StudyServiceError(
                "not_landed",
                "the study's service reported a release the chain does not hold; ask again",
            )
        return released[0]

    def open_dataset(self, study: bytes | str, release: int | None = None) -> StudyDataset:
        """The de-identified resources of ``release`` (default: the latest), fetched from
        the store and verified: the CID, the chain's SHA-256, the seal to this member, the
        study named inside."""
        sid = parse_study_id(study)
        found = self.datasets(sid)
        if release is not None:
            found = [d for d in found if d.release == release]
        if not found:
            raise NotFound(f"study 0x{sid.hex()} has no released dataset {release or ''}".strip())
        info = found[-1]
        data = b"".join(self._net.store.get(Cid(info.cid)))
        if hashlib.sha256(data).digest() != info.digest:
            raise IntegrityError(
                info.cid,
                f"the stored dataset {info.cid} is not the one release {info.release} "
                "recorded on chain; ask the study's service to release it again",
            )
        plain = open_sealed(self._keys.box_private_key, DATASET_BRAND, data, what="a study dataset")
        profile, resources = parse_dataset(plain, sid)
        return StudyDataset(info=info, profile=profile, resources=tuple(resources))
