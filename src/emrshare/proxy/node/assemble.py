"""How a proxy is built: :meth:`ProxyParts.assemble` is the one way.

A proxy process (:class:`~emrshare.proxy.node.ProxyNode`) and in-process proxies (the
development network, tests) assemble their store, checks, watcher and audit flusher
here, over any :class:`~emrshare.proxy.chainview.ProxyChain` (a process uses
:class:`~emrshare.proxy.node.chain.NodeChain`)::

    parts = ProxyParts.assemble(NodeChain.connect(w3, deployment, keys.ethereum_key),
                                keys, data_dir / "proxy.sqlite3",
                                start_block=deployment.start_block)
    app = parts.app()                 # in process: drive parts.watcher / parts.flusher
    app = parts.app(background=True)  # a server: their loops run with the app
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from emrshare.crypto.keys import MemberKeys
from emrshare.proxy.chainview import ProxyChain
from emrshare.proxy.node._kfrags import kfrag_opener
from emrshare.proxy.node.app import create_app
from emrshare.proxy.node.audit import AuditFlusher
from emrshare.proxy.node.service import ProxyService
from emrshare.proxy.node.store import ProxyStore
from emrshare.proxy.node.watcher import ChainWatcher

__all__ = ["ProxyParts"]


@dataclass(frozen=True, slots=True)
class ProxyParts:
    """One proxy's pieces over a chain view: its store, checks, watcher and audit flusher."""

    chain: ProxyChain
    store: ProxyStore
    service: ProxyService
    watcher: ChainWatcher
    flusher: AuditFlusher

    @classmethod
    def assemble(
        cls,
        chain: ProxyChain,
        keys: MemberKeys,
        database: Path,
        *,
        start_block: int,
        confirmations: int = 0,
        flush_interval: float = 2.0,
        flush_entries: int = 64,
    ) -> ProxyParts:
        """Open the store at ``database`` (kfrags sealed under ``keys``' box key) and wire
        the rest to it.

        ``keys`` are the proxy's member keys; their Ethereum key must be ``chain``'s
        account (every answer is signed with it). The watcher follows the chain from
        ``start_block`` (the deployment's), ``confirmations`` blocks behind the head; the
        flusher logs served accesses every ``flush_interval`` seconds (0: at every
        :meth:`AuditFlusher.flush_once`) or once ``flush_entries`` are waiting.
        """
        store = ProxyStore(database, bytes(keys.box_private_key))
        opener = kfrag_opener(keys)
        service = ProxyService(chain, store, opener, response_key=keys.ethereum_key)
        watcher = ChainWatcher(
            chain, store, service, opener, start_block=start_block, confirmations=confirmations
        )
        flusher = AuditFlusher(chain, store, interval=flush_interval, max_entries=flush_entries)
        return cls(chain, store, service, watcher, flusher)

    def app(
        self,
        *,
        background: bool = False,
        poll_interval: float = 0.5,
        on_shutdown: Callable[[], None] | None = None,
    ) -> FastAPI:
        """The proxy's ASGI app. With ``background``, the watcher and flusher loops run
        for the app's lifetime (the journal drains at shutdown); without, the caller
        drives :meth:`ChainWatcher.step` and :meth:`AuditFlusher.flush_once`."""
        if not background:
            return create_app(self.service, on_shutdown=on_shutdown)
        return create_app(
            self.service,
            self.watcher,
            self.flusher,
            poll_interval=poll_interval,
            on_shutdown=on_shutdown,
        )
