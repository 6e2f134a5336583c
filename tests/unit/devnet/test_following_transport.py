"""LocalNetwork's in-process proxies take requests one at a time across threads too:
every sync read runs its own event loop, and a lock per loop let reads in several
threads mine on the py-evm chain at once (orphaned audit blocks, refused nonces,
accesses logged twice)."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

from emrshare import ConsortiumAdmin, Patient, Provider, Requester
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork


def test_sync_reads_from_several_threads(tmp_path: Path) -> None:
    with LocalNetwork.start(tmp_path / "net", proxies=3, threshold=2) as net:
        admin = ConsortiumAdmin(net, net.admin_key)
        keys = MemberKeys.generate(ethereum_key=net.dev_keys[0])
        hospital = Provider(net, keys, state_dir=tmp_path / "h")
        hospital.apply()
        admin.admit(hospital.address, Role.PROVIDER)
        readers = [
            Requester(
                net,
                MemberKeys.generate(ethereum_key=net.dev_keys[1 + i]),
                state_dir=tmp_path / f"r{i}",
            )
            for i in range(3)
        ]
        for r in readers:
            r.apply()
            admin.admit(r.address, Role.INSURER)
        patient = Patient(
            net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[5]), state_dir=tmp_path / "p"
        )
        patient.register()
        patient.authorize_writer(hospital.address, "lab")
        record = hospital.add_record(patient.address, "lab", b"Hb 14.1 g/dL")
        for r in readers:
            patient.grant(r.address, "lab", expires=timedelta(days=30))

        reads, errors = 4, []

        def work(reader: Requester) -> None:
            for _ in range(reads):
                try:
                    assert reader.read(patient.address, record) == b"Hb 14.1 g/dL"
                except Exception as exc:  # collected: a thread's exception is lost
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(r,)) for r in readers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        # Each read logged once by each proxy that served it (M = 2, or all 3 when a slow
        # proxy's answer arrived after the client had asked the third), and shown as one
        # read listing those proxies, none twice.
        trail = patient.audit()
        assert len(trail) == len(readers) * reads
        assert all(len(set(r.proxies)) == len(r.proxies) >= 2 and r.complete for r in trail)
        assert len(patient.audit_by_proxy()) == sum(len(r.proxies) for r in trail)
        for m in (hospital, patient, *readers):
            m.close()


def test_local_network_directories_are_private(tmp_path: Path) -> None:
    with LocalNetwork.start(tmp_path / "a" / "net", proxies=1, threshold=1):
        pass
    for p in [tmp_path / "a", *(tmp_path / "a").rglob("*")]:
        mode = p.stat().st_mode & 0o777
        assert mode == (0o700 if p.is_dir() else 0o600), p
