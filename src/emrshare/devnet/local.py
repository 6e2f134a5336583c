"""A whole emrshare network in this process, for notebooks, examples and tests.

:meth:`LocalNetwork.start` runs a py-evm chain (web3's ``EthereumTesterProvider``), deploys
the contracts, keeps blobs in a ``LocalStore`` under ``path`` and serves the re-encryption
proxies from this process, each registered and admitted through the roles' public API,
like any member.

The proxies follow the chain as requests reach them: before one answers, it catches up
with the chain head, and right after, it logs the access it served on chain. So a read
never waits for a poll and the patient's audit trail shows it at once, without a test
hook on any production path (:meth:`LocalNetwork.settle` is one, for tests only).

Example::

    with LocalNetwork.start(Path("/tmp/play")) as net:
        admin = ConsortiumAdmin(net, net.admin_key)
        keys = MemberKeys.generate(ethereum_key=net.dev_keys[0])
        hospital = Provider(net, keys, state_dir=net.state_dir("hospital"))

The chain lives in memory, so each start is a new one: a start removes the state an
earlier start left under ``path`` (see :mod:`emrshare.devnet._localstate`) and runs the
same script again as if for the first time.

**Warning:** development only. The chain lives in memory and is gone when the process
exits; the keys are the well-known development keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
from eth_account import Account
from web3 import EthereumTesterProvider, Web3
from web3.types import Wei

from emrshare._files import private_dir
from emrshare.chain import Deployment, Role, deploy_contracts
from emrshare.crypto import MemberKeys
from emrshare.devnet import _localstate
from emrshare.devnet.devnode import dev_private_keys
from emrshare.errors import ConfigurationError
from emrshare.network import Network
from emrshare.proxy import RoutingTransport
from emrshare.proxy.node import NodeChain, ProxyParts
from emrshare.roles import ConsortiumAdmin, Requester
from emrshare.storage import LocalStore

__all__ = ["LocalNetwork"]

#: Development keys funded on the in-process chain: the admin, the proxies, the
#: ``dev_keys`` handed out to notebooks and tests, and the read-only sender; one more
#: (index 24) is the relayer's, used by nothing else.
_FUNDED_KEYS = 24
#: Where :meth:`LocalNetwork.state_dir` puts the members' state, under the network's path.
_MEMBERS = "members"


class LocalNetwork(Network):
    """A :class:`~emrshare.network.Network` whose chain, store and proxies all live in this
    process. Start one with :meth:`start`; :meth:`close` (or ``with``) stops it.

    ``admin_key`` is the consortium admin's Ethereum key and ``dev_keys`` are more funded
    keys for the members a notebook or test creates
    (``MemberKeys.generate(ethereum_key=net.dev_keys[0])``); ``proxy_keys`` are the
    in-process proxies' keys.
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        store: LocalStore,
        *,
        admin_key: bytes,
        dev_keys: list[bytes],
        read_key: bytes,
        threshold: int = 2,
    ) -> None:
        self._proxies: dict[str, ProxyParts] = {}
        self._routes = RoutingTransport()
        super().__init__(
            w3,
            deployment,
            store,
            threshold=threshold,
            name="local",
            read_key=read_key,
            proxy_transport=_FollowingTransport(self._proxies, self._routes),
        )
        self.admin_key = admin_key
        self.dev_keys = dev_keys
        self.proxy_keys: list[MemberKeys] = []
        self._path = Path()

    @classmethod
    def start(
        cls, path: Path | str, *, proxies: int = 3, threshold: int = 2, relay: bool = False
    ) -> LocalNetwork:
        """A py-evm chain with the contracts deployed, a ``LocalStore`` under ``path`` and
        ``proxies`` admitted proxies served in-process; grants default to ``threshold``
        of them. With ``relay``, a relay service runs in a thread of this process on a
        loopback port (:attr:`relay_url`), paying patients' gas from its own key.

        Every start is a new chain, so it starts clean: what an earlier start in ``path``
        created (recorded in ``path/local-network.json``) is removed, with one log line
        on the ``emrshare.devnet`` logger; nothing else in ``path`` is touched. State there
        that no LocalNetwork recorded, or a network still running from ``path``, is a
        :class:`~emrshare.errors.LocalStateError`."""
        path = private_dir(Path(path))
        fd = _localstate.lock(path)
        try:
            net = cls._started(path, proxies, threshold)
        except BaseException:
            os.close(fd)
            raise
        net._closers.insert(0, lambda: os.close(fd))  # released last, after the proxies
        if relay:
            try:
                net._start_relay()
            except BaseException:
                net.close()
                raise
        return net

    def _start_relay(self) -> None:
        """Serve a relay in a thread, from the relayer's development key."""
        from emrshare.chain import ChainClient
        from emrshare.devnet.relayd import InProcessRelay
        from emrshare.relay.service import RelayService

        client = ChainClient(self.w3, dev_private_keys(_FUNDED_KEYS + 1)[_FUNDED_KEYS])
        server = InProcessRelay(RelayService(client, self.deployment)).start()
        self.relay_url = server.url
        self.on_close(server.stop)

    @classmethod
    def _started(cls, path: Path, proxies: int, threshold: int) -> LocalNetwork:
        w3 = Web3(EthereumTesterProvider())
        hosts = [f"proxy-{i + 1}.local" for i in range(proxies)]
        _localstate.claim(
            path,
            ["store", _MEMBERS, *hosts],
            chain_id=int(w3.eth.chain_id),
            genesis=bytes(w3.eth.get_block(0)["hash"]).hex(),
        )
        keys = dev_private_keys(_FUNDED_KEYS + 1)
        funder = w3.eth.accounts[0]
        for key in keys:
            w3.eth.send_transaction(
                {"from": funder, "to": Account.from_key(key).address, "value": Wei(10**22)}
            )
        keys = keys[:_FUNDED_KEYS]  # the last is the relayer's (see _start_relay)
        admin_key, proxy_keys = keys[0], keys[1 : 1 + proxies]
        net = cls(
            w3,
            deploy_contracts(w3, admin_key),
            LocalStore(path / "store"),
            admin_key=admin_key,
            dev_keys=keys[1 + proxies : -1],
            # py-evm insists on a ``from`` in eth_call: a funded key nobody else uses.
            read_key=keys[-1],
            threshold=threshold,
        )
        net._path = path
        admin = ConsortiumAdmin(net, admin_key)
        for eth, host in zip(proxy_keys, hosts, strict=True):
            net._add_proxy(admin, MemberKeys.generate(ethereum_key=eth), host, path)
        return net

    def state_dir(self, name: str) -> Path:
        """A fresh state directory for member ``name`` (a facade's ``state_dir``), under
        this network's ``path``: its journals belong to this chain, so the next
        :meth:`start` in ``path`` removes them with the rest.

        Example::

            hospital = Provider(net, keys, state_dir=net.state_dir("hospital-a"))
        """
        if not (name and name not in (".", "..") and "/" not in name and "\0" not in name):
            raise ConfigurationError(
                f"{name!r} is not a plain directory name; use e.g. 'hospital-a'"
            )
        return private_dir(self._path / _MEMBERS / name)

    def _add_proxy(self, admin: ConsortiumAdmin, keys: MemberKeys, host: str, path: Path) -> None:
        """Register ``keys`` as a member serving at ``host``, admit it as a proxy and serve
        it from this process."""
        state = private_dir(path / host)
        Requester(self, keys, state_dir=state).apply(endpoint=f"http://{host}")
        admin.admit(keys.address, Role.PROXY)
        parts = ProxyParts.assemble(
            NodeChain.connect(self.w3, self.deployment, keys.ethereum_key),
            keys,
            state / "proxy.sqlite3",
            start_block=self.deployment.start_block,
            flush_interval=0.0,
        )
        self.on_close(parts.store.close)
        self.proxy_keys.append(keys)
        self._proxies[host] = parts
        self._routes.route(host, parts.app())

    def settle(self) -> None:
        """Test hook: bring every in-process proxy up to the chain head and log the
        accesses they served. Requests do this for the proxy they reach; a test calls it
        to look at proxy state without sending one. :class:`Network` has no such hook:
        real proxies follow the chain on their own."""
        for parts in self._proxies.values():
            _catch_up(parts)
            _log_served(parts)


def _catch_up(parts: ProxyParts) -> None:
    while parts.watcher.step():
        pass


def _log_served(parts: ProxyParts) -> None:
    parts.flusher.flush_once()
    parts.flusher.settle()


class _FollowingTransport(httpx.AsyncBaseTransport):
    """Routes proxy requests (through ``routes``) to in-process proxies that catch up with
    the chain before they answer and log the served access right after.

    One request at a time: the proxies answer in worker threads and logging an access
    mines a block, and the in-process chain is not safe to use from several threads. So
    a read is served, deterministically, by the first M proxies it asks (the client
    cancels the rest before their turn), and each of them has logged it when it returns.
    """

    def __init__(self, proxies: Mapping[str, ProxyParts], routes: httpx.AsyncBaseTransport):
        self._proxies = proxies
        self._routes = routes
        # A thread lock, not an asyncio one: every sync read runs its own event loop, in
        # whatever thread calls it, and requests of every loop must take turns (an asyncio
        # lock per loop let two threads mine on the chain at once).
        self._lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def _serial(self) -> AsyncIterator[None]:
        # Polled, never a blocking acquire in an executor: a request cancelled while it
        # waits (the client drops the proxies it no longer needs) must not take the lock
        # later and leave it held.
        while not self._lock.acquire(blocking=False):
            await asyncio.sleep(0.001)
        try:
            yield
        finally:
            self._lock.release()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        parts = self._proxies.get(request.url.host)
        async with self._serial():
            if parts is not None:
                _catch_up(parts)
            response = await self._routes.handle_async_request(request)
            if parts is not None:
                _log_served(parts)
            return response
