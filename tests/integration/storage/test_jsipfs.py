"""The js-ipfs daemon itself (emrshare.ipfsd): offline and private, and the CIDs it
builds from the flags KuboStore sends, next to LocalStore's and Debian's ``ipfs_cid``."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emrshare.ipfsd import IpfsDaemon
from emrshare.storage import DEFAULT_PROFILE, UNIXFS_V1_2025, KuboStore, LocalStore, UnixfsProfile
from emrshare.storage.cid import RAW, CidInfo

KIB = 1024
MIB = 1024 * KIB
# empty, 1 B, the 256 KiB chunk boundary, 1 MiB (+1), a full 174-link node and one more.
SIZES = [0, 1, 256 * KIB - 1, 256 * KIB, 256 * KIB + 1, MIB, MIB + 1, 174 * 256 * KIB]
SIZES_2025 = [0, 1, 256 * KIB, MIB, MIB + 1, 3 * MIB + 5]


def _js_add(api_url: str, profile: UnixfsProfile, data: bytes) -> str:
    params = KuboStore(api_url, profile=profile).add_params(pin=False)
    answer = httpx.post(
        f"{api_url}/api/v0/add", params=params, files={"file": ("blob", data)}, timeout=120
    )
    answer.raise_for_status()
    return str(json.loads(answer.text.splitlines()[-1])["Hash"])


def _ipfs_cid(path: Path) -> str:
    out = subprocess.run(["ipfs_cid", str(path)], capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["CIDv0"])


@pytest.mark.parametrize("size", SIZES)
def test_jsipfs_add_gives_localstore_and_kubo_default_cids(
    jsipfs: IpfsDaemon, tmp_path: Path, size: int
) -> None:
    data = random.Random(size).randbytes(size)
    local = LocalStore(tmp_path / "local").put(data)
    assert _js_add(jsipfs.api_url, DEFAULT_PROFILE, data) == local
    if shutil.which("ipfs_cid"):  # Kubo's rules, computed by an independent tool
        (tmp_path / "f").write_bytes(data)
        assert _ipfs_cid(tmp_path / "f") == local


@pytest.mark.parametrize("size", SIZES_2025)
def test_jsipfs_add_gives_localstore_cids_for_unixfs_v1_2025(
    jsipfs: IpfsDaemon, tmp_path: Path, size: int
) -> None:
    data = random.Random(size).randbytes(size)
    local = LocalStore(tmp_path / "local", UNIXFS_V1_2025).put(data)
    answer = _js_add(jsipfs.api_url, UNIXFS_V1_2025, data)
    assert answer == local  # base32, because KuboStore sends cid-base=base32


def test_jsipfs_answers_v1_cids_in_base58btc_unless_told(jsipfs: IpfsDaemon) -> None:
    """Why KuboStore sends ``cid-base=base32``: js-ipfs's default differs from Kubo's."""
    params = [("cid-version", "1"), ("raw-leaves", "true"), ("pin", "false")]
    answer = httpx.post(
        f"{jsipfs.api_url}/api/v0/add", params=params, files={"file": ("b", b"x")}
    ).raise_for_status()
    cid = json.loads(answer.text)["Hash"]
    assert cid.startswith("z")
    assert CidInfo.parse(cid) == CidInfo.for_block(b"x", RAW, 1)  # the same CID, in base58


def _listening_and_connected(pid: int) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(listening, connected-to) addresses of ``pid``'s TCP sockets, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening, connected = set(), set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as fh:
            rows = [line.split() for line in fh.readlines()[1:]]
        for row in rows:
            if row[9] not in inodes:
                continue
            local_hex, port_hex = row[1].split(":")
            remote_hex, rport_hex = row[2].split(":")
            local = (_ip(local_hex), int(port_hex, 16))
            if row[3] == "0A":  # LISTEN
                listening.add(local)
            elif row[3] == "01":  # ESTABLISHED
                connected.add((_ip(remote_hex), int(rport_hex, 16)))
    return listening, connected


def _ip(hex_addr: str) -> str:
    if len(hex_addr) == 8:
        return ".".join(str(b) for b in bytes.fromhex(hex_addr)[::-1])
    return hex_addr  # IPv6: compared only against the IPv4 loopback below


def test_jsipfs_daemon_listens_on_loopback_only_and_dials_nobody(jsipfs: IpfsDaemon) -> None:
    with KuboStore(jsipfs.api_url) as store:  # some traffic first
        store.put(b"traffic")
        store.pins()
    assert jsipfs.pid is not None
    listening, connected = _listening_and_connected(jsipfs.pid)
    assert listening == {("127.0.0.1", jsipfs.api_port), ("127.0.0.1", jsipfs.gateway_port)}
    assert all(host == "127.0.0.1" for host, _ in connected), connected
    config = json.loads((jsipfs.repo / "config").read_text())
    assert config["Bootstrap"] == []
    assert config["Addresses"]["Swarm"] == [f"/ip4/127.0.0.1/tcp/{jsipfs.swarm_port}"]
    assert config["Addresses"]["Delegates"] == []
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert config["Discovery"]["webRTCStar"]["Enabled"] is False
    assert config["Routing"]["Type"] == "none"


def test_jsipfs_repo_is_private(jsipfs: IpfsDaemon) -> None:
    assert stat.S_IMODE(jsipfs.repo.stat().st_mode) == 0o700
    for path in jsipfs.repo.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_jsipfs_restart_keeps_pins_and_stop_ends_the_group(tmp_path: Path) -> None:
    daemon = IpfsDaemon.start(tmp_path / "repo", log_path=tmp_path / "log")
    try:
        with KuboStore(daemon.api_url) as store:
            cid = store.put(b"kept across a restart")
        pid = daemon.pid
        daemon.stop()
        assert pid is not None and not daemon.running
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
        daemon = IpfsDaemon.start(tmp_path / "repo", log_path=tmp_path / "log")
        with KuboStore(daemon.api_url) as store:
            assert cid in store.pins()
            assert b"".join(store.get(cid)) == b"kept across a restart"
    finally:
        daemon.stop()
    assert "received SIGTERM, stopping" in daemon.log_tail()


_HOLD = """
import sys, time
from pathlib import Path
from emrshare.ipfsd import running_daemon
with running_daemon(Path(sys.argv[1]), log_path=Path(sys.argv[2])) as daemon:
    print(daemon.pid, flush=True)
    time.sleep(600)
"""


def test_ctrl_c_stops_the_daemon_and_its_group(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "repo"), str(tmp_path / "log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        pid = int(holder.stdout.readline())
        os.killpg(pid, 0)  # the daemon leads its own process group
        holder.send_signal(signal.SIGINT)
        holder.wait(30)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    finally:
        holder.kill()
        holder.wait()
