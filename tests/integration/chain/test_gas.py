"""Gas budgets of the issue, on both nodes (benchmarks/gas_report.py prints the figures)."""

from __future__ import annotations

import os

from emrshare.chain import AccessEntry, GrantCreated
from emrshare.types import CategoryTag

from .conftest import HOSPITAL, PATIENT, PROXY_A, Net

ENTRY = 350


def test_budgets(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    tag = CategoryTag(b"\x77" * 32)
    net.as_(PATIENT).index.authorize_writer(tag, h, os.urandom(160))
    hosp = net.as_(HOSPITAL).index
    hosp.append(p, tag, 0, 0, os.urandom(ENTRY))  # first append of this writer and patient
    single = hosp.append(p, tag, 0, 1, os.urandom(ENTRY)).gas_used
    batch = hosp.append_batch(p, tag, 0, 2, [os.urandom(ENTRY) for _ in range(50)]).gas_used
    pg = net.as_(PATIENT).grants
    pg.grant(net.grant_params(tag=tag))  # the patient's first grant creates its list
    g = pg.grant(net.grant_params(tag=tag))
    pid = g.event(GrantCreated).policy_id
    entry = AccessEntry(h, os.urandom(32), 100, net.w3.eth.block_number)
    audit = net.as_(PROXY_A).audit.log_accesses(pid, net.proxies, [entry]).gas_used
    revoke = pg.revoke(pid).gas_used
    assert single <= 60_000, single
    assert batch / 50 <= 15_000, batch / 50
    assert g.gas_used <= 200_000, g.gas_used
    assert revoke <= 40_000, revoke
    assert audit <= 40_000, audit
