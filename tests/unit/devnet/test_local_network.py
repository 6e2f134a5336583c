"""LocalNetwork: a whole emrshare network in this process (py-evm chain, LocalStore,
in-process proxies; no sockets). Its proxies catch up with the chain and log what they
served per request, so no production path needs the ``settle()`` test hook."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import LocalNetwork
from emrshare.roles import ConsortiumAdmin, Patient, Provider


@pytest.fixture
def net(tmp_path: Path) -> Iterator[LocalNetwork]:
    network = LocalNetwork.start(tmp_path / "net")
    try:
        yield network
    finally:
        network.close()


def test_read_and_audit_without_the_settle_hook(
    net: LocalNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the facades call, the hook does nothing here: the proxies keep up alone.
    monkeypatch.setattr(LocalNetwork, "settle", lambda self: None)
    admin = ConsortiumAdmin(net, net.admin_key)
    a = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp_path / "a")
    b = Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[1]), state_dir=tmp_path / "b")
    for member in (a, b):
        assert member.apply()
        admin.admit(member.address, Role.PROVIDER)
    patient = Patient(
        net, PatientKeys(os.urandom(32), ethereum_key=net.dev_keys[2]), state_dir=tmp_path / "p"
    )
    assert patient.register()
    patient.authorize_writer(a.address, "lab")
    lab_id = a.add_record(patient.address, "lab", b"Hb 14.1 g/dL", media_type="text/plain")
    patient.grant(b.address, "lab", expires=timedelta(days=1))

    # The first read after the grant: the proxies learn of it as the request reaches them.
    assert b.read(patient.address, lab_id) == b"Hb 14.1 g/dL"

    # Each proxy that served the read has logged it by the time the read returns.
    reads = [e for e in patient.audit_by_proxy() if e.requester == b.address]
    assert len(reads) == net.threshold
    assert len({e.proxy for e in reads}) == net.threshold
    assert all(e.record_ids == (lab_id,) for e in reads)
    (read,) = [r for r in patient.audit() if r.requester == b.address]
    assert set(read.proxies) == {e.proxy for e in reads} and read.record_ids == (lab_id,)
    # The trail is followed (only the blocks confirmed since are read): a second read
    # shows up once, the first is not shown twice, and a new facade sees the same trail.
    assert b.read(patient.address, lab_id) == b"Hb 14.1 g/dL"
    trail = [r for r in patient.audit() if r.requester == b.address]
    assert len(trail) == 2 and trail[0].nonce == read.nonce != trail[1].nonce
    assert patient.audit_anomalies() == []  # no log entry read twice
    fresh = Patient(net, patient.keys, state_dir=tmp_path / "p2")
    assert [r.nonce for r in fresh.audit()] == [r.nonce for r in patient.audit()]
    fresh.close()
    for m in (a, b, patient):
        m.close()


def test_start_admits_the_proxies_and_funds_the_dev_keys(net: LocalNetwork) -> None:
    proxies = net.proxies()
    assert [p.account for p in proxies] == [k.address for k in net.proxy_keys]
    assert all(p.role is Role.PROXY for p in proxies)
    assert [p.endpoint for p in proxies] == [f"http://proxy-{i}.local" for i in (1, 2, 3)]
    assert net.admin_key not in net.dev_keys and len(net.dev_keys) >= 10
    funded = [net.w3.eth.get_balance(net.w3.eth.account.from_key(k).address) for k in net.dev_keys]
    assert all(b > 0 for b in funded)


def test_network_imports_nothing_above_it() -> None:
    # A fresh interpreter: what importing emrshare.network loads, and nothing more.
    code = (
        "import sys, emrshare.network; "
        "print(' '.join(m for m in sys.modules if m.startswith('emrshare.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    above = ("emrshare.roles", "emrshare.devnet", "emrshare.cli", "emrshare.proxy.node")
    assert "emrshare.network" in loaded
    assert not [m for m in loaded if m.startswith(above)]
