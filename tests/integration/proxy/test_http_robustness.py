"""Hole 8 against a real proxy process: no body gets a 500, one request's fault never
fails another's, and a refused request leaves the keep-alive connection usable."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash
from tests.unit.fuzz.bodies import FIELDS, body_edits, judge, mutant_at

from .conftest import CATEGORY, Net
from .rawhttp import KeepAlive
from .support import ProxyProcess

PATH = "/v1/reencrypt"


class Served:
    """An indexed entry and an active grant: what valid requests ask for."""

    def __init__(self, net: Net) -> None:
        (self.sealed,) = net.chain.append(net.patient, CATEGORY, 0)
        grant, _ = net.grant()
        self.policy_id = bytes(grant.binding.policy_id)
        self.net = net

    def body(self, proxy: ProxyProcess, *, deadline: int | None = None) -> dict[str, Any]:
        net = self.net
        chain_id = net.chain.deployment.chain_id
        capsule = self.sealed.capsule_bytes
        req = ReencryptRequest.new(
            proxy.keys.address,
            self.policy_id,
            [capsule_hash(capsule)],
            net.chain.chain_time() + 600 if deadline is None else deadline,
        )
        return SignedRequest(
            req,
            chain_id,
            net.chain.grants_address,  # type: ignore[arg-type]
            req.sign(net.grantee.ethereum_key, chain_id, net.chain.grants_address),
            (capsule,),
        ).to_json()


@pytest.fixture(scope="module")
def served(net: Net) -> Served:
    net.ensure_running()
    return Served(net)


def assert_served(status: int, answer: bytes) -> None:
    assert status == 200, answer
    assert len(json.loads(answer)["cfrags"]) == 1


def assert_bad_request(status: int, answer: bytes) -> None:
    assert status == 400, answer
    body = json.loads(answer)
    assert set(body) == {"refused", "message", "block"} and body["refused"] == "bad_request"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", FIELDS)
def test_attack_json_infinity_gives_500(
    net_up: Net, served: Served, field: str, token: str
) -> None:
    """Old code: pydantic's 422 handler could not encode the float (HTTP 500) and the
    keep-alive connection was reset after it."""
    p = net_up.proxies[0]
    body = served.body(p)
    text = json.dumps(body).replace(f'"{field}": {json.dumps(body[field])}', f'"{field}": {token}')
    assert token in text
    with KeepAlive(p.url) as conn:
        assert_bad_request(*conn.post(PATH, text.encode()))
        # The same connection serves the next request.
        assert_served(*conn.post(PATH, json.dumps(served.body(p)).encode()))


def test_attack_huge_deadline_fails_other_grantees(net_up: Net, served: Served) -> None:
    """Old code: a deadline >= 2^63 overflowed the journal's INTEGER and its group commit
    failed every other serve of the batch (4 of 30 concurrent valid requests got 500)."""
    p = net_up.proxies[0]
    valid = [served.body(p) for _ in range(30)]
    hostile = [served.body(p, deadline=d) for d in (2**63, 2**64 - 1, 2**255, 2**256 - 1)] * 2

    async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
            bodies = valid + hostile
            random.Random(8).shuffle(bodies)
            answers = await asyncio.gather(*(http.post(p.url + PATH, json=b) for b in bodies))
            by_nonce = {b["nonce"]: a for b, a in zip(bodies, answers, strict=True)}
            return [by_nonce[b["nonce"]] for b in valid], [by_nonce[b["nonce"]] for b in hostile]

    ok, bad = asyncio.run(run())
    assert [r.status_code for r in ok] == [200] * 30, [r.text for r in ok if r.status_code != 200]
    for r in bad:
        assert_bad_request(r.status_code, r.content)
        assert "deadline" in r.json()["message"]
    assert p.health()["status"] == "ok"


def test_attack_deeply_nested_json_kills_the_proxy(net_up: Net, served: Served) -> None:
    """Old code: py_ecc raises the recursion limit to 100,000, so the JSON decoder's C
    recursion on 100,000 nested arrays overflowed the stack: the proxy process died."""
    p = net_up.proxies[0]
    with KeepAlive(p.url) as conn:
        for deep in (b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
            assert_bad_request(*conn.post(PATH, deep))
        assert_served(*conn.post(PATH, json.dumps(served.body(p)).encode()))
    assert p.running


@pytest.mark.parametrize(
    "content_type", ["", "text/plain", "application/json; charset=latin-1", "text/json"]
)
def test_attack_wrong_content_type(net_up: Net, served: Served, content_type: str) -> None:
    p = net_up.proxies[0]
    with KeepAlive(p.url) as conn:
        status, answer = conn.post(PATH, json.dumps(served.body(p)).encode(), content_type)
        assert status == 415 and json.loads(answer)["refused"] == "bad_request"
        assert_served(*conn.post(PATH, json.dumps(served.body(p)).encode()))


def test_attack_malformed_bodies_never_500_nor_drop_the_connection(
    net_up: Net, served: Served
) -> None:
    """The proxy-body family's slice: every field × every hostile JSON value, raw tokens,
    content types and byte mutations, over one keep-alive connection, with a valid
    request after every 25 mutants that must be served."""
    p = net_up.proxies[0]
    rng = random.Random(10)
    verdicts: dict[str, int] = {}
    findings: list[str] = []
    edits = body_edits(served.body(p))
    # Every 12th structured edit (each kind of value and token is reached), then bytes.
    indices = list(range(0, len(edits), 12)) + list(range(len(edits), len(edits) + 150))
    conn = KeepAlive(p.url)
    try:
        for n, i in enumerate(indices):
            original = served.body(p)
            mutant = mutant_at(rng, edits, original, i)
            if mutant is None:
                continue
            status, answer = conn.post(PATH, mutant.body, mutant.content_type)
            verdict, why = judge(original, mutant, status, answer)
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if verdict in ("accepted", "crashed"):
                findings.append(f"{mutant.label}: {why}")
            if n % 25 == 24:
                assert_served(*conn.post(PATH, json.dumps(served.body(p)).encode()))
    finally:
        conn.close()
    assert findings == []
    assert verdicts.get("rejected", 0) >= len(indices) * 3 // 4
