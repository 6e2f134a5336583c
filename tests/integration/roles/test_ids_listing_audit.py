"""Issue 12, items 2 and 7, through the library on an in-process network (py-evm chain,
LocalStore, three real proxy apps at threshold 2): record id prefixes on every read
path, a grantee's listing with type and size, and the audit trail grouped by read."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import (
    AccessDenied,
    AsyncRequester,
    ConsortiumAdmin,
    InvalidInput,
    Patient,
    Provider,
    RecordNotFound,
)
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.roles import AccessEvent, ReadEvent
from emrshare.types import RecordId


@dataclass
class World:
    net: LocalNetwork
    patient: Patient
    a: Provider
    b: Provider
    lab: list[RecordId]
    imaging: RecordId


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ids")
    net = LocalNetwork.start(tmp / "net")
    admin = ConsortiumAdmin(net, net.admin_key)
    a = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp / "a")
    b = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp / "b")
    for member in (a, b):
        member.apply()
        admin.admit(member.address, Role.PROVIDER)
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp / "p"
    )
    patient.register()
    patient.authorize_writer(a.address, "lab")
    patient.authorize_writer(a.address, "imaging")
    lab = [
        a.add_record(patient.address, "lab", b"Hb 14.1 g/dL", media_type="text/plain"),
        a.add_record(patient.address, "lab", b"WBC 6.2" * 100, media_type="text/csv"),
    ]
    imaging = a.add_record(patient.address, "imaging", os.urandom(5000))
    patient.grant(b.address, "lab", expires=timedelta(days=1))
    try:
        yield World(net, patient, a, b, lab, imaging)
    finally:
        for m in (a, b, patient):
            m.close()
        net.close()


def _prefix(rid: bytes, digits: int = 8, *, with_0x: bool = True) -> str:
    return ("0x" if with_0x else "") + bytes(rid).hex()[:digits]


def test_patient_reads_by_unique_prefix(world: World, tmp_path: Path) -> None:
    p, rid = world.patient, world.lab[0]
    assert p.read(_prefix(rid)) == b"Hb 14.1 g/dL"
    assert p.read(_prefix(rid, 12, with_0x=False).upper()) == b"Hb 14.1 g/dL"
    assert p.record_id(_prefix(rid)) == rid
    assert p.read_to(_prefix(rid, 10), tmp_path / "hb.txt") == 12
    assert (tmp_path / "hb.txt").read_bytes() == b"Hb 14.1 g/dL"
    with pytest.raises(InvalidInput, match="at least 8 hex"):
        p.read(_prefix(rid, 7))
    ids = [bytes(r).hex() for r in (*world.lab, world.imaging)]
    absent = next(d * 8 for d in "0123456789abcdef" if not any(h.startswith(d * 8) for h in ids))
    with pytest.raises(RecordNotFound, match=f"no record id starts with 0x{absent}"):
        p.read(absent)


def test_grantee_reads_by_prefix_among_what_it_can_list(world: World) -> None:
    b, who = world.b, world.patient.address
    assert b.read(who, _prefix(world.lab[1])) == b"WBC 6.2" * 100
    assert b.record_id(who, _prefix(world.lab[0], 9)) == world.lab[0]
    # A record of a category never granted is not among what b can list: its prefix names
    # nothing for b (its full id is refused by the chain check, as before).
    with pytest.raises(RecordNotFound, match=f"granted to {b.address}"):
        b.read(who, _prefix(world.imaging))
    with pytest.raises(AccessDenied):
        b.read(who, world.imaging)


def test_grantee_listing_shows_type_and_size_in_one_read(world: World) -> None:
    b, p = world.b, world.patient
    plain = {r.record_id: r for r in b.records(p.address)}
    assert set(plain) == set(world.lab) and all(r.size is None for r in plain.values())
    before = len(p.audit())
    listed = {r.record_id: r for r in b.records(p.address, open_entries=True)}
    assert {rid: (r.media_type, r.size) for rid, r in listed.items()} == {
        world.lab[0]: ("text/plain", 12),
        world.lab[1]: ("text/csv", 700),
    }
    assert all(r.created_at for r in listed.values())
    # One batched request per proxy: the patient sees one read of both records, logged
    # by the two proxies that served it.
    trail = p.audit()
    assert len(trail) == before + 1
    read = trail[-1]
    assert read.requester == b.address and set(read.record_ids) == set(world.lab)
    assert len(read.proxies) == 2 and read.complete and read.threshold == 2
    assert len(read.accesses) == 2 and {e.proxy for e in read.accesses} == set(read.proxies)
    assert "0x" + bytes(world.lab[0]).hex()[:8] + "…" in repr(listed[world.lab[0]])

    async def listing() -> list[object]:
        async with AsyncRequester(world.net, b.keys, state_dir=b.state_dir, retry_for=5.0) as aio:
            return [r.size for r in await aio.records(p.address, "lab", open_entries=True)]

    assert sorted(asyncio.run(listing())) == [12, 700]  # type: ignore[type-var]


def _settled(p: Patient) -> tuple[list[ReadEvent], list[AccessEvent]]:
    """The whole trail once no proxy's log entry is still on its way (proxies log in
    batches, after the read returned): two reads of it in a row agree."""
    last: list[AccessEvent] = []
    for _ in range(40):
        by_proxy = p.audit_by_proxy()
        if by_proxy and len(by_proxy) == len(last):
            break
        last = by_proxy
        time.sleep(0.5)
    return p.audit(), by_proxy


def test_audit_is_one_row_per_read_and_by_proxy_keeps_every_entry(world: World) -> None:
    b, p = world.b, world.patient
    earlier = {r.nonce for r in _settled(p)[0]}
    for _ in range(3):
        assert b.read(p.address, world.lab[0]) == b"Hb 14.1 g/dL"
    trail, by_proxy = _settled(p)
    reads = [r for r in trail if r.nonce not in earlier]
    assert len(reads) == 3  # three reads, not 3 × 2 rows
    assert len({r.nonce for r in reads}) == 3
    # Each read lists every proxy that served it once: the two asked first, or also the
    # third when a slow answer made the client ask it too (on a loaded machine).
    assert all(
        r.record_ids == (world.lab[0],) and len(set(r.proxies)) == len(r.proxies) >= 2
        for r in reads
    )
    # By proxy: every entry of every read, the grouped view's proxies exactly.
    assert sorted(e.nonce for e in by_proxy) == sorted(r.nonce for r in trail for _ in r.proxies)
    assert not re.search(r"\bb['\"]|\\x", repr(reads)), repr(reads)


def test_listing_after_revocation_keeps_details_unknown(world: World) -> None:
    # Last in this module: it revokes the grant the other tests read with.
    b, p = world.b, world.patient
    (grant,) = p.grants(active_only=True)
    p.revoke("0x" + bytes(grant.policy_id).hex()[:8])  # a grant's short id, as tables show
    assert [g.status for g in p.grants() if g.policy_id == grant.policy_id] == ["revoked"]
    before = len(p.audit_by_proxy())
    listed = b.records(p.address, open_entries=True)  # no proxy is asked, nothing fails
    assert {r.record_id for r in listed} == set(world.lab)
    assert all(r.media_type is None and r.size is None for r in listed)
    assert len(p.audit_by_proxy()) == before
