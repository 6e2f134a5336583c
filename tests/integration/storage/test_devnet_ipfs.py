"""`emrshare devnet up --store ipfs`: the devnet's BlobStore is a js-ipfs daemon it starts
and `devnet down` stops (every step a separate `emrshare` process, as a user runs it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psutil

from emrshare.storage import KuboStore
from tests.cli_support import run_cli as _cli


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_devnet_up_store_ipfs_puts_records_in_jsipfs_and_down_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "1", "--threshold", "1", "--store", "ipfs")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "js-ipfs, offline" in up.stdout
        pids = json.loads((data_dir / "devnet" / "pids.json").read_text())
        assert set(pids) == {"anvil", "proxy-1", "ipfs", "relay", "deid"}
        url = str(pids["ipfs"]["url"])
        network = json.loads((data_dir / "network.json").read_text())
        assert network["store"] == {"kind": "kubo", "path": None, "url": url}
        status = json.loads(_cli(data_dir, "--json", "devnet", "status").stdout)
        ipfs = next(p for p in status["processes"] if p["name"] == "ipfs")
        assert ipfs["alive"] and ipfs["healthy"]
        assert (os.stat(data_dir / "devnet" / "ipfs").st_mode & 0o777) == 0o700

        note = tmp_path / "note.txt"
        note.write_text("home blood pressure 120/80")
        added = _cli(
            data_dir, "--profile", "patient", "--json", "record", "add", str(note),
            "--category", "vitals",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        rid = json.loads(added.stdout)["record_id"]
        with KuboStore(url) as store:
            assert store.pins(), "the record's ciphertext is pinned on the js-ipfs node"
        out = tmp_path / "back.txt"
        got = _cli(data_dir, "--profile", "patient", "record", "get", rid, "-o", str(out))
        assert got.returncode == 0, got.stderr
        assert out.read_text() == "home blood pressure 120/80"

        down = _cli(data_dir, "devnet", "down")
        assert down.returncode == 0 and "ipfs" in down.stdout
        assert all(_gone(int(info["pid"])) for info in pids.values())
        try:
            httpx.post(f"{url}/api/v0/version", timeout=2)
            raise AssertionError("the js-ipfs API still answers after devnet down")
        except httpx.TransportError:
            pass
    finally:
        _cli(data_dir, "devnet", "down")
