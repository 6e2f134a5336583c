"""Start and stop local development chains: real anvil and real ganache processes.

Used by the test fixtures and by ``emrshare devnet``. The binaries come from the pinned
npm toolchain in ``tools/node_modules`` (``make setup``); ``EMRSHARE_ANVIL`` and
``EMRSHARE_GANACHE`` point elsewhere, and a binary on ``PATH`` is the last resort.

Every node is started through :func:`emrshare._process.spawn`: its own process group and
a parent-death signal, so a killed test run or CLI never leaves a node behind, and its
output is redacted of the development keys (:func:`dev_secrets`).
"""

from __future__ import annotations

import contextlib
import functools
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
from typing import Literal

from emrshare._process import free_port, log_tail, spawn, stop_group
from emrshare.errors import ChainError, ConfigurationError

__all__ = [
    "DEV_MNEMONIC",
    "DevNode",
    "NodeKind",
    "dev_private_keys",
    "dev_secrets",
    "running_node",
]

NodeKind = Literal["anvil", "ganache"]

#: The well-known development mnemonic (anvil's default). Never use it for real funds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

_TOOLS_BIN = Path(__file__).resolve().parents[3] / "tools" / "node_modules" / ".bin"


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


@functools.cache
def dev_secrets() -> tuple[str, ...]:
    """What a development node's output must never leave in a file: the mnemonic and the
    private keys of its accounts (hex)."""
    return (DEV_MNEMONIC, *("0x" + k.hex() for k in dev_private_keys(12)))


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
                "12",
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
            "12",
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
