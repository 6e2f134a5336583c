"""The async facades inside a running event loop, on real anvil and proxy processes;
the sync facades around them still work outside one, and say so inside one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare.chain import Role
from emrshare.errors import ConfigurationError, RecordNotFound
from emrshare.roles import AsyncProvider, AsyncRequester, Requester
from tests.integration.roles.trust_world import TrustWorld, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustWorld]:
    yield from start_world(tmp_path_factory.mktemp("async"))


async def test_async_reads_run_concurrently_inside_a_running_loop(
    world: TrustWorld, tmp_path: Path
) -> None:
    patient = world.new_patient("async-reads")
    patient.authorize_writer(world.hospital.address, "lab")
    contents = [f"potassium {i}".encode() for i in range(4)]
    ids = world.hospital.add_records(patient.address, "lab", contents, media_type="text/plain")
    reader: Requester = world.new_member("async-reader", Role.INSURER, Requester)
    patient.grant(reader.address, "lab", expires=timedelta(days=1))
    world.sync_proxies()
    asyncio.get_running_loop()  # this test runs inside an event loop
    async with AsyncRequester(world.net, reader.keys, state_dir=tmp_path / "r") as aio:
        got = await asyncio.gather(*(aio.read(patient.address, rid) for rid in ids))
        assert got == contents
        out = tmp_path / "k.txt"
        assert await aio.read_to(patient.address, ids[0], out) == len(contents[0])
        assert out.read_bytes() == contents[0]
        assert [r.record_id for r in await aio.records(patient.address)] == ids
        (grant,) = await aio.grants(patient.address, active_only=True)
        assert grant.category == "lab-results"  # "lab" is an alias
        with pytest.raises(RecordNotFound):
            await aio.read(patient.address, b"\x01" * 32)
        # The blocking facade refuses to stall the loop, and says what to use instead.
        with pytest.raises(ConfigurationError, match="use AsyncRequester or AsyncProvider"):
            reader.read(patient.address, ids[0])


async def test_async_provider_writes_and_reads_inside_a_running_loop(
    world: TrustWorld, tmp_path: Path
) -> None:
    patient = world.new_patient("async-writes")
    member = world.new_member("async-hospital", Role.PROVIDER)
    patient.authorize_writer(member.address, "lab")
    async with AsyncProvider(world.net, member.keys, state_dir=tmp_path / "h") as hospital:
        assert await hospital.writable_categories(patient.address) == {"lab-results": 0}
        one = await hospital.add_record(patient.address, "lab", b"Hb 14", media_type="text/plain")
        many = await hospital.add_records(patient.address, "lab", [b"a", b"b"])
        assert (await hospital.recover()).ok
    assert patient.read(one) == b"Hb 14"
    assert [patient.read(r) for r in many] == [b"a", b"b"]


def test_the_sync_facade_reads_outside_a_loop(world: TrustWorld) -> None:
    patient = world.new_patient("sync-reads")
    patient.authorize_writer(world.hospital.address, "lab")
    rid = world.hospital.add_record(patient.address, "lab", b"ferritin 80")
    reader: Requester = world.new_member("sync-reader", Role.INSURER, Requester)
    patient.grant(reader.address, "lab", expires=timedelta(days=1))
    world.sync_proxies()
    assert reader.read(patient.address, rid) == b"ferritin 80"
    assert reader.read(patient.address, rid) == b"ferritin 80", "and again: a fresh loop each"
