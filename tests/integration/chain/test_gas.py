"""Gas budgets of the issue, on both nodes (benchmarks/gas_report.py prints the figures)."""

from __future__ import annotations

import os

from emrshare.chain import GrantCreated
from emrshare.crypto.entry import IndexEntry, seal_entry
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.grants import make_grant
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.writers import seal_writer_authorization
from emrshare.types import CategoryTag, Cid, PolicyId, RecordId

from .conftest import HOSPITAL, PATIENT, PROXY_A, Net

ENTRY = 350


def _real_grant_sizes() -> tuple[int, int, int]:
    """Sizes of a sealed kfrag, grantee map and writer payload as emrshare.crypto makes them."""
    patient, grantee = PatientKeys.generate(), MemberKeys.generate()
    proxies = [MemberKeys.generate().public_keys() for _ in range(3)]
    made = make_grant(
        patient,
        category="lab-results",
        epoch=0,
        policy_id=PolicyId(b"\x01" * 32),
        grantee=grantee.public_keys(),
        proxies=proxies,
        threshold=2,
    )
    payload = seal_writer_authorization(patient, grantee.public_keys(), "lab-results", 0)
    return len(made.sealed_kfrags[0]), len(made.sealed_grantee_map), len(payload)


def test_budgets(net: Net) -> None:
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    tag = CategoryTag(b"\x77" * 32)
    kfrag, gmap, payload = _real_grant_sizes()
    net.as_(PATIENT).index.authorize_writer(tag, h, os.urandom(payload))
    hosp = net.as_(HOSPITAL).index
    hosp.append(p, tag, 0, os.urandom(ENTRY))  # first append of this writer and patient
    single = hosp.append(p, tag, 1, os.urandom(ENTRY)).gas_used
    batch = hosp.append_batch(p, tag, 2, [os.urandom(ENTRY) for _ in range(50)]).gas_used
    pg = net.as_(PATIENT).grants
    sized = {
        "sealed_kfrags": [os.urandom(kfrag) for _ in net.proxies],
        "sealed_grantee_map": os.urandom(gmap),
    }
    pg.grant(net.grant_params(tag=tag, **sized))  # the patient's first grant creates its list
    g = pg.grant(net.grant_params(tag=tag, **sized))
    pid = g.event(GrantCreated).policy_id
    entry = net.access(pid, PROXY_A, capsules=3)
    audit = net.as_(PROXY_A).audit.log_accesses(pid, h, net.proxies, [entry]).gas_used
    ten = [net.access(pid, PROXY_A, capsules=3) for _ in range(10)]
    audit10 = net.as_(PROXY_A).audit.log_accesses(pid, h, net.proxies, ten).gas_used
    revoke = pg.revoke(pid).gas_used
    assert single <= 60_000, single
    assert batch / 50 <= 15_000, batch / 50
    # Over the issue's 200,000: the membership, profile and proxy-role checks of issue #10
    # (three cold registry/profile reads and two calls) cost ~17,000 (docs/contracts.md),
    # and issue #13's check that the patient has not handed its identity to a new key
    # (one call to the forwarder, a cold account and slot) ~5,500.
    assert g.gas_used <= 221_000, g.gas_used
    assert revoke <= 40_000, revoke
    # Over the issue's 40,000: each access now carries the grantee's signature (ecrecover,
    # 65 bytes of calldata) and the log reads the grant's window and the proxy's role.
    assert audit <= 60_000, audit
    assert audit10 / 10 <= 20_000, audit10 / 10


def _real_entry_size() -> int:
    """The sealed size of an entry as emrshare.crypto writes it (EMIE 1.2)."""
    patient, writer = PatientKeys.generate(), MemberKeys.generate()
    entry = IndexEntry.create(
        patient=patient.address,
        record_id=RecordId(os.urandom(32)),
        cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
        data_key=DataKey.generate(),
        plaintext_sha256=os.urandom(32),
        size=48_213,
        media_type="application/fhir+json",
        category="lab-results",
        epoch=0,
        created_at=1_700_000_000,
        author_key=writer.ethereum_key,
    )
    return len(bytes(seal_entry(entry, patient.category_public_key("lab-results", 0))))


def test_issue19_append_budgets_at_the_real_entry_size(net: Net) -> None:
    """Issue 19's goals at the real sealed size: ≤ 350 bytes, single append ≤ 55,000,
    ≤ 14,000 per record in a batch of 50. (A fresh patient's first append, 69,441 on anvil
    and over the issue's 65,000, is measured by benchmarks/gas_report.py: this session's
    patient already has a chain slot. See docs/contracts.md.)"""
    size = _real_entry_size()
    assert size <= 350, size
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    tag = CategoryTag(b"\x78" * 32)
    net.as_(PATIENT).index.authorize_writer(tag, h, os.urandom(200))
    hosp = net.as_(HOSPITAL).index
    hosp.append(p, tag, 0, os.urandom(size))  # this writer's first append under the tag
    single = hosp.append(p, tag, 1, os.urandom(size)).gas_used
    batch = hosp.append_batch(p, tag, 2, [os.urandom(size) for _ in range(50)]).gas_used
    assert single <= 55_000, single
    assert batch / 50 <= 14_000, batch / 50
