"""A grant scoped to records (issue 15's one prescription for one pharmacy, issue 16's
claim-scoped consent): every proxy serves the listed records of the tag and refuses any
other, at the one block it judges at."""

from __future__ import annotations

import pytest

from emrshare.chain import scope_hash
from emrshare.crypto import SealedEntry

from .conftest import CATEGORY, Net
from .test_policy_checks import body, refusal

pytestmark = pytest.mark.integration


def _append(net: Net, count: int) -> list[tuple[bytes, SealedEntry]]:
    """``count`` new entries of the patient's CATEGORY, with their record ids."""
    index = net.chain.c["RecordIndex"]
    me, tag = net.patient.address, net.patient.tag(CATEGORY, 0)
    first = index.functions.nextSequence(me, tag, me).call()
    sealed = net.chain.append(net.patient, CATEGORY, 0, count)
    ids = [bytes(index.functions.recordIdOf(me, tag, me, first + i).call()) for i in range(count)]
    return list(zip(ids, sealed, strict=True))


def test_attack_a_scoped_grantee_asks_for_a_record_outside_its_scope(net_up: Net) -> None:
    net = net_up
    (a, ea), (_, eb), (c, ec) = _append(net, 3)
    grant, _ = net.grant(records=[a, c])
    pid = bytes(grant.binding.policy_id)
    assert bytes(net.chain.c["Grants"].functions.scopeOf(pid).call()) == scope_hash([a, c])
    net.sync()
    for p in net.proxies:
        served = p.post(body(net, p, pid, [ea.capsule_bytes, ec.capsule_bytes]))
        assert served.status_code == 200 and len(served.json()["cfrags"]) == 2
        # The unlisted record, alone or hidden in a batch with listed ones: refused.
        assert refusal(p.post(body(net, p, pid, [eb.capsule_bytes]))) == "record_not_in_scope"
        mixed = body(net, p, pid, [ea.capsule_bytes, eb.capsule_bytes])
        assert refusal(p.post(mixed)) == "record_not_in_scope"


def test_a_grant_of_the_whole_tag_still_serves_every_record(net_up: Net) -> None:
    net = net_up
    entries = _append(net, 2)
    grant, _ = net.grant()
    pid = bytes(grant.binding.policy_id)
    net.sync()
    p = net.proxies[0]
    served = p.post(body(net, p, pid, [e.capsule_bytes for _, e in entries]))
    assert served.status_code == 200 and len(served.json()["cfrags"]) == 2
