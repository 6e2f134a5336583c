"""The proxy app over ASGI (no sockets): malformed bodies are refusals of the documented
shape, and an internal fault is a 503 ``internal_error`` logged without key material."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from emrshare.proxy.request import ReencryptRequest, RefusalReason, SignedRequest, capsule_hash
from tests.unit.fuzz.bodies import FIELDS
from tests.unit.fuzz.mutate import raw_json_variants
from tests.unit.proxy.test_in_process import (  # noqa: F401 - fixture
    InProcessProxy,
    granted_request,
    world,
)

REASONS = {r.value for r in RefusalReason}


def assert_refusal(
    resp: httpx.Response, status: int | None = None, *, signed: bool = False
) -> dict[str, Any]:
    """A machine-readable refusal; ``signed`` for a request that parsed (the proxy signs
    its answer to it), unsigned for a body that did not parse (nothing to bind it to)."""
    assert 400 <= resp.status_code < 500 or resp.status_code == 503, resp.text
    if status is not None:
        assert resp.status_code == status, resp.text
    body = resp.json()
    fields = {"refused", "message", "block"} | ({"signature"} if signed else set())
    assert set(body) == fields and body["refused"] in REASONS
    if signed:
        assert len(bytes.fromhex(body["signature"].removeprefix("0x"))) == 65
    assert isinstance(body["message"], str)
    return dict(body)


def signed_body(w: dict[str, Any], p: InProcessProxy) -> dict[str, Any]:
    chain = w["chain"]
    capsule = b"\x02" * 98
    req = ReencryptRequest.new(
        p.keys.address, b"\x42" * 32, [capsule_hash(capsule)], chain.chain_time() + 600
    )
    chain_id = chain.deployment.chain_id
    return SignedRequest(
        req,
        chain_id,
        chain.grants_address,
        req.sign(w["grantee"].ethereum_key, chain_id, chain.grants_address),
        (capsule,),
    ).to_json()


async def test_attack_malformed_bodies_over_asgi(world: dict[str, Any]) -> None:  # noqa: F811
    p: InProcessProxy = world["proxies"][0]
    text = json.dumps(signed_body(world, p))
    transport = httpx.ASGITransport(app=p.app)
    async with httpx.AsyncClient(transport=transport, base_url=p.url) as h:
        for label, variant in raw_json_variants(text, FIELDS):
            resp = await h.post(
                "/v1/reencrypt",
                content=variant.encode("utf-8", errors="surrogatepass"),
                headers={"content-type": "application/json"},
            )
            assert assert_refusal(resp, 400)["refused"] == "bad_request", label
        for ctype in (None, "text/plain", "application/json; charset=latin-1", "multipart/x"):
            headers = {} if ctype is None else {"content-type": ctype}
            resp = await h.post("/v1/reencrypt", content=text.encode(), headers=headers)
            assert assert_refusal(resp, 415)["refused"] == "bad_request"
        ok = await h.post(
            "/v1/reencrypt",
            content=text.encode(),
            headers={"content-type": "application/json; charset=UTF-8"},
        )
    # Well formed: the service decides (no such policy on this chain).
    assert assert_refusal(ok, 403, signed=True)["refused"] == "policy_unknown"


async def test_attack_internal_error_gives_500(
    world: dict[str, Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault inside the service (its database is gone) is a 503 ``internal_error`` and
    a log line naming the fault, with no key material and no request contents."""
    p: InProcessProxy = world["proxies"][0]
    body = signed_body(world, p)
    p.store.close()
    transport = httpx.ASGITransport(app=p.app)
    with caplog.at_level(logging.ERROR, logger="emrshare.proxy"):
        async with httpx.AsyncClient(transport=transport, base_url=p.url) as h:
            resp = await h.post("/v1/reencrypt", json=body)
            health = await h.get("/v1/info")
    assert assert_refusal(resp, 503)["refused"] == "internal_error"
    assert health.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "internal error answering POST /v1/reencrypt" in logged
    secrets = [
        p.keys.ethereum_key.hex(),
        p.keys.seed.hex(),
        bytes(p.keys.box_private_key).hex(),
        body["signature"][2:],
        body["nonce"],
    ]
    assert not any(s in logged for s in secrets)


async def test_a_repeat_of_a_request_still_being_served_is_429_request_in_flight(
    world: dict[str, Any],  # noqa: F811
) -> None:
    # One request per (signer, nonce) is evaluated at a time; a repeat that waited in
    # vain for the first is "not now" (its own reason, 429 with Retry-After), not a chain
    # fault, and is served once the first has answered.
    from emrshare.errors import Unavailable
    from emrshare.proxy.client import (
        PolicyKeys,
        ProxyEndpoint,
        ProxyFailure,
        ThresholdPolicy,
        _threshold_error,
    )
    from emrshare.proxy.node.service import NonceGate

    proxy, signed = granted_request(world)
    body = signed.to_json()
    proxy.service.nonces = NonceGate(wait=0.2)
    first = (
        world["grantee"].address.lower(),
        signed.request.nonce,
    )  # the first try, still being served
    assert proxy.service.nonces.hold(first)
    transport = httpx.ASGITransport(app=proxy.app)
    async with httpx.AsyncClient(transport=transport, base_url=proxy.url) as h:
        try:
            busy = await h.post("/v1/reencrypt", json=body)
        finally:
            proxy.service.nonces.release(first)
        served = await h.post("/v1/reencrypt", json=body)
    assert assert_refusal(busy, 429, signed=True)["refused"] == "request_in_flight"
    assert busy.headers["retry-after"] == "1"
    assert served.status_code == 200 and len(served.json()["cfrags"]) == 1
    assert proxy.service.refused.get("request_in_flight") == 1
    assert proxy.service.refused.get("chain_unavailable") is None
    # The threshold client counts it as "not now": Unavailable (readers retry), not denied.
    assert not RefusalReason.REQUEST_IN_FLIGHT.denies_access
    policy = ThresholdPolicy(
        b"\x01" * 32,
        2,
        tuple(ProxyEndpoint(f"0xP{i}", f"http://p{i}") for i in range(3)),
        PolicyKeys(b"", b"", b""),
    )
    failures = [
        ProxyFailure(f"0xP{i}", f"http://p{i}", "refused", "request_in_flight") for i in range(3)
    ]
    assert isinstance(_threshold_error(policy, 0, failures), Unavailable)
