"""The emergency read on the in-process network (``LocalNetwork``, as notebooks and
examples use it): the in-process proxies serve and log it like the processes do."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import ConsortiumAdmin, Patient, Provider, Requester
from emrshare.chain import Capability, EmergencyAccessLogged, Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.errors import InvalidInput
from emrshare.roles import save_emergency_key

pytestmark = pytest.mark.integration


def test_emergency_read_on_the_local_network(tmp_path: Path) -> None:
    net = LocalNetwork.start(tmp_path / "net", proxies=2, threshold=2)
    admin = ConsortiumAdmin(net, net.admin_key)
    em_keys = MemberKeys.generate()
    key_file = save_emergency_key(tmp_path / "emergency" / "key.json", em_keys)
    clinic = Provider(
        net,
        MemberKeys.generate(ethereum_key=net.dev_keys[0]),
        state_dir=tmp_path / "c",
        emergency_key_file=key_file,
    )
    regulator = Requester(
        net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp_path / "r"
    )
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp_path / "p"
    )
    try:
        clinic.apply()
        admin.admit(clinic.address, Role.PROVIDER)
        admin.set_capabilities(clinic.address, Capability.EMERGENCY)
        regulator.apply()
        admin.admit(regulator.address, Role.REGULATOR)
        patient.register()
        net.contracts_for(net.admin_key).emergency.set_emergency_keys(
            em_keys.receiving_public_key.to_compressed_bytes(), bytes(em_keys.box_public_key)
        )
        patient.authorize_writer(clinic.address, "allergies")
        clinic.add_record(patient.address, "allergies", b"iodine", media_type="text/plain")
        # The facade checks the contract's bounds before it makes a kfrag or sends.
        with pytest.raises(InvalidInput, match="7 days"):
            patient.emergency.opt_in(["allergies"], timedelta(days=8))
        with pytest.raises(InvalidInput, match="choose 1 to 2"):
            patient.emergency.opt_in(["allergies"], timedelta(hours=1), threshold=3)
        assert net.contracts.emergency.policy(patient.address).generation == 0
        patient.emergency.opt_in(["allergies"], timedelta(hours=1))
        did = clinic.emergency.declare(patient.address, 1, "unconscious")
        (rec,) = clinic.emergency.read(did, "allergies")
        assert rec.content == b"iodine"
        net.settle()
        logs = list(net.contracts.emergency.events(EmergencyAccessLogged, declaration_id=did))
        assert len(logs) == 2 and all(lg.patient == patient.address for lg in logs)
    finally:
        for m in (clinic, regulator, patient):
            m.close()
        net.close()
