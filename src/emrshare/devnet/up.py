"""A local development network that outlives the command that started it.

``up`` starts a chain node with persisted state (anvil by default, ``node="ganache"`` for
ganache; a restart keeps the node the state was made with), deploys the contracts (once;
a restart reloads them from the state), starts the proxy processes (3, threshold 2 by
default) and a relay that pays patients' gas (development account 8), sets up an
embedded store (or, with ``store="ipfs"``, starts an offline js-ipfs
daemon whose RPC API becomes the network's BlobStore), admits demo members, starts the
``deid`` member's research de-identification service and writes profiles plus
``network.json`` into the data directory. ``down`` stops every process recorded in
``devnet/pids.json``; ``status`` reports. Used by ``emrshare devnet`` and ``make demo``.

**Warning:** development only. The accounts are the well-known development keys and the
demo keystores use a cheap KDF and a known password.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from emrshare._files import private_dir, write_atomically
from emrshare._process import free_port, health_answers, pid_alive, spawn, stop_group
from emrshare.chain import Deployment, Role, deploy_contracts, http_web3
from emrshare.chain.deploy import write_broadcast
from emrshare.crypto import MemberKeys, PatientKeys, load_member_keystore, save_keystore
from emrshare.devnet._emergency import setup_emergency
from emrshare.devnet._files import NODES, node_to_start, read_pids, read_settings, recorded_node
from emrshare.devnet._research import start_deid_service
from emrshare.devnet.devnode import DevNode, NodeKind, dev_private_keys, dev_secrets
from emrshare.devnet.ipfsd import IpfsDaemon, daemon_answers
from emrshare.devnet.relayd import RelayDaemon
from emrshare.errors import ChainError, ConfigurationError, EmrShareError
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.proxy.node import ProxyConfig
from emrshare.roles import ConsortiumAdmin, Patient, Profiles, Requester
from emrshare.roles.profiles import Kind

__all__ = [
    "DEMO_PROFILES",
    "DEVNET_PASSWORD",
    "DevnetStatus",
    "ProcessStatus",
    "devnet_down",
    "devnet_status",
    "devnet_up",
    "fund_account",
]

#: Password of the demo keystores unless ``$EMRSHARE_PASSWORD`` says otherwise.
DEVNET_PASSWORD = "devnet"  # noqa: S105 - development keystores only, documented
_PROXY_PASSWORD_ENV = "EMRSHARE_DEVNET_PROXY_PASSWORD"  # noqa: S105 - a variable name

#: Demo profiles: name → (kind, role, index of the development key that funds it).
DEMO_PROFILES: dict[str, tuple[Kind, str | None, int]] = {
    "admin": ("member", "admin", 0),
    "hospital-a": ("member", "provider", 4),
    "hospital-b": ("member", "provider", 5),
    "insurer": ("member", "insurer", 6),
    "patient": ("patient", None, 7),
    "pharmacy": ("member", "pharmacy", 9),
    "researcher": ("member", "researcher", 10),
}
_PROXY_KEYS = (1, 2, 3)
_EMERGENCY_MEMBERS = ("hospital-a",)  # given CAP_EMERGENCY and the emergency key file
_RELAYER_KEY = 8  # the development account the devnet's relay pays patients' gas from
ANVIL_STATES = 10_000_000  # historical states anvil keeps on disk (see _start_chain)
Redact = tuple[str, ...] | None

Log = Callable[[str], None]
_Pids = dict[str, dict[str, object]]


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """One devnet process: its pid, whether it runs, and whether it answers."""

    name: str
    pid: int
    alive: bool
    healthy: bool
    url: str


@dataclass(frozen=True, slots=True)
class DevnetStatus:
    """The devnet as ``emrshare devnet status`` reports it; ``node`` is the chain node
    (``"anvil"`` or ``"ganache"``) its state was made with, ``None`` before any ``up``."""

    running: bool
    rpc_url: str | None
    chain_id: int | None
    block: int | None
    processes: list[ProcessStatus] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    node: str | None = None


def _dir(data_dir: Path) -> Path:
    return Path(data_dir) / "devnet"


def _read_pids(dev: Path) -> dict[str, dict[str, object]]:
    return read_pids(dev / "pids.json")


def _write_pids(dev: Path, pids: dict[str, dict[str, object]]) -> None:
    write_atomically(dev / "pids.json", json.dumps(pids, indent=2, sort_keys=True))


def _spawn(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, redact: Redact = None
) -> int:
    # Detached: the process outlives this command; `down` stops it by its process group.
    return spawn(cmd, log_path, detach=True, env=env, redact=redact).pid


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait(check: Callable[[], bool], what: str, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise ChainError(f"{what} did not come up within {timeout:.0f}s; see {log_path}:\n{tail}")


def devnet_up(
    data_dir: Path,
    *,
    password: str | None = None,
    proxies: int = 3,
    threshold: int = 2,
    store: str = "local",
    node: NodeKind | None = None,
    log: Log = lambda _: None,
    state_interval: float | None = 2.0,
) -> DevnetStatus:
    """Start (or restart from persisted state) the devnet in ``data_dir``.

    ``node`` is the chain: ``"anvil"`` or ``"ganache"``; ``None`` means the one the devnet's
    state was made with (anvil for a new devnet). ``store`` is ``"local"`` (an embedded store
    in the devnet dir) or ``"ipfs"`` (a js-ipfs daemon, repo ``devnet/ipfs``, stopped by
    :func:`devnet_down`). anvil writes its state every ``state_interval`` seconds and at
    ``down`` (``None``: only at ``down``, for large benchmark chains)."""
    if node is not None and node not in NODES:
        raise ConfigurationError(f"unknown devnet node {node!r}; use 'anvil' or 'ganache'")
    if store not in ("local", "ipfs"):
        raise ConfigurationError(f"unknown devnet store {store!r}; use 'local' or 'ipfs'")
    if not 1 <= threshold <= proxies <= len(_PROXY_KEYS):
        raise ConfigurationError(f"the devnet runs 1 to {len(_PROXY_KEYS)} proxies, threshold ≤ N")
    password = password or os.environ.get("EMRSHARE_PASSWORD") or DEVNET_PASSWORD
    data_dir = Path(data_dir).expanduser().resolve()
    dev = _dir(data_dir)
    private_dir(dev)
    if any(pid_alive(int(str(p["pid"]))) for p in _read_pids(dev).values()):
        raise ConfigurationError(
            f"a devnet is already running from {data_dir}; see `emrshare devnet status` "
            "or stop it with `emrshare devnet down`"
        )
    kind = node_to_start(dev, node)
    ports = _Ports.settle(dev / "settings.json", proxies, kind)
    pids: dict[str, dict[str, object]] = {}
    log = _never_raising(log)
    try:
        chain = _start_chain(dev, kind, ports.chain, pids, log, state_interval)
        keys = dev_private_keys(12)
        w3 = http_web3(chain.rpc_url, timeout=30)
        deployment = _deployment(w3, dev / "deployment.json", keys[0], log)
        store_config = StoreConfig(kind="local", path=str(dev / "store"))
        if store == "ipfs":
            store_config = _start_ipfs(dev, ports.ipfs, pids, log)
        relay_port = free_port()
        config = NetworkConfig(
            rpc_url=chain.rpc_url,
            deployment=deployment,
            store=store_config,
            threshold=threshold,
            confirmations=1,
            name="devnet",
            relay=f"http://127.0.0.1:{relay_port}",
        )
        profiles = Profiles(data_dir)
        config.write(profiles.network_path)
        net = Network.from_config(config)
        admin = ConsortiumAdmin(net, keys[0])
        _start_proxies(net, admin, dev, chain.rpc_url, ports.proxies, keys, password, pids, log)
        relay = RelayDaemon.start(
            profiles.network_path,
            port=relay_port,
            log_path=dev / "relay.log",
            dev_account=_RELAYER_KEY,
            detach=True,
            wait=False,
        )
        pids["relay"] = {"pid": relay.pid, "url": relay.url}
        _write_pids(dev, pids)
        relay.wait_ready(60)
        log(f"{'relay':<11} {relay.url} (pays patients' gas; pid {relay.pid})")
        _demo_profiles(net, admin, profiles, keys, password, log)
        deid = start_deid_service(net, admin, profiles, keys, data_dir, dev, password, log)
        pids["deid"] = {"pid": deid[0], "url": deid[1]}
        _write_pids(dev, pids)
        setup_emergency(net, admin, keys[0], profiles, _EMERGENCY_MEMBERS, dev, log)
        _wait(lambda: health_answers(deid[1]), "the research service", 60, dev / "deid.log")
        net.close()
    except BaseException:
        devnet_down(data_dir)
        raise
    return devnet_status(data_dir)


def _never_raising(log: Log) -> Log:
    """``log``, except that it cannot fail: progress output that breaks (``devnet up |
    head -1`` closes the pipe) must never roll back a devnet that is starting fine. After
    a first failure the rest of the output is dropped."""
    broken = False

    def say(line: str) -> None:
        nonlocal broken
        if broken:
            return
        try:
            log(line)
        except Exception:
            broken = True

    return say


@dataclass(frozen=True, slots=True)
class _Ports:
    """The devnet's loopback ports, kept in ``settings.json`` so a restart reuses them
    (the profiles and proxy registrations name them)."""

    chain: int
    proxies: list[int]
    ipfs: list[int]

    @classmethod
    def settle(cls, path: Path, proxies: int, node: str) -> _Ports:
        """The ports ``path`` records, free ones for what it lacks; written back with the
        chain ``node``."""
        chain, proxy_ports, ipfs_ports = read_settings(path)
        ports = cls(
            chain or free_port(),
            (proxy_ports + [free_port() for _ in range(proxies)])[:proxies],
            (ipfs_ports + [free_port() for _ in range(3)])[:3],
        )
        write_atomically(
            path,
            json.dumps(
                {
                    "port": ports.chain,
                    "proxy_ports": ports.proxies,
                    "ipfs_ports": ports.ipfs,
                    "node": node,
                }
            ),
        )
        return ports


def _start_chain(
    dev: Path, kind: NodeKind, port: int, pids: _Pids, log: Log, every: float | None = 2.0
) -> DevNode:
    """anvil or ganache, its state persisted across ``down`` / ``up``."""
    chain_id, state = NODES[kind]
    node = DevNode(
        kind=kind,
        port=port,
        chain_id=chain_id,
        log_path=dev / f"{kind}.log",
        state_path=dev / state,
    )
    # anvil's state file holds only the head state unless told to keep history, and
    # readers call at old blocks (an entry's author role, a grant's keys): without it,
    # every read of a record written before a restart failed (BlockOutOfRangeError); and
    # running, it keeps only ~4,100 states by default (500 in memory, 3,600 on disk).
    interval = [] if every is None else ["--state-interval", f"{every:g}"]
    history = ["--preserve-historical-states", "--max-persisted-states", str(ANVIL_STATES)]
    extra = [*history, *interval] if kind == "anvil" else []
    pid = _spawn([*node.command(), *extra], node.log_path, redact=dev_secrets())
    pids[kind] = {"pid": pid, "url": node.rpc_url}
    _write_pids(dev, pids)
    _wait(lambda: _chain_ready(node), kind, 60, node.log_path)
    log(f"{kind:<11} {node.rpc_url} (chain {chain_id}, pid {pid})")
    return node


def _deployment(w3: Web3, path: Path, deployer: bytes, log: Log) -> Deployment:
    """The persisted deployment if the chain still has it, else a fresh one."""
    if path.exists():
        # A damaged file is an error (LocalStateError), not silently replaced.
        deployment = Deployment.read(path)
        try:
            deployment.check(w3)
            log(f"contracts   reloaded from state ({len(deployment.addresses)} contracts)")
            return deployment
        except EmrShareError:
            pass
    deployment = deploy_contracts(w3, deployer)
    deployment.write(path)
    write_broadcast(deployment, w3, path.parent)  # Foundry's run-latest.json beside it
    log(f"contracts   deployed ({', '.join(sorted(deployment.addresses))})")
    return deployment


def _start_ipfs(dev: Path, ports: list[int], pids: _Pids, log: Log) -> StoreConfig:
    """An offline js-ipfs daemon (repo ``devnet/ipfs``) as the network's blob store."""
    ipfs = IpfsDaemon.start(
        dev / "ipfs",
        api_port=ports[0],
        gateway_port=ports[1],
        swarm_port=ports[2],
        log_path=dev / "ipfs.log",
        detach=True,
        wait=False,
    )
    pids["ipfs"] = {"pid": ipfs.pid, "url": ipfs.api_url}
    _write_pids(dev, pids)
    ipfs.wait_ready(90)
    log(f"ipfs        {ipfs.api_url} (js-ipfs, offline; pid {ipfs.pid})")
    return StoreConfig(kind="kubo", url=ipfs.api_url)


def _start_proxies(
    net: Network,
    admin: ConsortiumAdmin,
    dev: Path,
    rpc_url: str,
    ports: list[int],
    keys: list[bytes],
    password: str,
    pids: dict[str, dict[str, object]],
    log: Log,
) -> None:
    """The proxy processes: keys in the devnet dir, registered with their endpoints and
    admitted, then started and waited for."""
    env = dict(os.environ, **{_PROXY_PASSWORD_ENV: password})
    for i, port in enumerate(ports):
        name = f"proxy-{i + 1}"
        pdir = dev / "proxies" / name
        private_dir(pdir)
        keystore = pdir / "keystore.json"
        if keystore.exists():
            pkeys = load_member_keystore(keystore, password)
        else:
            pkeys = MemberKeys(os.urandom(32), ethereum_key=keys[_PROXY_KEYS[i]])
            save_keystore(keystore, pkeys, password, opslimit=2, memlimit=64 * 1024 * 1024)
        url = f"http://127.0.0.1:{port}"
        member = Requester(net, pkeys, state_dir=pdir / "state")
        if member.apply(endpoint=url):
            admin.admit(pkeys.address, Role.PROXY)
        elif net.member(pkeys.address).endpoint != url:
            net.contracts_for(pkeys.ethereum_key).registry.set_endpoint(url)
        cfg = pdir / "proxy.toml"
        write_atomically(
            cfg,
            ProxyConfig(
                keystore=keystore,
                password_env=_PROXY_PASSWORD_ENV,
                rpc_url=rpc_url,
                deployment=dev / "deployment.json",
                data_dir=pdir / "data",
                port=port,
                poll_interval=0.2,
                flush_interval=1.0,
            ).to_toml(),
        )
        ppid = _spawn(
            [sys.executable, "-m", "emrshare.cli", "proxy", "serve", "--config", str(cfg)],
            pdir / "proxy.log",
            env,
        )
        pids[name] = {"pid": ppid, "url": url}
        _write_pids(dev, pids)
    for i in range(len(ports)):
        name = f"proxy-{i + 1}"
        url = str(pids[name]["url"])
        _wait(
            functools.partial(_http_ok, url + "/healthz"),
            name,
            90,
            dev / "proxies" / name / "proxy.log",
        )
        log(f"{name:<11} {url} (pid {pids[name]['pid']})")


def _demo_profiles(
    net: Network,
    admin: ConsortiumAdmin,
    profiles: Profiles,
    keys: list[bytes],
    password: str,
    log: Log,
) -> None:
    """The demo members and the patient, as profiles in the data dir, registered and
    admitted."""
    for name, (kind, role, key_index) in DEMO_PROFILES.items():
        if not profiles.exists(name):
            profiles.create(
                name, kind, password, role=role, ethereum_key=keys[key_index], fast_kdf=True
            )
        opened = profiles.unlock(name, password)
        state = profiles.get(name).state_dir
        if kind == "patient":
            assert isinstance(opened, PatientKeys)
            Patient(net, opened, state_dir=state).register()
        elif role != "admin":
            assert isinstance(opened, MemberKeys)
            if Requester(net, opened, state_dir=state).apply() or (
                net.contracts.registry.role_of(opened.address) is Role.NONE
            ):
                admin.admit(opened.address, Role[str(role).upper()])
        log(f"profile     {name:<11} {opened.address} ({role or kind})")


def fund_account(net: Network, funder_key: bytes, to: str, wei: int = 10**18) -> None:
    """Send ``wei`` from ``funder_key`` to ``to`` (new devnet members need gas)."""
    # Through the funder's shared client: its nonces stay in step with the funder's facades.
    net.contracts_for(funder_key).client.send(to, value=wei, with_logs=False)


def _chain_ready(node: DevNode) -> bool:
    try:
        return int(str(node.rpc("eth_chainId", timeout=1.0)), 16) == node.chain_id
    except (OSError, ValueError, ChainError):
        return False


def devnet_down(data_dir: Path, *, wipe: bool = False, timeout: float = 15.0) -> list[str]:
    """Stop every devnet process (proxies first, so they drain their audit logs, then
    the IPFS daemon, then the chain node, which saves its state). With ``wipe``, delete the chain
    state (and the IPFS repo) too."""
    dev = _dir(Path(data_dir).expanduser().resolve())
    pids = _read_pids(dev)
    order = sorted(pids, key=lambda n: (n in NODES, n == "ipfs"))
    stopped = []
    for name in order:
        if stop_group(int(str(pids[name]["pid"])), timeout):
            stopped.append(name)
    with contextlib.suppress(FileNotFoundError):
        (dev / "pids.json").unlink()
    if wipe and dev.exists():
        shutil.rmtree(dev)
        with contextlib.suppress(FileNotFoundError):
            Profiles(Path(data_dir)).network_path.unlink()
    return stopped


def devnet_status(data_dir: Path) -> DevnetStatus:
    """Which devnet processes run and answer, the chain head, the profiles."""
    data_dir = Path(data_dir).expanduser().resolve()
    dev = _dir(data_dir)
    pids = _read_pids(dev)
    procs = []
    rpc_url: str | None = None
    chain_id = block = None
    for name, info in sorted(pids.items()):
        pid, url = int(str(info["pid"])), str(info["url"])
        alive = pid_alive(pid)
        healthy = False
        if alive and name in NODES:
            rpc_url = url
            try:
                w3 = http_web3(url, timeout=2)
                chain_id, block = int(w3.eth.chain_id), int(w3.eth.block_number)
                healthy = True
            except Exception:
                healthy = False
        elif alive and name == "ipfs":
            healthy = daemon_answers(url)
        elif alive and name in ("relay", "deid"):
            healthy = health_answers(url)
        elif alive:
            healthy = _http_ok(url + "/healthz")
        procs.append(ProcessStatus(name, pid, alive, healthy, url))
    names = [p.name for p in Profiles(data_dir).list()] if data_dir.exists() else []
    running = bool(procs) and all(p.alive and p.healthy for p in procs)
    return DevnetStatus(running, rpc_url, chain_id, block, procs, names, recorded_node(dev))
