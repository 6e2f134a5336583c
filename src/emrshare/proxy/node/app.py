"""The proxy's HTTP API (FastAPI): ``POST /v1/reencrypt``, ``POST /v1/emergency/reencrypt``
(a declaring clinician's break-glass request, :mod:`emrshare.proxy.emergency`),
``GET /v1/info``, ``GET /healthz``.

The OpenAPI schema is served at ``/openapi.json``. A refusal is HTTP 403 with a
machine-readable ``refused`` reason; a transient fault on the proxy's side (chain down,
grant not processed yet, an internal error) is HTTP 503 with the same body shape, so
clients can tell "no" from "not now"; a repeat of a request still being served (same
signer and nonce) is HTTP 429 ``request_in_flight`` with ``Retry-After``, also "not now".
A malformed body is HTTP 400 (415 for another content type, 413 for an oversized one) with
reason ``bad_request``: never a 500, and the keep-alive connection stays usable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from emrshare import __version__
from emrshare.errors import WireFormatError
from emrshare.proxy.emergency import EMERGENCY_PATH, SignedEmergencyRequest
from emrshare.proxy.node.audit import AuditFlusher
from emrshare.proxy.node.emergency import EmergencyService
from emrshare.proxy.node.service import ProxyService, Served
from emrshare.proxy.node.watcher import ChainWatcher
from emrshare.proxy.request import Refusal, RefusalReason, SignedRequest, parse_json_body

__all__ = ["create_app"]

log = logging.getLogger("emrshare.proxy")


class ReencryptBody(BaseModel):
    """A signed re-encryption request (all byte strings 0x-hex)."""

    chain_id: int
    verifying_contract: str
    proxy: str
    policy_id: str = Field(description="bytes32, 0x-hex")
    capsule_hashes: list[str] = Field(description="keccak256 of each capsule, 0x-hex")
    nonce: str = Field(description="uint256 as a decimal string")
    deadline: int = Field(description="chain time, unix seconds")
    signature: str = Field(description="EIP-712 signature by the grantee, 0x-hex")
    capsules: list[str] = Field(description="the Umbral capsules, 0x-hex, aligned with hashes")


#: The documented request schema (the body is parsed by :func:`parse_json_body` and
#: :meth:`SignedRequest.from_json`, stricter than a pydantic model: no float, no NaN, no
#: duplicate key, no number where a string is due or the reverse).
_REQUEST_SCHEMA = ReencryptBody.model_json_schema()


class ServedBody(BaseModel):
    """The capsule fragments, aligned with the request's capsules."""

    cfrags: list[str]
    block: int = Field(description="the block the checks were evaluated at")


class RefusalBody(BaseModel):
    """Why the request was refused."""

    refused: RefusalReason
    message: str
    block: int | None = None


#: Bodies larger than this are refused before they are read into memory and parsed; a
#: full batch of 256 capsules is about 100 KB of JSON.
MAX_BODY = 1 << 20


class _BodyLimit:
    """Pure ASGI middleware: refuse a body over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def limited() -> Any:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:  # a chunked body declares no length
                # Answer now and tell the app the client left: it stops reading, and
                # whatever it answers to that is dropped below.
                refused = True
                await self._refuse(send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded_send)

    async def _refuse(self, send: Any) -> None:
        refusal = Refusal(
            RefusalReason.BATCH_TOO_LARGE, f"request body over {self.limit} bytes; split the batch"
        )
        body = json.dumps(refusal.to_json()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _InternalErrors:
    """Pure ASGI middleware: an unexpected exception becomes HTTP 503 ``internal_error``.

    Without it Starlette answers a plain-text 500 and uvicorn closes the keep-alive
    connection. The log line names the exception type and where it was raised, never its
    arguments or local variables (they could hold key material).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1:]
            place = f"{where[0].filename}:{where[0].lineno}" if where else "?"
            log.error(
                "internal error answering %s %s: %s at %s",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                place,
            )
            if started:  # too late for an answer; the server closes the connection
                raise
            refusal = Refusal(
                RefusalReason.INTERNAL_ERROR,
                "the proxy failed internally; retry, or ask its operator to check its log",
            )
            body = json.dumps(refusal.to_json()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


class _ProxyApp(FastAPI):
    """The FastAPI app, with ``POST`` to the re-encryption paths answered without it.

    FastAPI's middleware, routing, dependency solving and exception layers cost more CPU
    than the checks of a one-record request. These two endpoints take a raw body and
    answer plain JSON, so :attr:`fast` answers them (:class:`_FastPost`, inside the same
    internal-error and body-limit middleware: the same limits, the same answers). The
    FastAPI routes stay for the OpenAPI schema and every other method on these paths.
    """

    fast: Any = None
    fast_paths: frozenset[str] = frozenset()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            self.fast is not None
            and scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path") in self.fast_paths
        ):
            await self.fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _FastPost:
    """Pure ASGI app: a JSON body → ``answers[path](body)`` in a worker thread → JSON."""

    def __init__(self, answers: dict[str, Any], workers: int = 40) -> None:
        self.answers = answers
        # A plain executor: anyio's thread hand-off (capacity limiter, cancel scopes)
        # costs the event loop more than the hand-off itself. As many threads as
        # Starlette's default pool.
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "proxy-request")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        answer = self.answers[scope["path"]]
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # The client left, or the body limit already answered 413.
                await _send_json(send, 400, None)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
        if not _is_json(content_type):
            refusal = Refusal(
                RefusalReason.BAD_REQUEST, "the request body must be application/json"
            )
            await _send_json(send, 415, refusal.to_json())
            return
        # In the thread pool: parsing a large body must not stall the event loop, and
        # the checks block on the chain and the journal's fsync.
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.pool, answer, b"".join(chunks))
        status, headers = _status(result)
        await _send_json(send, status, result.to_json(), headers)


async def _send_json(
    send: Any, status: int, body: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """One JSON answer (as Starlette's ``JSONResponse`` renders it); no body if None."""
    data = b"" if body is None else _render(body)
    head = [(b"content-length", str(len(data)).encode())]
    if body is not None:
        head.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": [*head, *headers]})
    await send({"type": "http.response.body", "body": data})


def _render(body: Any) -> bytes:
    return json.dumps(
        body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def _status(result: Served | Refusal) -> tuple[int, tuple[tuple[bytes, bytes], ...]]:
    """The HTTP status of an answer, and its extra headers."""
    if isinstance(result, Served):
        return 200, ()
    if result.reason in (RefusalReason.BAD_REQUEST, RefusalReason.BATCH_TOO_LARGE):
        return 400, ()
    if result.reason is RefusalReason.REQUEST_IN_FLIGHT:
        # The identical request is being served: retry it once that one answered.
        return 429, ((b"retry-after", b"1"),)
    return (403 if result.reason.denies_access else 503), ()


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with at most a UTF-8 charset parameter."""
    if content_type is None:
        return False
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _refusal(status: int, reason: RefusalReason, message: str) -> JSONResponse:
    return JSONResponse(Refusal(reason, message).to_json(), status_code=status)


def create_app(
    service: ProxyService,
    watcher: ChainWatcher | None = None,
    flusher: AuditFlusher | None = None,
    *,
    poll_interval: float = 0.5,
    on_shutdown: Any = None,
) -> FastAPI:
    """The ASGI app. With a watcher and flusher, their loops run for the app's lifetime
    and the audit journal is drained at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if watcher is not None:
            # Catch up before accepting requests, so a restarted proxy answers from a
            # complete index.
            await asyncio.to_thread(_catch_up, watcher)
            tasks.append(asyncio.create_task(watcher.run(poll_interval, stop)))
        if flusher is not None:
            tasks.append(asyncio.create_task(flusher.run(stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if flusher is not None and not await asyncio.to_thread(flusher.drain):
                log.error("audit journal not fully logged at shutdown; it resumes on restart")
            if on_shutdown is not None:
                on_shutdown()

    app = _ProxyApp(
        title="emrshare re-encryption proxy",
        version=__version__,
        lifespan=lifespan,
        description="Serves Umbral capsule fragments for active on-chain grants.",
    )
    emergency = EmergencyService(service)

    def _answer(body: bytes) -> Served | Refusal:
        try:
            signed = SignedRequest.from_json(parse_json_body(body))
        except WireFormatError as exc:
            return Refusal(RefusalReason.BAD_REQUEST, str(exc))
        return service.handle(signed)

    def _answer_emergency(body: bytes) -> Served | Refusal:
        try:
            signed = SignedEmergencyRequest.from_json(parse_json_body(body))
        except WireFormatError as exc:
            return Refusal(RefusalReason.BAD_REQUEST, str(exc))
        return emergency.handle(signed)

    fast = _FastPost({"/v1/reencrypt": _answer, EMERGENCY_PATH: _answer_emergency})
    app.fast = _InternalErrors(_BodyLimit(fast, limit=MAX_BODY))
    app.fast_paths = frozenset(fast.answers)
    app.add_middleware(_BodyLimit, limit=MAX_BODY)
    # Added last, so it is the outermost of ours: it also catches the body limit's faults.
    app.add_middleware(_InternalErrors)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness and the figures an operator monitors."""
        errors = {
            "watcher": watcher.last_error if watcher else None,
            "audit": flusher.last_error if flusher else None,
        }
        return {
            "status": "ok" if not any(errors.values()) else "degraded",
            "proxy": service.chain.proxy_address,
            "cursor": service.store.cursor(),
            "kfrags": service.store.kfrag_count(),
            "audit_backlog": service.store.unbatched_count(),
            "audit_pending_batches": len(service.store.pending_batches()),
            "served_cfrags": service.served,
            "refused": dict(service.refused),
            # Shared work (docs/proxy-operations.md, "Throughput"): latest-block reads
            # and the requests they answered; journal commits (fsyncs) and serves.
            "head_reads": service.head.reads,
            "head_answered": service.head.answered,
            "journal_commits": service.journal.commits,
            "journal_serves": service.journal.recorded,
            "errors": errors,
        }

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        """Who this proxy is and which chain and grants contract it follows."""
        return {
            "proxy": service.chain.proxy_address,
            "chain_id": service.chain.chain_id,
            "grants_contract": service.chain.grants_contract,
            "version": __version__,
        }

    @app.post(
        "/v1/reencrypt",
        response_model=ServedBody,
        responses={
            400: {"model": RefusalBody},
            403: {"model": RefusalBody},
            413: {"model": RefusalBody},
            415: {"model": RefusalBody},
            429: {"model": RefusalBody},
            503: {"model": RefusalBody},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
            }
        },
    )
    async def reencrypt(request: Request) -> Any:
        """Re-encrypt a batch of capsules of one policy for its grantee."""
        return await _respond(request, _answer)

    @app.post(
        EMERGENCY_PATH,
        response_model=ServedBody,
        responses={
            400: {"model": RefusalBody},
            403: {"model": RefusalBody},
            413: {"model": RefusalBody},
            415: {"model": RefusalBody},
            429: {"model": RefusalBody},
            503: {"model": RefusalBody},
        },
    )
    async def emergency_reencrypt(request: Request) -> Any:
        """Re-encrypt a batch of capsules of one opted-in category for the clinician who
        declared an active emergency (body: ``SignedEmergencyRequest.to_json``)."""
        return await _respond(request, _answer_emergency)

    async def _respond(request: Request, answer: Any) -> Any:
        try:
            body = await request.body()
        except ClientDisconnect:  # the client left, or the body limit already answered 413
            return Response(status_code=400)
        if not _is_json(request.headers.get("content-type")):
            return _refusal(
                415, RefusalReason.BAD_REQUEST, "the request body must be application/json"
            )
        # (Reached only if _FastPost is bypassed; the same answer.)
        result = await run_in_threadpool(answer, body)
        status, headers = _status(result)
        return JSONResponse(
            result.to_json(),
            status_code=status,
            headers={k.decode(): v.decode() for k, v in headers},
        )

    return app


def _catch_up(watcher: ChainWatcher) -> None:
    try:
        while watcher.step():
            pass
    except Exception as exc:  # the loop retries; start serving what we have
        watcher.last_error = str(exc)
        log.warning("initial catch-up failed: %s", exc)
