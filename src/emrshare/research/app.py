"""The de-identification service's HTTP API (FastAPI): ``POST /v1/join``, ``POST
/v1/leave``, ``POST /v1/release``, ``GET /v1/health``; and :func:`serve`, which runs it
under uvicorn on loopback.

Every answer is JSON. A refusal is 4xx with a machine-readable ``error``; a fault of the
chain, the store or the proxies is 503 ``unavailable``; an unexpected fault is 503
``internal_error``, logged by type and place only: never a 500, never a request's
signatures or a patient's data in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from emrshare import __version__
from emrshare._http import fault_place, read_limited
from emrshare.errors import EmrShareError
from emrshare.research.service import Answer, DeidService, Refused, refusal_of

__all__ = ["create_app", "serve"]

log = logging.getLogger("emrshare.research")

#: The largest request body, in bytes (a join naming 64 grants is under 6 KB).
MAX_BODY = 16_384


def _json(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)


def _call(handler: Callable[[bytes], Answer], body: bytes, what: str) -> Answer:
    try:
        return handler(body)
    except Refused as exc:
        return exc.answer()
    except EmrShareError as exc:
        log.warning("%s: %s", what, type(exc).__name__)
        return refusal_of(exc)
    except Exception as exc:
        log.error(
            "internal error answering %s: %s at %s", what, type(exc).__name__, fault_place(exc)
        )
        return Answer(503, {"error": "internal_error", "detail": "retry, or ask the operator"})


def create_app(service: DeidService) -> FastAPI:
    """The ASGI app around ``service``."""
    app = FastAPI(
        title="emrshare de-identification service",
        version=__version__,
        description="Adds study participants, de-identifies their records, releases datasets.",
    )

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """An unknown path or method, in the service's own answer shape."""
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return JSONResponse({"error": reason, "detail": str(exc.detail)}, status_code=status)

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """The service's account and chain."""
        return _json(await run_in_threadpool(_call, lambda _: service.health(), b"", "health"))

    def route(path: str, handler: Callable[[bytes], Answer]) -> None:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                body = await read_limited(request, MAX_BODY)
            except ClientDisconnect:
                return _json(Refused(400, "bad_request", "the client left mid-body").answer())
            if body is None:
                return _json(
                    Refused(413, "bad_request", f"the body is over {MAX_BODY} bytes").answer()
                )
            return _json(await run_in_threadpool(_call, handler, body, f"POST {path}"))

        app.add_api_route(path, endpoint, methods=["POST"], name=path)

    route("/v1/join", service.join)
    route("/v1/leave", service.leave)
    route("/v1/release", service.release_request)
    return app


def serve(service: DeidService, *, host: str, port: int, log_level: str = "info") -> None:
    """Run ``service`` under uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    log.info("de-identification service %s on %s:%d", service.address, host, port)
    uvicorn.run(
        create_app(service),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
