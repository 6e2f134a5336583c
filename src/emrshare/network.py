"""One object that binds a chain endpoint, the deployment, a blob store and the proxies.

``Network.from_config(path)`` connects to the deployment a JSON file describes
(``emrshare devnet up`` writes one). For notebooks, examples and quick tests,
:class:`emrshare.devnet.LocalNetwork` is a ``Network`` whose chain, store and proxies all
run in this process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain import ChainClient, Contracts, Deployment, Member, Role, http_web3
from emrshare.errors import ConfigurationError, LocalStateError
from emrshare.storage import BlobStore, KuboStore, LocalStore

__all__ = ["Network", "NetworkConfig", "StoreConfig"]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where blobs go: ``kind`` ``"local"`` (an embedded store at ``path``) or ``"kubo"``
    (a Kubo / IPFS Cluster RPC endpoint at ``url``)."""

    kind: str = "local"
    path: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Everything a client needs to reach one emrshare network (a JSON file on disk).

    ``threshold`` is the consortium's default M for new grants; the proxies themselves
    are read from the on-chain registry. ``relay`` is the URL of a relay service that
    pays the gas of patients' operations (``emrshare relay serve``), if the network has
    one.
    """

    rpc_url: str
    deployment: Deployment
    store: StoreConfig = field(default_factory=StoreConfig)
    threshold: int = 2
    confirmations: int = 1
    name: str = "emrshare"
    relay: str | None = None

    def to_json(self) -> dict[str, Any]:
        relay = {"relay": self.relay} if self.relay else {}
        return {
            **relay,
            "name": self.name,
            "rpc_url": self.rpc_url,
            "deployment": self.deployment.to_json(),
            "store": asdict(self.store),
            "threshold": self.threshold,
            "confirmations": self.confirmations,
        }

    def write(self, path: Path) -> None:
        """Write the configuration atomically."""
        private_dir(path.parent)
        write_atomically(path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> NetworkConfig:
        """Read a configuration written by :meth:`write`."""
        try:
            data = read_json_object(Path(path), "network configuration")
        except FileNotFoundError:
            raise ConfigurationError(
                f"no network configuration at {path}; write one with NetworkConfig.write "
                "(every devnet's data directory holds one) or point at an existing file"
            ) from None
        try:
            dep = data["deployment"]
            store = data.get("store") or {}
            return cls(
                name=str(data.get("name", "emrshare")),
                rpc_url=str(data["rpc_url"]),
                deployment=Deployment.from_json(dep),
                store=StoreConfig(
                    kind=str(store.get("kind", "local")),
                    path=store.get("path"),
                    url=store.get("url"),
                ),
                threshold=int(data.get("threshold", 2)),
                confirmations=int(data.get("confirmations", 1)),
                relay=str(data["relay"]) if data.get("relay") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LocalStateError(
                path,
                f"network configuration {path} is missing or has a bad field ({exc!r:.80}); "
                "restore it from a backup or move it aside",
            ) from exc


class Network:
    """Chain + deployment + blob store + proxies: what every facade is built on.

    Example::

        net = Network.from_config(Path("~/.emrshare/network.json").expanduser())
        hospital = Provider(net, keys)

    ``proxy_transport`` routes proxy HTTP calls through a custom httpx transport (a
    :class:`~emrshare.devnet.LocalNetwork` serves its proxies in-process through one);
    ``None`` uses the network.
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        store: BlobStore,
        *,
        threshold: int = 2,
        confirmations: int = 1,
        proxy_transport: httpx.AsyncBaseTransport | None = None,
        name: str = "emrshare",
        read_key: bytes | None = None,
        relay_url: str | None = None,
    ) -> None:
        self.w3 = w3
        #: The network's relay service (patients' gas), if it has one.
        self.relay_url = relay_url
        self.deployment = deployment
        self.store = store
        self.threshold = threshold
        self.confirmations = confirmations
        self.proxy_transport = proxy_transport
        self.name = name
        # Reads need no key; ``read_key`` only names a sender for nodes that insist on a
        # ``from`` in eth_call (the in-process py-evm chain does).
        self.chain = ChainClient(w3, read_key, confirmations=confirmations)
        self.contracts = Contracts.from_deployment(self.chain, deployment)
        self._clients: dict[bytes, Contracts] = {}
        self._closers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Network({self.name!r}, chain_id={self.deployment.chain_id})"

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: NetworkConfig | Path | str) -> Network:
        """Connect to the network a :class:`NetworkConfig` (or its JSON file) describes."""
        if not isinstance(config, NetworkConfig):
            config = NetworkConfig.read(Path(config))
        w3 = http_web3(config.rpc_url, timeout=30)
        store: BlobStore
        if config.store.kind == "local":
            if not config.store.path:
                raise ConfigurationError("a local store needs a path in the network config")
            store = LocalStore(config.store.path)
        elif config.store.kind == "kubo":
            store = KuboStore(config.store.url or "http://127.0.0.1:5001")
        else:
            raise ConfigurationError(
                f"unknown store kind {config.store.kind!r} in the network config: "
                "use 'local' or 'kubo'"
            )
        return cls(
            w3,
            config.deployment,
            store,
            threshold=config.threshold,
            confirmations=config.confirmations,
            name=config.name,
            relay_url=config.relay,
        )

    def close(self) -> None:
        """Release what this network started (in-process proxies, connections)."""
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the network is closed."""
        self._closers.append(fn)

    # -- shared helpers for the facades -----------------------------------------------------

    def contracts_for(self, private_key: bytes) -> Contracts:
        """The contracts, sending transactions signed with ``private_key``.

        One client per key, so its nonce manager is shared by every facade of that key.
        """
        client = self._clients.get(private_key)
        if client is None:
            client = self.contracts.with_client(self.chain.with_key(private_key))
            self._clients[private_key] = client
        return client

    def proxies(self) -> list[Member]:
        """The consortium's proxies (role PROXY), as registered on chain."""
        return self.contracts.registry.proxies()

    def member(self, address: str) -> Member:
        """A member's registry record (keys, role, endpoint)."""
        return self.contracts.registry.member(address)

    def is_member(self, address: str) -> bool:
        return self.contracts.registry.role_of(address) is not Role.NONE

    def chain_time(self) -> int:
        """The latest block's timestamp: grants expire by chain time, not wall time."""
        return self.chain.chain_time()
