"""Shared fixtures for the crypto unit tests: fixed-seed patients, members, a grant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from emrshare.crypto import (
    DataKey,
    EntryContext,
    Grant,
    GranteeMap,
    IndexEntry,
    MemberKeys,
    PatientKeys,
    SealedEntry,
    VerifiedProxyKeyFrag,
    make_grant,
    open_grantee_map,
    open_sealed_kfrag,
    seal_entry,
)
from emrshare.types import Cid, PolicyId, RecordId


def seed(label: str) -> bytes:
    """A fixed 32-byte seed per label (tests are reproducible)."""
    return hashlib.sha256(b"emrshare-test/" + label.encode()).digest()


@dataclass
class World:
    patient: PatientKeys
    grantee: MemberKeys
    writer: MemberKeys
    stranger: MemberKeys
    proxies: list[MemberKeys]


@pytest.fixture(scope="session")
def world() -> World:
    return World(
        patient=PatientKeys(seed("patient")),
        grantee=MemberKeys(seed("grantee")),
        writer=MemberKeys(seed("writer")),
        stranger=MemberKeys(seed("stranger")),
        proxies=[MemberKeys(seed(f"proxy{i}")) for i in range(5)],
    )


def make_entry(world: World, category: str = "labs", epoch: int = 0, n: int = 0) -> IndexEntry:
    return IndexEntry.create(
        patient=world.patient.address,
        record_id=RecordId(seed(f"record{n}")),
        cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
        data_key=DataKey(seed(f"datakey{n}")),
        plaintext_sha256=hashlib.sha256(b"content %d" % n).digest(),
        size=1234 + n,
        media_type="application/fhir+json",
        category=category,
        epoch=epoch,
        created_at=1_700_000_000 + n,
        author_key=world.writer.ethereum_key,
    )


def origin_of(entry: IndexEntry) -> EntryContext:
    """Where the chain put ``entry`` (its record id and author), as an ``EntryAppended``
    event would say: what opening a 1.2 entry needs."""
    return EntryContext(entry.record_id, entry.author, entry.category, entry.epoch)


def origin_for(world: World, n: int = 0) -> EntryContext:
    """The origin of ``make_entry(world, …, n=n)`` (category and epoch are the key's)."""
    return EntryContext(RecordId(seed(f"record{n}")), world.writer.address, "labs", 0)


def sealed_for(world: World, category: str = "labs", epoch: int = 0, n: int = 0) -> SealedEntry:
    entry = make_entry(world, category, epoch, n)
    return seal_entry(entry, world.patient.category_public_key(category, epoch))


@dataclass
class GrantSetup:
    grant: Grant
    policy_id: PolicyId
    category: str
    epoch: int
    kfrags: list[VerifiedProxyKeyFrag]
    gmap: GranteeMap


def grant_for(
    world: World, category: str = "labs", epoch: int = 0, m: int = 2, n: int = 3
) -> GrantSetup:
    policy_id = PolicyId(seed(f"policy/{category}/{epoch}/{m}/{n}"))
    proxies = world.proxies[:n]
    grant = make_grant(
        world.patient,
        category=category,
        epoch=epoch,
        policy_id=policy_id,
        grantee=world.grantee.public_keys(),
        proxies=[p.public_keys() for p in proxies],
        threshold=m,
    )
    kfrags = [
        open_sealed_kfrag(sealed, proxy).verify(
            patient_verifying_key=world.patient.verifying_key,
            policy_id=policy_id,
            patient=world.patient.address,
            grantee=world.grantee.address,
            tag=world.patient.tag(category, epoch),
            epoch=epoch,
            grantee_receiving_key=world.grantee.receiving_public_key,
        )
        for sealed, proxy in zip(grant.sealed_kfrags, proxies, strict=True)
    ]
    gmap = open_grantee_map(
        grant.sealed_grantee_map, world.grantee, patient_verifying_key=world.patient.verifying_key
    )
    return GrantSetup(grant, policy_id, category, epoch, kfrags, gmap)


@pytest.fixture(scope="session")
def labs_grant(world: World) -> GrantSetup:
    return grant_for(world)
