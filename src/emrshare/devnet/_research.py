"""The devnet's research cohort pieces (issue 16): a ``researcher`` member profile and a
``deid`` member (a Provider) running the de-identification service as a process on a
loopback port it keeps across restarts, its URL published as its registry endpoint.

``emrshare study publish --service deid …`` names it; patients join through it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from emrshare._files import write_atomically
from emrshare._process import free_port, log_tail, spawn
from emrshare.chain import Role
from emrshare.crypto import MemberKeys
from emrshare.errors import ChainError
from emrshare.network import Network
from emrshare.roles import ConsortiumAdmin, Profiles, Requester

__all__ = ["DEID_PROFILE", "deid_answers", "start_deid_service", "wait_deid"]

#: The profile whose member runs the devnet's de-identification service.
DEID_PROFILE = "deid"
_DEID_KEY = 11  # the development account the service's member uses


def deid_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a de-identification service answers ``GET /v1/health`` at ``url``."""
    try:
        with urllib.request.urlopen(url + "/v1/health", timeout=timeout) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def _port(dev: Path) -> int:
    """The service's port, kept in ``research.json`` so its registry endpoint stays true."""
    path = dev / "research.json"
    if path.exists():
        port = json.loads(path.read_text()).get("port")
        if isinstance(port, int) and 1024 <= port <= 65535:
            return port
    port = free_port()
    write_atomically(path, json.dumps({"port": port}) + "\n")
    return port


def start_deid_service(
    net: Network,
    admin: ConsortiumAdmin,
    profiles: Profiles,
    keys: list[bytes],
    data_dir: Path,
    dev: Path,
    password: str,
    log: Callable[[str], None],
) -> tuple[int, str]:
    """Create and admit the ``deid`` member (once) with its endpoint, start its service
    detached; ``(pid, url)``. :func:`wait_deid` waits for it to answer."""
    url = f"http://127.0.0.1:{_port(dev)}"
    if not profiles.exists(DEID_PROFILE):
        profiles.create(
            DEID_PROFILE, "member", password, role="provider", ethereum_key=keys[_DEID_KEY],
            fast_kdf=True,
        )  # fmt: skip
    opened = profiles.unlock(DEID_PROFILE, password)
    assert isinstance(opened, MemberKeys)
    member = Requester(net, opened, state_dir=profiles.get(DEID_PROFILE).state_dir)
    if member.apply(url) or net.contracts.registry.role_of(opened.address) is Role.NONE:
        admin.admit(opened.address, Role.PROVIDER)
    cmd = [sys.executable, "-m", "emrshare.cli", "--data-dir", str(data_dir)]
    cmd += ["--profile", DEID_PROFILE, "research", "serve", "--port", url.rsplit(":", 1)[1]]
    env = {**os.environ, "EMRSHARE_PASSWORD": password}
    proc = spawn(cmd, dev / "deid.log", detach=True, env=env)
    log(f"{'deid':<11} {url} (de-identification service of {opened.address}; pid {proc.pid})")
    return proc.pid, url


def wait_deid(url: str, log_path: Path, timeout: float = 60.0) -> None:
    """Wait until the service at ``url`` answers; :class:`ChainError` with its log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deid_answers(url):
            return
        time.sleep(0.2)
    raise ChainError(
        f"the de-identification service did not answer on {url} within {timeout:.0f}s; "
        f"see {log_path}:\n{log_tail(log_path)}"
    )
