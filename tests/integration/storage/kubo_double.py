"""TEST DOUBLE of the Kubo RPC API — not Kubo. No Kubo daemon can be installed here.

It answers the requests ``KuboStore`` makes the way the Kubo RPC reference
(docs.ipfs.tech/reference/kubo/rpc, v0.35–v0.39) documents them, so the HTTP layer is
tested over a real loopback socket:

* every command is ``POST /api/v0/<cmd>``; other methods get ``405``; unknown commands
  ``404``;
* failures are HTTP 500 with ``{"Message": …, "Code": 0, "Type": "error"}``;
* ``add`` takes a multipart body and the flags ``cid-version``, ``raw-leaves``,
  ``chunker=size-N``, ``pin``, ``max-file-links`` and answers NDJSON
  ``{"Name", "Hash", "Size"}``; ``block/get`` → raw bytes; ``block/stat`` →
  ``{"Key", "Size"}``; ``pin/add``/``pin/rm`` → ``{"Pins": [...]}``; ``pin/ls`` →
  ``{"Keys": {cid: {"Type": "recursive"}}}``; ``dag/export`` → a CAR stream;
  ``dag/import`` → NDJSON ``{"Root": {"Cid": {"/": cid}, "PinErrorMsg": ""}}``;
  ``repo/gc`` → NDJSON ``{"Key": {"/": cid}}``.

Blocks live in a real :class:`LocalStore`, so CIDs are real. ``requests`` records every
call for assertions; ``delay`` slows answers down to exercise client timeouts.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

from emrshare.errors import BlobNotFound, EmrShareError
from emrshare.storage import LocalStore, Profile, export_car, import_car
from emrshare.storage.cid import RAW, CidInfo
from emrshare.storage.unixfs import _decode_unixfs, decode_dag_pb

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Recorded:
    method: str
    command: str
    params: list[tuple[str, str]]


class KuboError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def _multipart_first_file(content_type: str, body: bytes) -> bytes:
    boundary = None
    for part in content_type.split(";"):
        part = part.strip()
        if part.startswith("boundary="):
            boundary = part[len("boundary=") :].strip('"')
    if boundary is None:
        raise KuboError("file argument 'path' is required")
    delim = b"--" + boundary.encode()
    start = body.index(delim) + len(delim) + 2
    headers_end = body.index(b"\r\n\r\n", start) + 4
    end = body.index(b"\r\n" + delim, headers_end)
    return body[headers_end:end]


@dataclass
class KuboDouble:
    """The ASGI app of the double (see the module docstring)."""

    root: Path
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = LocalStore(self.root)

    def _store_for(self, params: dict[str, str]) -> LocalStore:
        version = int(params.get("cid-version", "0"))
        raw = params.get("raw-leaves", "false" if version == 0 else "true") == "true"
        chunker = params.get("chunker", "size-262144")
        if not chunker.startswith("size-"):
            raise KuboError(f"chunker {chunker!r} not supported by this double")
        links = int(params.get("max-file-links", "174"))
        return LocalStore(self.root, Profile("rpc", version, raw, int(chunker[5:]), links))

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
        command = path.removeprefix("/api/v0/")
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
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["method"] != "POST":
            await self._send(send, 405, b"405 - Method Not Allowed", "text/plain")
            return
        try:
            status, payload, ctype = await asyncio.to_thread(
                self._handle, command, pairs, headers, bytes(body)
            )
        except KuboError as exc:
            status, ctype = exc.status, "application/json"
            payload = json.dumps({"Message": str(exc), "Code": 0, "Type": "error"}).encode()
        await self._send(send, status, payload, ctype)

    @staticmethod
    async def _send(send: Send, status: int, payload: bytes, ctype: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _handle(
        self, command: str, pairs: list[tuple[str, str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        params = dict(pairs)
        arg = params.get("arg", "")
        js = "application/json"
        try:
            if command == "add":
                data = _multipart_first_file(headers.get("content-type", ""), body)
                store = self._store_for(params)
                cid = store.put(data, pin=params.get("pin", "true") == "true")
                line = {"Name": "blob", "Hash": cid, "Size": str(len(data))}
                return 200, (json.dumps(line) + "\n").encode(), js
            if command == "cat":
                # Unverified, like a remote node that may be corrupt: the client checks.
                return 200, b"".join(self._cat(CidInfo.parse(arg))), "text/plain"
            if command == "block/get":
                # Raw bytes from disk, unverified, like any remote node: the client verifies.
                return 200, self.store._read_block(CidInfo.parse(arg)), "text/plain"
            if command == "block/stat":
                info = CidInfo.parse(arg)
                size = len(self.store._read_block(info))
                return 200, json.dumps({"Key": arg, "Size": size}).encode(), js
            if command == "pin/add":
                self.store.pin(self._cid(arg))
                return 200, json.dumps({"Pins": [arg]}).encode(), js
            if command == "pin/rm":
                if not self.store.is_pinned(self._cid(arg)):
                    raise KuboError("not pinned or pinned indirectly")
                self.store.unpin(self._cid(arg))
                return 200, json.dumps({"Pins": [arg]}).encode(), js
            if command == "pin/ls":
                if arg:
                    if not self.store.is_pinned(self._cid(arg)):
                        raise KuboError(f"path '{arg}' is not pinned")
                    keys = [arg]
                else:
                    keys = list(self.store.pins())
                body_out = {"Keys": {k: {"Type": "recursive"} for k in keys}}
                return 200, json.dumps(body_out).encode(), js
            if command == "dag/export":
                out = io.BytesIO()
                export_car(self.store, [self._cid(arg)], out)
                return 200, out.getvalue(), "application/vnd.ipld.car"
            if command == "dag/import":
                car = _multipart_first_file(headers.get("content-type", ""), body)
                roots = import_car(
                    self.store, io.BytesIO(car), pin_roots=params.get("pin-roots") == "true"
                )
                lines = [{"Root": {"Cid": {"/": r}, "PinErrorMsg": ""}} for r in roots]
                return 200, "".join(json.dumps(x) + "\n" for x in lines).encode(), js
            if command == "repo/gc":
                result = self.store.gc()
                lines = [{"Key": {"/": f"removed-{i}"}} for i in range(result.removed_blocks)]
                return 200, "".join(json.dumps(x) + "\n" for x in lines).encode(), js
        except BlobNotFound as exc:
            raise KuboError(
                f"block was not found locally (offline): ipld: could not find {exc.cid}"
            ) from exc
        except EmrShareError as exc:
            raise KuboError(str(exc)) from exc
        raise KuboError(f"unknown command {command!r}", status=404)

    def _cat(self, cid: CidInfo) -> Iterator[bytes]:
        block = self.store._read_block(cid)
        if cid.codec == RAW:
            yield block
            return
        node = decode_dag_pb(block)
        _, payload, _, _ = _decode_unixfs(node.data or b"")
        yield payload
        for child, _ in node.links:
            yield from self._cat(child)

    @staticmethod
    def _cid(arg: str) -> Any:
        CidInfo.parse(arg)
        return arg


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
                raise RuntimeError("the Kubo test double did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
