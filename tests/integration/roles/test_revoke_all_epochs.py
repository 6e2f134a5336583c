"""Revoking a grantee's grant revokes its grants of the category's other epochs too.

Found by the adversarial review of issue #10: ``grant`` and ``approve`` make one grant per
epoch, and revoking the id the patient holds (the current epoch's) left the grantee
reading every older epoch.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from emrshare import AccessDenied, ConsortiumAdmin, LocalNetwork, Patient, Provider
from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys

pytestmark = pytest.mark.integration


def test_attack_revoked_grantee_reads_older_epoch(tmp_path: Path) -> None:
    net = LocalNetwork.start(tmp_path / "net")
    admin = ConsortiumAdmin(net, net.admin_key)
    a, b, c = (
        Provider(net, MemberKeys.generate(ethereum_key=net.dev_keys[i]), state_dir=tmp_path / n)
        for i, n in ((0, "a"), (1, "b"), (3, "c"))
    )
    p = Patient(
        net,
        PatientKeys(secrets.token_bytes(32), ethereum_key=net.dev_keys[2]),
        state_dir=tmp_path / "p",
    )
    try:
        for h in (a, b, c):
            h.apply()
            admin.admit(h.address, Role.PROVIDER)
        p.register()
        p.authorize_writer(a.address, "lab")
        old = a.add_record(p.address, "lab", b"epoch-0 secret", media_type="text/plain")
        p.revoke(p.grant(c.address, "lab", expires=timedelta(days=1)).policy_id)  # epoch 1
        rid = b.request_access(p.address, "lab", purpose="TREAT", reason="follow-up")
        g_b = p.approve(rid, expires=timedelta(days=30))  # grants epochs 0 and 1
        assert sorted(g.epoch for g in b.grants(p.address, active_only=True)) == [0, 1]
        assert b.read(p.address, old) == b"epoch-0 secret"

        p.revoke(g_b.policy_id)

        assert b.grants(p.address, active_only=True) == []
        with pytest.raises(AccessDenied):
            b.read(p.address, old)
    finally:
        for m in (a, b, c, p):
            m.close()
        net.close()
