"""Start and stop a local IPFS RPC daemon: js-ipfs, offline, on loopback.

No Kubo binary can be installed from the package registries; js-ipfs (npm ``ipfs``
0.66.1, pinned in ``tools/package.json`` and installed by ``make setup``) is a real IPFS
implementation serving the same HTTP RPC API (``POST /api/v0/…``) that
:class:`~emrshare.storage.KuboStore` speaks. ``tools/jsipfs-daemon.mjs`` runs it with
its network never started: it listens only on the loopback API and gateway ports and
dials nobody (no swarm, bootstrap, MDNS, DHT, delegates or preload).

Used by the storage integration tests and by ``emrshare devnet up --store ipfs``. Like
the chain nodes (:mod:`emrshare.devnet.devnode`), the daemon is started through
:func:`emrshare._process.spawn`: its own process group and, by default, a parent-death
signal, so a killed test run never leaves one behind, while ``detach=True`` lets it
outlive the devnet command that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from emrshare._process import free_port, log_tail, pid_alive, spawn, stop_group
from emrshare.errors import ConfigurationError, StoreUnavailable

__all__ = ["JSIPFS_VERSION", "IpfsDaemon", "daemon_answers", "running_daemon"]

#: The js-ipfs release pinned in tools/package.json (the HTTP API reports ipfs-core's
#: own version, 0.18.1).
JSIPFS_VERSION = "0.66.1"

_TOOLS = Path(__file__).resolve().parents[3] / "tools"
_SCRIPT = _TOOLS / "jsipfs-daemon.mjs"


def _node() -> str:
    env = os.environ.get("EMRSHARE_NODE")
    found = env or shutil.which("node")
    if not found:
        raise ConfigurationError(
            "node (Node.js >= 20) is not on PATH; it runs the js-ipfs daemon. Install it "
            "or set EMRSHARE_NODE"
        )
    return found


def daemon_answers(api_url: str, timeout: float = 1.0) -> bool:
    """Whether an IPFS RPC API answers ``version`` at ``api_url`` (a ``POST``, as Kubo
    requires)."""
    req = urllib.request.Request(  # noqa: S310 - a loopback http URL we started
        f"{api_url.rstrip('/')}/api/v0/version", data=b"", method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status == 200 and "Version" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


@dataclass
class IpfsDaemon:
    """A js-ipfs daemon on loopback. Use :func:`running_daemon` or :meth:`start` /
    :meth:`stop`.

    ``repo`` is the node's repository (created 0700 on first start, its files 0600);
    it survives :meth:`stop`, so blocks and pins persist across restarts.
    """

    repo: Path
    api_port: int
    gateway_port: int
    swarm_port: int
    log_path: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        """The RPC API (``KuboStore(api_url)``)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pid(self) -> int | None:
        """The daemon's process id (the leader of its process group)."""
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        """The argv that runs the daemon (``node tools/jsipfs-daemon.mjs REPO PORTS…``)."""
        if not (_TOOLS / "node_modules" / "ipfs-daemon").is_dir() or not _SCRIPT.exists():
            raise ConfigurationError(
                f"js-ipfs {JSIPFS_VERSION} is not installed: run `make setup` (installs "
                "the pinned toolchain into tools/node_modules)"
            )
        ports = (self.api_port, self.gateway_port, self.swarm_port)
        return [_node(), str(_SCRIPT), str(self.repo), *map(str, ports)]

    @classmethod
    def start(
        cls,
        repo: Path | None = None,
        *,
        api_port: int | None = None,
        gateway_port: int | None = None,
        swarm_port: int | None = None,
        log_path: Path | None = None,
        detach: bool = False,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> IpfsDaemon:
        """Start a daemon (free loopback ports unless given) and wait until its API
        answers (``wait=False``: return at once; call :meth:`wait_ready`). ``repo``
        defaults to a new temporary directory."""
        repo = Path(repo) if repo is not None else Path(tempfile.mkdtemp(prefix="emrshare-ipfs-"))
        repo.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(repo, 0o700)
        daemon = cls(
            repo=repo,
            api_port=api_port or free_port(),
            gateway_port=gateway_port or free_port(),
            swarm_port=swarm_port or free_port(),
            log_path=log_path or repo.parent / f"{repo.name}.log",
        )
        daemon._proc = spawn(daemon.command(), daemon.log_path, detach=detach)
        if not wait:
            return daemon
        try:
            daemon.wait_ready(timeout)
        except BaseException:
            daemon.stop()
            raise
        return daemon

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the API answers; :class:`StoreUnavailable` (with the log tail) if
        the daemon exits or stays silent for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise StoreUnavailable(
                    f"js-ipfs exited with code {self._proc.returncode} during start-up; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if daemon_answers(self.api_url):
                return
            time.sleep(0.1)
        raise StoreUnavailable(
            f"js-ipfs did not answer on {self.api_url} within {timeout:.0f}s; see "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the daemon's log ("" if it cannot be read)."""
        return log_tail(self.log_path, lines)

    @property
    def running(self) -> bool:
        """Whether the daemon process is alive."""
        return self._proc is not None and pid_alive(self._proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon and its process group (SIGTERM, then SIGKILL); safe twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, timeout)


@contextlib.contextmanager
def running_daemon(repo: Path | None = None, **kwargs: object) -> Iterator[IpfsDaemon]:
    """Context manager: a started daemon, always stopped on exit (Ctrl-C included)."""
    daemon = IpfsDaemon.start(repo, **kwargs)  # type: ignore[arg-type]
    try:
        yield daemon
    finally:
        daemon.stop()
