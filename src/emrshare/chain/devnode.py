"""Start and stop local development chains: real anvil and real ganache processes.

Used by the test fixtures and by ``emrshare devnet``. The binaries come from the pinned
npm toolchain in ``tools/node_modules`` (``make setup``); ``EMRSHARE_ANVIL`` and
``EMRSHARE_GANACHE`` point elsewhere, and a binary on ``PATH`` is the last resort.

Every node is started in its own process group with a parent-death signal, so a killed
test run or CLI never leaves a node behind. :func:`spawn`, :func:`stop_group` and
:func:`pid_alive` are the process helpers shared with ``emrshare devnet`` (whose processes
are detached on purpose, to outlive the CLI) and the test harnesses.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emrshare._files import open_private_append
from emrshare.errors import ChainError, ConfigurationError

__all__ = [
    "DEV_MNEMONIC",
    "DevNode",
    "NodeKind",
    "dev_private_keys",
    "dev_secrets",
    "free_port",
    "log_tail",
    "pid_alive",
    "running_node",
    "spawn",
    "stop_group",
]

NodeKind = Literal["anvil", "ganache"]

#: The well-known development mnemonic (anvil's default). Never use it for real funds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

_TOOLS_BIN = Path(__file__).resolve().parents[3] / "tools" / "node_modules" / ".bin"


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dev_private_keys(count: int = 10) -> list[bytes]:
    """Private keys of the first ``count`` accounts of :data:`DEV_MNEMONIC`."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [
        bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(count)
    ]


def _binary(kind: NodeKind) -> str:
    env = os.environ.get(f"EMRSHARE_{kind.upper()}")
    if env:
        return env
    local = _TOOLS_BIN / kind
    if local.exists():
        return str(local)
    found = shutil.which(kind)
    if found:
        return found
    raise ConfigurationError(
        f"{kind} is not installed: run `make setup` (installs the pinned "
        f"toolchain into tools/node_modules) or set EMRSHARE_{kind.upper()}"
    )


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child before exec
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: list[str],
    log_path: Path,
    *,
    detach: bool = False,
    env: Mapping[str, str] | None = None,
    redact: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group, stdout and stderr appended to ``log_path``.

    The log is created 0600 (one left 0644 by release 1 is tightened) and the child runs
    with umask 077, so what it writes (anvil's state file) is private too. With
    ``redact`` (a node's secrets), the output goes through a filter process that leaves
    out every line holding a private key, the mnemonic or one of ``redact``: the banner
    anvil and ganache print is never written. By default the child also gets a
    parent-death signal (SIGTERM when this process dies), so a killed test run leaves
    nothing behind. ``detach=True`` leaves that out: the process outlives its parent
    (``emrshare devnet up``) and is stopped later through its process group with
    :func:`stop_group`.
    """
    log_fd = open_private_append(Path(log_path))
    try:
        out = log_fd if redact is None else _start_filter(log_fd, redact)
        try:
            if detach:
                return subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    umask=0o077,
                    start_new_session=True,
                )
            return subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                umask=0o077,
                preexec_fn=_set_pdeathsig,
            )
        finally:
            if out != log_fd:
                os.close(out)
    finally:
        os.close(log_fd)


_FILTERS: list[int] = []


def _start_filter(log_fd: int, redact: Sequence[str]) -> int:
    """Start the log filter reading a new pipe and writing ``log_fd``; the pipe's write end.

    ``posix_spawn`` rather than ``Popen``: the filter outlives a detached node's parent
    and ends by itself at EOF, so there is no object to keep alive; the pids are reaped
    when the next filter starts.
    """
    for pid in list(_FILTERS):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _FILTERS.remove(pid)
    read_end, write_end = os.pipe()
    try:
        script = str(Path(__file__).with_name("_logfilter.py"))
        _FILTERS.append(
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", script],
                {"EMRSHARE_LOG_REDACT": "\n".join(redact), "PATH": os.defpath},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end


@functools.cache
def dev_secrets() -> tuple[str, ...]:
    """What a development node's output must never leave in a file: the mnemonic and the
    private keys of its accounts (hex)."""
    return (DEV_MNEMONIC, *("0x" + k.hex() for k in dev_private_keys(10)))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaping it if it is our child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(proc: subprocess.Popen[bytes] | int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by ``proc`` (a child or the pid of one started
    earlier, e.g. by another CLI run), wait up to ``timeout`` seconds, then SIGKILL it.

    Returns whether the process was running. Safe to call on a stopped process.
    """
    if isinstance(proc, int):
        if not pid_alive(proc):
            return False
        _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(proc):
            _killpg(proc, signal.SIGKILL)
        return True
    if proc.poll() is not None:
        return False
    _killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return True


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a launched process's log ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class DevNode:
    """A running local chain node. Use :func:`running_node` or :meth:`start` / :meth:`stop`."""

    kind: NodeKind
    port: int
    chain_id: int
    log_path: Path
    state_path: Path | None = None
    block_time: float | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        """The node's JSON-RPC endpoint on loopback."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The argv that starts this node (anvil or ganache, deterministic dev accounts)."""
        if self.kind == "anvil":
            cmd = [
                _binary("anvil"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--chain-id",
                str(self.chain_id),
                "--mnemonic",
                DEV_MNEMONIC,
                "--accounts",
                "10",
                "--balance",
                "10000",
                "--hardfork",
                "shanghai",
            ]
            if self.block_time:
                cmd += ["--block-time", str(self.block_time)]
            if self.state_path is not None:
                cmd += ["--state", str(self.state_path)]
            return cmd
        cmd = [
            _binary("ganache"),
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(self.port),
            "--chain.chainId",
            str(self.chain_id),
            "--chain.hardfork",
            "shanghai",
            "--wallet.mnemonic",
            DEV_MNEMONIC,
            "--wallet.totalAccounts",
            "10",
            "--wallet.defaultBalance",
            "10000",
            "--logging.quiet",
            "--miner.defaultGasPrice",
            "1000000000",
        ]
        if self.block_time:
            cmd += ["--miner.blockTime", str(self.block_time)]
        if self.state_path is not None:
            cmd += ["--database.dbPath", str(self.state_path)]
        return cmd

    @classmethod
    def start(
        cls,
        kind: NodeKind = "anvil",
        *,
        port: int | None = None,
        chain_id: int | None = None,
        log_dir: Path | None = None,
        state_path: Path | None = None,
        block_time: float | None = None,
        timeout: float = 60.0,
    ) -> DevNode:
        """Start a node on a free loopback port and wait until it answers JSON-RPC."""
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"emrshare-{kind}-"))
        node = cls(
            kind=kind,
            port=port or free_port(),
            chain_id=chain_id or (31337 if kind == "anvil" else 1337),
            log_path=log_dir / f"{kind}.log",
            state_path=state_path,
            block_time=block_time,
        )
        node._proc = spawn(node.command(), node.log_path, redact=dev_secrets())
        try:
            node._wait_ready(timeout)
        except BaseException:
            node.stop()
            raise
        return node

    def rpc(self, method: str, params: list[object] | None = None, timeout: float = 10.0) -> object:
        """One raw JSON-RPC call (for dev-only methods such as ``evm_mine``)."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        ).encode()
        req = urllib.request.Request(  # noqa: S310 - fixed http://127.0.0.1 URL
            self.rpc_url, body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            reply = json.loads(resp.read())
        if "error" in reply:
            raise ChainError(f"{self.kind} {method} failed: {reply['error']}")
        return reply.get("result")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ChainError(
                    f"{self.kind} exited with code {self._proc.returncode} during "
                    f"start-up; see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if int(str(self.rpc("eth_chainId", timeout=1.0)), 16) == self.chain_id:
                    return
            except (OSError, ValueError, ChainError):
                pass
            time.sleep(0.1)
        raise ChainError(
            f"{self.kind} did not answer on {self.rpc_url} within {timeout:.0f}s; "
            f"see {self.log_path}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the node's log ("" if it cannot be read)."""
        return log_tail(self.log_path, lines)

    @property
    def running(self) -> bool:
        """Whether the node process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node and its process group; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, timeout)


@contextlib.contextmanager
def running_node(kind: NodeKind = "anvil", **kwargs: object) -> Iterator[DevNode]:
    """Context manager: a started node, always stopped on exit."""
    node = DevNode.start(kind, **kwargs)  # type: ignore[arg-type]
    try:
        yield node
    finally:
        node.stop()
