"""The latest block header over a bare keep-alive JSON-RPC connection.

Every request is judged at the latest block, read after it arrived (:mod:`._head`), so
this read is on the path of every request. Through web3's provider stack (middleware,
``requests``, ``urllib3``) one ``eth_getBlockByNumber`` costs the proxy about 2 ms of CPU,
several re-encryptions' worth; the same call over ``http.client`` costs a tenth of that.
The answer is the same JSON-RPC answer from the same node; any failure falls back to the
chain client's own read, so a transient fault here changes nothing but the cost.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["light_head_reader"]

Read = Callable[[], tuple[int, int, bytes]]


class _LightHead:
    """``eth_getBlockByNumber("latest")`` on one keep-alive connection per thread."""

    def __init__(self, url: str, timeout: float, fallback: Read) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._fallback = fallback
        self._local = threading.local()
        self._body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getBlockByNumber",
                "params": ["latest", False],
            }
        ).encode()

    def __repr__(self) -> str:  # never the URL: it may carry an API key
        return "LightHead()"

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _once(self) -> tuple[int, int, bytes]:
        conn = self._connection()
        conn.request("POST", self._path, self._body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        block = json.loads(data)["result"]
        return (
            int(block["number"], 16),
            int(block["timestamp"], 16),
            bytes.fromhex(block["hash"].removeprefix("0x")),
        )

    def __call__(self) -> tuple[int, int, bytes]:
        try:
            return self._once()
        except Exception:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None
            return self._fallback()


def light_head_reader(url: str | None, timeout: float, fallback: Read) -> Read:
    """A reader of the latest (number, time, hash) from the node at ``url`` (http or
    https, no credentials in the URL's user part), falling back to ``fallback`` on any
    failure; ``fallback`` itself for any other URL."""
    if not url:
        return fallback
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return fallback
    return _LightHead(url, timeout, fallback)
