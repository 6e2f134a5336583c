"""The relay's HTTP API (FastAPI): ``POST /v1/relay``, ``GET /v1/health`` (the wire API
is in :mod:`emrshare.relay`), and :func:`serve`, which runs it under uvicorn.

Every answer is JSON. A malformed or oversized body is 400 ``bad_request``; an
unexpected fault is 503 ``internal_error``, logged by exception type and place only:
never a 500, never a request's signature or data in the log.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from emrshare import __version__
from emrshare._http import fault_place, read_limited
from emrshare.chain import ChainClient, http_web3
from emrshare.relay.config import RelayConfig
from emrshare.relay.service import Answer, RelayService

__all__ = ["create_app", "serve", "service_from_config"]

log = logging.getLogger("emrshare.relay")

#: What a body holds besides its request's calldata (the other fields, the signature).
_ENVELOPE = 4096


def _json(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


def _internal(exc: BaseException, what: str) -> JSONResponse:
    log.error("internal error answering %s: %s at %s", what, type(exc).__name__, fault_place(exc))
    return _json(
        Answer.refusal(
            503, "internal_error", "the relay failed internally; retry, or ask its operator"
        )
    )


def create_app(service: RelayService) -> FastAPI:
    """The ASGI app around ``service``. A body longer than the hex of the service's
    largest calldata and the request's other fields is refused before it is parsed."""
    max_body = 2 * service.max_data + _ENVELOPE
    app = FastAPI(
        title="emrshare relay",
        version=__version__,
        description="Pays the gas of patients' signed operations (PatientForwarder.execute).",
    )

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """The chain, forwarder and relayer this relay uses, and the relayer's balance."""
        try:
            return _json(await run_in_threadpool(service.health))
        except Exception as exc:
            return _internal(exc, "GET /v1/health")

    @app.post("/v1/relay")
    async def relay(request: Request) -> JSONResponse:
        """Relay one signed patient operation; answers once it is mined."""
        try:
            body = await read_limited(request, max_body)
        except ClientDisconnect:
            return _json(Answer.refusal(400, "bad_request", "the client left mid-body"))
        if body is None:
            return _json(Answer.refusal(400, "bad_request", f"the body is over {max_body} bytes"))
        try:
            return _json(await run_in_threadpool(service.handle, body))
        except Exception as exc:
            return _internal(exc, "POST /v1/relay")

    return app


def service_from_config(config: RelayConfig) -> RelayService:
    """Connect to the chain (checking the deployment is there) and build the service."""
    w3 = http_web3(config.rpc_url, timeout=config.rpc_timeout)
    # Right chain id and contracts; an unreachable node is a ChainError (scrubbed) there.
    config.deployment.check(w3)
    client = ChainClient(w3, config.relayer_key, receipt_timeout=config.receipt_timeout)
    return RelayService(
        client,
        config.deployment,
        rate=config.rate,
        burst=config.burst,
        global_rate=config.global_rate,
        max_in_flight=config.max_in_flight,
        max_data=config.max_data,
        fault=config.fault,
    )


def serve(config: RelayConfig, *, log_level: str = "info") -> None:
    """Run a relay under uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    service = service_from_config(config)
    if config.fault is not None:
        log.warning("FAULT INJECTION %s is on: this relay misbehaves on purpose", config.fault)
    log.info(
        "relaying for forwarder %s as %s on %s:%d",
        service.forwarder.address,
        service.client.address,
        config.host,
        config.port,
    )
    uvicorn.run(
        create_app(service),
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=False,
        http="auto",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,
    )
