"""The audit grouped by read (issue 12, item 7) against a grantee who reuses one nonce
across reads: the reads it made stay visible, each with its own records."""

from __future__ import annotations

from emrshare.roles import AccessEvent
from emrshare.roles._audit import group_reads
from emrshare.types import Address, PolicyId, RecordId

POLICY = PolicyId(bytes.fromhex("1a2b3c4d5e" + "11" * 27))
X = RecordId(bytes.fromhex("aa" * 32))
Y = RecordId(bytes.fromhex("bb" * 32))
HX, HY = b"\x01" * 32, b"\x02" * 32
ALICE = Address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")
P = [Address("0x" + f"{i:040x}") for i in range(1, 5)]


def _access(proxy: Address, record: RecordId, capsule: bytes, block: int) -> AccessEvent:
    return AccessEvent(
        policy_id=POLICY,
        requester=ALICE,
        proxy=proxy,
        capsule_hashes=(capsule,),
        nonce=7,
        evaluated_at_block=block,
        evaluated_time=1_700_000_000 + block,
        block_number=block + 1,
        timestamp=1_700_000_001 + block,
        category="lab",
        record_ids=(record,),
    )


def test_a_grantee_reusing_a_nonce_cannot_hide_a_read_of_another_record() -> None:
    # Record X through proxies 1 and 2, later record Y through proxies 3 and 4, both
    # signed with the same nonce: each proxy sees it once, so none refuses or flags it.
    accesses = [
        _access(P[0], X, HX, 10),
        _access(P[1], X, HX, 10),
        _access(P[2], Y, HY, 50),
        _access(P[3], Y, HY, 50),
    ]
    reads = group_reads(accesses, {})
    read_records = sorted(r for read in reads for r in read.record_ids)
    assert read_records == sorted([X, Y])
    assert [read.proxies for read in reads] == [(P[0], P[1]), (P[2], P[3])]
