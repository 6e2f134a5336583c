"""A facade used after it was closed: the sync Provider reopens its journal (it opened it
lazily in the first place); an async facade after ``aclose`` raises a typed error that says
what to do, and a second ``aclose`` is harmless (in-process network)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emrshare import (
    AsyncProvider,
    AsyncRequester,
    ConfigurationError,
    ConsortiumAdmin,
    Patient,
    Provider,
)
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork


@dataclass
class World:
    net: LocalNetwork
    keys: MemberKeys
    patient: Patient
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    net = LocalNetwork.start(tmp / "net", proxies=1, threshold=1)
    keys = MemberKeys.generate(ethereum_key=net.dev_keys[0])
    hospital = Provider(net, keys, state_dir=tmp / "h")
    hospital.apply()
    ConsortiumAdmin(net, net.admin_key).admit(hospital.address, Role.PROVIDER)
    hospital.close()
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp / "p"
    )
    patient.register()
    patient.authorize_writer(keys.address, "lab")
    try:
        yield World(net, keys, patient, tmp)
    finally:
        patient.close()
        net.close()


def test_provider_writes_after_close(world: World) -> None:
    hospital = Provider(world.net, world.keys, state_dir=world.tmp / "h1")
    first = hospital.add_record(world.patient.address, "lab", b"one")
    hospital.close()
    second = hospital.add_record(world.patient.address, "lab", b"two")
    hospital.close()
    hospital.close()
    assert world.patient.read(first) == b"one"
    assert world.patient.read(second) == b"two"


@pytest.mark.parametrize("cls", [AsyncRequester, AsyncProvider])
def test_async_facade_after_aclose_is_a_typed_error(
    world: World, cls: type[AsyncRequester]
) -> None:
    async def main() -> None:
        facade = cls(world.net, world.keys, state_dir=world.tmp / f"a-{cls.__name__}")
        assert await facade.records(world.patient.address) is not None
        await facade.aclose()
        await facade.aclose()  # a second close is harmless
        with pytest.raises(ConfigurationError, match="closed"):
            await facade.records(world.patient.address)
        with pytest.raises(ConfigurationError, match="closed"):
            await facade.read(world.patient.address, "0x" + "11" * 32)

    asyncio.run(main())
