"""One proxy process: configuration → keys, chain, store, service, watcher, flusher, app.

``emrshare proxy serve --config FILE`` calls :func:`serve`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from fastapi import FastAPI
from web3 import Web3

from emrshare.chain.client import _scrub as scrub  # the chain layer's URL-secret scrubber
from emrshare.chain.deploy import Deployment
from emrshare.crypto.keys import MemberKeys
from emrshare.crypto.keystore import load_member_keystore
from emrshare.errors import ChainError, EmrShareError
from emrshare.proxy._crypto import kfrag_opener
from emrshare.proxy.app import create_app
from emrshare.proxy.audit import AuditFlusher
from emrshare.proxy.chainview import ProxyChain
from emrshare.proxy.config import ProxyConfig
from emrshare.proxy.service import ProxyService
from emrshare.proxy.store import ProxyStore
from emrshare.proxy.watcher import ChainWatcher
from emrshare.proxy.web3chain import Web3ProxyChain

__all__ = ["ProxyNode", "ProxyParts", "serve"]


@dataclass(frozen=True, slots=True)
class ProxyParts:
    """One proxy's pieces over a chain view: its store, checks, watcher and audit flusher.

    A proxy process (:class:`ProxyNode`) and in-process proxies (``Network.local()``,
    tests) are assembled the same way, here.
    """

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
        """Open the store (kfrags sealed under ``keys``' box key) and wire the rest to it."""
        store = ProxyStore(database, bytes(keys.box_private_key))
        opener = kfrag_opener(keys)
        service = ProxyService(chain, store, opener, response_key=keys.ethereum_key)
        watcher = ChainWatcher(
            chain, store, service, opener, start_block=start_block, confirmations=confirmations
        )
        flusher = AuditFlusher(chain, store, interval=flush_interval, max_entries=flush_entries)
        return cls(chain, store, service, watcher, flusher)


class ProxyNode:
    """The assembled proxy. Build with :meth:`from_config`; :meth:`app` is the ASGI app."""

    def __init__(self, config: ProxyConfig, keys: MemberKeys) -> None:
        self.config = config
        self.keys = keys
        deployment = Deployment.read(config.deployment)
        session = requests.Session()
        # requests re-reads the proxy environment variables on every call otherwise
        # (~2 ms per re-encryption request); the chain endpoint is configured explicitly.
        session.trust_env = False
        # One pooled connection per request thread (the default pool of 10 makes the
        # 40 request threads open and drop connections to the node).
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        w3 = Web3(
            Web3.HTTPProvider(
                config.rpc_url, request_kwargs={"timeout": config.rpc_timeout}, session=session
            )
        )
        # The validation middleware asks eth_chainId before every call: one extra round
        # trip per re-encryption request. The chain id is checked once, here, instead.
        with contextlib.suppress(ValueError):
            w3.middleware_onion.remove("validation")
        try:
            deployment.check(w3)  # right chain id, contracts present: once, at start-up
        except EmrShareError:
            raise
        except Exception as exc:
            where = urlsplit(config.rpc_url)  # not the path or credentials: API keys
            raise ChainError(
                f"cannot reach the chain at {where.scheme}://{where.hostname}:{where.port}: "
                f"{scrub(exc)}; check [chain] rpc_url"
            ) from exc
        parts = ProxyParts.assemble(
            Web3ProxyChain(w3, deployment, keys.ethereum_key),
            keys,
            config.database,
            start_block=deployment.start_block,
            confirmations=config.confirmations,
            flush_interval=config.flush_interval,
            flush_entries=config.flush_entries,
        )
        self.chain, self.store, self.service = parts.chain, parts.store, parts.service
        self.watcher, self.flusher = parts.watcher, parts.flusher

    def __repr__(self) -> str:
        return (
            f"ProxyNode(address={self.keys.address}, listen={self.config.host}:{self.config.port})"
        )

    @classmethod
    def from_config(cls, config: ProxyConfig) -> ProxyNode:
        """Open the keystore (password from the configured environment variable)."""
        keys = load_member_keystore(config.keystore, config.password())
        return cls(config, keys)

    def app(self) -> FastAPI:
        return create_app(
            self.service,
            self.watcher,
            self.flusher,
            poll_interval=self.config.poll_interval,
            on_shutdown=self.store.close,
        )


def serve(config: ProxyConfig, *, log_level: str = "info") -> None:
    """Run a proxy under uvicorn until SIGINT/SIGTERM (the audit journal drains first)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    node = ProxyNode.from_config(config)
    uvicorn.run(
        node.app(),
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=False,
        http="auto",  # httptools (a dependency) when importable, else h11
        timeout_graceful_shutdown=30,
        # Longer than clients keep idle connections (httpx: 5 s), so a client never
        # sends on a connection the server is closing at that moment.
        timeout_keep_alive=75,
    )
