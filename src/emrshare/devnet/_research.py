"""The devnet's research cohort pieces (issue 16): a ``researcher`` member profile and a
``deid`` member (a Provider) running the de-identification service as a process on a
loopback port it keeps across restarts, its URL published as its registry endpoint.

``emrshare study publish --service deid …`` names it; patients join through it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from emrshare._files import write_atomically
from emrshare._process import free_port, spawn
from emrshare.chain import Role
from emrshare.crypto import MemberKeys
from emrshare.network import Network
from emrshare.roles import ConsortiumAdmin, Profiles, Requester

__all__ = ["DEID_PROFILE", "start_deid_service"]

#: The profile whose member runs the devnet's de-identification service.
DEID_PROFILE = "deid"
_DEID_KEY = 11  # the development account the service's member uses


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
    detached; ``(pid, url)``: it answers ``/v1/health`` once it serves."""
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
