"""Malformed addresses and out-of-range integers passed to the facades are typed
:class:`InvalidInput` errors (a ``ValueError`` too), never eth-utils' or eth-abi's own
exceptions (in-process network: py-evm chain, LocalStore, one proxy)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from emrshare import ConsortiumAdmin, InvalidInput, Patient, Provider, Requester
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork


@dataclass
class World:
    net: LocalNetwork
    admin: ConsortiumAdmin
    patient: Patient
    hospital: Provider
    reader: Requester


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bad-input")
    net = LocalNetwork.start(tmp / "net", proxies=1, threshold=1)
    admin = ConsortiumAdmin(net, net.admin_key)
    hospital = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp / "h")
    reader = Requester(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp / "r")
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp / "p"
    )
    try:
        yield World(net, admin, patient, hospital, reader)
    finally:
        for m in (hospital, reader, patient):
            m.close()
        net.close()


RECORD = "0x" + "11" * 32

CALLS: dict[str, Callable[[World], Any]] = {
    "admin.admit": lambda w: w.admin.admit("0x123", Role.PROVIDER),
    "admin.approve negative": lambda w: w.admin.approve(-1),
    "admin.approve over 256 bits": lambda w: w.admin.approve(2**256),
    "admin.verify_report negative": lambda w: w.admin.verify_report(-5),
    "requester.read patient": lambda w: w.reader.read("0xnope", RECORD),
    "requester.request_access": lambda w: w.reader.request_access("bad", "lab"),
    "provider.add_record patient": lambda w: w.hospital.add_record("0xbad", "lab", b"x"),
    "patient.grant grantee": lambda w: w.patient.grant("0xbad", "lab", expires=timedelta(days=1)),
    "patient.authorize_writer": lambda w: w.patient.authorize_writer("bad", "lab"),
    "requester.read int id": lambda w: w.reader.read(w.patient.address, 5),
    "requester.read None id": lambda w: w.reader.read(w.patient.address, None),
    "patient.revoke int id": lambda w: w.patient.revoke(7),
    "admin.admit str role": lambda w: (
        w.reader.apply(),
        w.admin.admit(w.reader.address, "provider"),  # type: ignore[arg-type]
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_malformed_argument_is_invalid_input(world: World, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        CALLS[name](world)
    assert isinstance(info.value, ValueError), "still a ValueError for existing callers"


def test_record_source_that_cannot_be_read_is_invalid_input(world: World, tmp_path: Path) -> None:
    """A missing file, a directory or a str (not bytes) is refused before anything is
    journaled, with a typed error, not FileNotFoundError or a JournalError."""
    world.patient.register()
    world.hospital.apply()
    world.admin.admit(world.hospital.address, Role.PROVIDER)
    world.patient.authorize_writer(world.hospital.address, "lab")
    p = world.patient.address
    for bad in (tmp_path / "missing.pdf", tmp_path, "text, not bytes"):
        with pytest.raises(InvalidInput):
            world.hospital.add_record(p, "lab", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            world.hospital.add_records(p, "lab", [b"fine", bad])  # type: ignore[list-item]
    assert world.hospital.recover().ok
    assert world.patient.records() == []
