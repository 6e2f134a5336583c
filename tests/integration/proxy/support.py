"""Test support for the proxy integration tests: proxy processes (the chain set-up,
shared with the unit tests, is in :mod:`tests.proxy_support`).

Proxies are real ``emrshare proxy serve`` processes on loopback, each in its own process
group with a parent-death signal, always torn down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from emrshare._process import free_port, spawn, stop_group
from emrshare.chain.deploy import Deployment
from emrshare.crypto.keys import MemberKeys
from emrshare.crypto.keystore import save_keystore
from emrshare.devnet import DevNode
from emrshare.proxy.client import ProxyEndpoint
from emrshare.proxy.node import ProxyConfig
from emrshare.types import Address
from tests.proxy_support import (
    ROLE_PROVIDER,
    ROLE_PROXY,
    Consortium,
    threshold_policy,
    unlock_on_eth_tester,
)

PASSWORD_ENV = "EMRSHARE_TEST_PROXY_PW"
PASSWORD = "proxy-test-password"


@dataclass
class ProxyProcess:
    """One ``emrshare proxy serve`` process."""

    keys: MemberKeys
    config: ProxyConfig
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The test-double mode the running process was started in (None: a real proxy).
    evil: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def endpoint(self) -> ProxyEndpoint:
        return ProxyEndpoint(self.keys.address, self.url)

    def start(self, timeout: float = 90.0, *, evil: str | None = None) -> None:
        """Start ``emrshare proxy serve``; ``evil`` starts the malicious variant instead."""
        env = dict(os.environ, **{PASSWORD_ENV: PASSWORD})
        self.evil = evil
        if evil is None:
            argv = [sys.executable, "-c", "from emrshare.cli import main; main()", "proxy"]
            argv += ["serve", "--config", str(self.config_path), "--log-level", "warning"]
        else:
            argv = [sys.executable, str(Path(__file__).with_name("evil_proxy.py"))]
            argv += [str(self.config_path), evil]
        self.proc = spawn(argv, self.log_path, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"proxy did not start within {timeout}s:\n{self.log_tail()}")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/healthz", timeout=5.0).json())

    def wait_audit_drained(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health()
            if h["audit_backlog"] == 0 and h["audit_pending_batches"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"proxy {self.keys.address} did not drain its audit journal")

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + "/v1/reencrypt", json=body, timeout=10.0)

    def wait_cursor(self, block: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor = self.health()["cursor"]
            if cursor is not None and cursor >= block:
                return
            time.sleep(0.05)
        raise AssertionError(f"proxy {self.keys.address} did not reach block {block}")

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful stop (SIGTERM): the audit journal drains first."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, timeout)

    def kill(self) -> None:
        """Hard kill (SIGKILL): nothing runs on the way down."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its socket but answers nothing (a hung proxy)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def journal(self) -> list[tuple[bytes, str, tuple[bytes, ...], int, int, int]]:
        """The proxy's audit journal as (policy, requester, capsule hashes, nonce, block,
        block time) rows: what each ``AccessLogged`` event must repeat."""
        rows = self.query(
            "SELECT policy_id, requester, capsule_hashes, nonce, block, block_time FROM journal"
        )
        return [
            (r[0], r[1], tuple(bytes.fromhex(x) for x in json.loads(r[2])), int(r[3]), r[4], r[5])
            for r in rows
        ]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the proxy's own database (WAL: safe while the proxy runs)."""
        db = sqlite3.connect(self.config.database)
        try:
            return list(db.execute(sql).fetchall())
        finally:
            db.close()


def make_proxy(
    tmp: Path, keys: MemberKeys, node: DevNode, deployment: Deployment, **overrides: Any
) -> ProxyProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    keystore = tmp / "proxy.keystore"
    save_keystore(keystore, keys, PASSWORD, opslimit=1, memlimit=8192)
    deployment_path = tmp / "deployment.json"
    deployment.write(deployment_path)
    settings: dict[str, Any] = {
        "keystore": keystore,
        "password_env": PASSWORD_ENV,
        "rpc_url": node.rpc_url,
        "deployment": deployment_path,
        "data_dir": tmp / "data",
        "host": "127.0.0.1",
        "port": free_port(),
        "poll_interval": 0.1,
        "flush_interval": 0.5,
        "flush_entries": 8,
    }
    settings.update(overrides)
    config = ProxyConfig(**settings)
    path = tmp / "proxy.toml"
    path.write_text(config.to_toml())
    return ProxyProcess(keys, config, path, tmp / "proxy.log")


__all__ = [
    "PASSWORD",
    "ROLE_PROVIDER",
    "ROLE_PROXY",
    "Address",
    "Consortium",
    "ProxyProcess",
    "make_proxy",
    "threshold_policy",
    "unlock_on_eth_tester",
]
