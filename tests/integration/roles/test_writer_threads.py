"""One Provider used from several threads (a threaded web server hands each request to
another thread; an AsyncProvider's blocking facade is called beside its worker): the
write journal opened in one thread must serve the others, writes taking turns."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from emrshare import AsyncProvider, ConsortiumAdmin, Patient, Provider
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.types import RecordId


def test_provider_writes_from_several_threads(tmp_path: Path) -> None:
    with LocalNetwork.start(tmp_path / "net", proxies=1, threshold=1) as net:
        keys = MemberKeys.generate(ethereum_key=net.dev_keys[0])
        hospital = Provider(net, keys, state_dir=tmp_path / "h")
        hospital.apply()
        ConsortiumAdmin(net, net.admin_key).admit(hospital.address, Role.PROVIDER)
        patient = Patient(
            net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp_path / "p"
        )
        patient.register()
        patient.authorize_writer(hospital.address, "lab")

        ids: list[RecordId] = []
        errors: list[Exception] = []

        def write(n: int) -> None:
            try:
                for i in range(3):
                    ids.append(hospital.add_record(patient.address, "lab", f"{n}-{i}".encode()))
                ids.extend(hospital.add_records(patient.address, "lab", [b"x", b"y"]))
            except Exception as exc:  # collected: a thread's exception is lost
                errors.append(exc)

        # One after the other first (the journal opens in the first thread), then at once.
        write(0)
        t = threading.Thread(target=write, args=(1,))
        t.start()
        t.join()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(2, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert hospital.recover().ok
        assert sorted(r.record_id for r in patient.records()) == sorted(ids)
        assert len(set(ids)) == 5 * 5

        async def beside_async() -> None:
            ap = AsyncProvider(net, keys, state_dir=tmp_path / "a")
            try:
                await ap.add_record(patient.address, "lab", b"on the worker")
                assert ap.provider.recover().ok  # the blocking facade, on the loop's thread
            finally:
                await ap.aclose()

        asyncio.run(beside_async())
        hospital.close()
        patient.close()
