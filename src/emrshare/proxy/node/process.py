"""One proxy process: configuration → keys, chain connection, :class:`ProxyParts`, app.

``emrshare proxy serve --config FILE`` calls :func:`serve`.
"""

from __future__ import annotations

import contextlib
import logging

import requests
from fastapi import FastAPI
from web3 import Web3

from emrshare.chain import ChainClient, Deployment
from emrshare.crypto.keys import MemberKeys
from emrshare.crypto.keystore import load_member_keystore
from emrshare.proxy.node.assemble import ProxyParts
from emrshare.proxy.node.chain import NodeChain
from emrshare.proxy.node.config import ProxyConfig

__all__ = ["ProxyNode", "serve"]


class ProxyNode:
    """A proxy process's node: its config, keys and :attr:`parts` (built by
    :meth:`ProxyParts.assemble`). Build with :meth:`from_config`; :meth:`app` is the
    ASGI app."""

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
        # Right chain id, contracts present: once, at start-up (an unreachable node is a
        # ChainError, its URL scrubbed, from Deployment.check).
        deployment.check(w3)
        self.parts = ProxyParts.assemble(
            NodeChain(ChainClient(w3, keys.ethereum_key), deployment),
            keys,
            config.database,
            start_block=deployment.start_block,
            confirmations=config.confirmations,
            flush_interval=config.flush_interval,
            flush_entries=config.flush_entries,
        )

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
        """The ASGI app, with the watcher and flusher loops running for its lifetime."""
        return self.parts.app(
            background=True,
            poll_interval=self.config.poll_interval,
            on_shutdown=self.parts.store.close,
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
