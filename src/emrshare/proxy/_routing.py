"""An httpx transport that answers each host from an in-process ASGI app: proxies that
run in this process (a development network, tests) reached as over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import httpx

__all__ = ["ASGIApp", "RoutingTransport"]

_Scope = MutableMapping[str, Any]
#: An ASGI application (a proxy's :func:`~emrshare.proxy.node.app.create_app`).
ASGIApp = Callable[
    [_Scope, Callable[[], Awaitable[_Scope]], Callable[[_Scope], Awaitable[None]]],
    Awaitable[None],
]


class RoutingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers each host from its in-process ASGI app.

    For proxies that run in this process (a development network, tests): pass it as
    ``ThresholdClient(..., transport=...)``. A host without an app is down (the request
    raises :class:`httpx.ConnectError`, as for an unreachable proxy).
    """

    def __init__(self, apps: Mapping[str, ASGIApp] | None = None) -> None:
        self._apps: dict[str, ASGIApp] = {}
        self._routes: dict[str, httpx.ASGITransport] = {}
        for host, app in (apps or {}).items():
            self.route(host, app)

    def __repr__(self) -> str:
        return f"RoutingTransport(hosts={sorted(self._routes)})"

    @property
    def hosts(self) -> list[str]:
        """The hosts that answer, sorted."""
        return sorted(self._routes)

    def route(self, host: str, app: ASGIApp) -> None:
        """Answer ``host`` from ``app`` (replacing its previous app)."""
        self._apps[host] = app
        self._routes[host] = httpx.ASGITransport(app=app)

    def unroute(self, host: str) -> ASGIApp:
        """Take ``host`` down; returns its app (to :meth:`route` it again later)."""
        del self._routes[host]
        return self._apps.pop(host)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._routes.get(request.url.host)
        if route is None:
            raise httpx.ConnectError(f"no in-process proxy at {request.url.host}")
        return await route.handle_async_request(request)

    async def aclose(self) -> None:
        for route in self._routes.values():
            await route.aclose()
