"""Start and stop a relay (``emrshare relay serve``): as a process, for ``devnet up``
and the relay tests, or in a thread of this process, for a :class:`LocalNetwork`.

The process is started through :func:`emrshare._process.spawn` like the proxies and the
IPFS daemon: its own process group and, unless ``detach=True``, a parent-death signal,
so a killed test run leaves none behind. The relayer's key is never on its command line:
the process gets a development account index (``--dev-account``) or a key file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emrshare._process import free_port, health_answers, log_tail, pid_alive, spawn, stop_group
from emrshare.errors import ChainError
from emrshare.relay.config import FAULT_ENV

__all__ = ["InProcessRelay", "RelayDaemon"]


@dataclass
class RelayDaemon:
    """A relay process on loopback. Start with :meth:`start`; :meth:`stop` ends it."""

    network: Path
    port: int
    log_path: Path
    dev_account: int | None = None
    key_file: Path | None = None
    rate: float = 30.0
    burst: int = 10
    global_rate: float = 600.0
    max_in_flight: int = 8
    fault: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        """``python -m emrshare.cli relay serve …``."""
        cmd = [sys.executable, "-m", "emrshare.cli", "relay", "serve"]
        cmd += ["--network", str(self.network), "--port", str(self.port)]
        cmd += ["--rate", str(self.rate), "--burst", str(self.burst)]
        cmd += ["--global-rate", str(self.global_rate)]
        cmd += ["--max-in-flight", str(self.max_in_flight)]
        if self.dev_account is not None:
            cmd += ["--dev-account", str(self.dev_account)]
        if self.key_file is not None:
            cmd += ["--key-file", str(self.key_file)]
        return cmd

    @classmethod
    def start(
        cls,
        network: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        detach: bool = False,
        wait: bool = True,
        timeout: float = 60.0,
        **settings: Any,
    ) -> RelayDaemon:
        """Start a relay for the network configuration at ``network`` (a free port
        unless given) and wait until it answers. ``settings``: ``dev_account`` or
        ``key_file``, ``rate``, ``burst``, ``global_rate``, ``max_in_flight``, ``fault``
        (testing only)."""
        daemon = cls(
            network=Path(network),
            port=port or free_port(),
            log_path=log_path or Path(network).parent / "relay.log",
            **settings,
        )
        daemon.restart(detach=detach, wait=wait, timeout=timeout)
        return daemon

    def restart(
        self,
        *,
        fault: str | None = None,
        detach: bool = False,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> None:
        """(Re)start the process on the same port; ``fault`` replaces the injected one."""
        self.stop()
        if fault is not None:
            self.fault = fault or None
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        if self.fault:
            env[FAULT_ENV] = self.fault
        self._proc = spawn(self.command(), self.log_path, detach=detach, env=env)
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the relay answers; :class:`ChainError` with its log tail if it
        exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ChainError(
                    f"the relay exited with code {self._proc.returncode} during start-up; "
                    f"see {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if health_answers(self.url):
                return
            time.sleep(0.1)
        raise ChainError(
            f"the relay did not answer on {self.url} within {timeout:.0f}s; see "
            f"{self.log_path}:\n{log_tail(self.log_path)}"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and pid_alive(self._proc.pid)

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        """The exit code once the process ended (a fault makes it exit), ``None`` if it
        still runs after ``timeout`` seconds."""
        if self._proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._proc.wait(timeout)
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process and its group (SIGTERM, then SIGKILL); safe twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, timeout)


class InProcessRelay:
    """A relay served by uvicorn in a thread of this process, on a free loopback port
    (for a :class:`~emrshare.devnet.LocalNetwork`, whose chain lives in this process).
    ``service`` is a :class:`~emrshare.relay.service.RelayService`."""

    def __init__(self, service: Any, *, port: int | None = None) -> None:
        import uvicorn

        from emrshare.relay.app import create_app

        self.port = port or free_port()
        config = uvicorn.Config(
            create_app(service),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="relay", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> InProcessRelay:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ChainError(f"the in-process relay did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
