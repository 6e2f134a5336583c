"""What the library's small HTTP services (the relay, a study's de-identification service)
share: a request body read within a limit, and where an unexpected fault happened (for a
log line that names no request data)."""

from __future__ import annotations

import traceback

from starlette.requests import Request

__all__ = ["fault_place", "read_limited"]


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` if it is over ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def fault_place(exc: BaseException) -> str:
    """``file:line`` of the innermost frame ``exc`` was raised in (``?`` if unknown)."""
    where = traceback.extract_tb(exc.__traceback__)[-1:]
    return f"{where[0].filename}:{where[0].lineno}" if where else "?"
