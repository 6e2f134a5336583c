"""One HTTP/1.1 keep-alive connection on a raw socket, so a test sees whether the server
kept it open after an answer (httpx and http.client reconnect silently)."""

from __future__ import annotations

import contextlib
import http.client
import socket
from urllib.parse import urlsplit

__all__ = ["ConnectionLost", "KeepAlive"]


class ConnectionLost(Exception):
    """The server closed or reset the connection (or stopped answering)."""


class KeepAlive:
    """Requests over one socket; :class:`ConnectionLost` if the server dropped it."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.requests = 0

    def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        """Send one POST and read its answer: ``(status, body)``."""
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        try:
            self.sock.sendall(head.encode() + body)
            resp = http.client.HTTPResponse(self.sock)
            resp.begin()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc
        self.requests += 1
        if resp.will_close:
            raise ConnectionLost(f"HTTP {resp.status} answered with Connection: close")
        return resp.status, data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
