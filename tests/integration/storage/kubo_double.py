"""FAULT INJECTOR in front of a real IPFS RPC daemon (js-ipfs, see conftest.py) — not a node.

``FaultProxy(upstream)`` forwards every request (method, path, query, body) to the
daemon and its answer back, byte for byte, so ``KuboStore`` talks to a real IPFS node
over a real loopback socket. It computes nothing itself (no CIDs, no DAGs): the tests
use it only to see what was sent and to make the node misbehave:

* ``requests`` records every call (``Recorded(method, command, params)``);
* ``delay`` holds every answer back, to exercise client timeouts;
* ``drop_params`` removes query parameters before forwarding (a node that ignores a
  flag);
* ``rewrite[command]`` maps ``(params, body) -> body`` on successful answers (a node
  that serves corrupt blocks or answers a wrong CID).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Params = list[tuple[str, str]]
Rewrite = Callable[[Params, bytes], bytes]

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Recorded:
    method: str
    command: str
    params: Params


@dataclass
class FaultProxy:
    """The ASGI app of the fault injector (see the module docstring)."""

    upstream: str
    delay: float = 0.0
    drop_params: set[str] = field(default_factory=set)
    rewrite: dict[str, Rewrite] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        command = path.split("/api/v0/", 1)[-1]
        pairs = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
        self.requests.append(Recorded(scope["method"], command, pairs))
        body = bytearray()
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        forwarded = [(k, v) for k, v in pairs if k not in self.drop_params]
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k.decode().lower() not in _HOP_HEADERS
        ]
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.request(
                scope["method"],
                self.upstream + path,
                params=forwarded,
                headers=headers,
                content=bytes(body),
            )
        payload = answer.content
        if answer.status_code == 200 and command in self.rewrite:
            payload = self.rewrite[command](pairs, payload)
        ctype = answer.headers.get("content-type", "application/octet-stream")
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(b"content-type", ctype.encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """Runs an ASGI app with uvicorn on a loopback port in a thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fault proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
