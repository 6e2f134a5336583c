"""The demo scenario through the CLI: every step a separate `emrshare` process, on a real
devnet (anvil or ganache, three proxy processes, an embedded store)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.cli_support import run_cli as _cli

ROOT = Path(__file__).resolve().parents[3]


#: The demo and the restart test on ganache take minutes each and repeat what the anvil
#: runs show; the chain layer runs on both nodes anyway. ``make test-all`` runs them.
NODES = ["anvil", pytest.param("ganache", marks=pytest.mark.slow)]
#: ``make demo`` (the core scene) on anvil in the default run; every scene (``make
#: demo-all``) in the slow family: each scene has CLI tests of its own in the default run.
DEMOS = [
    ("anvil", False),
    pytest.param("anvil", True, marks=pytest.mark.slow),
    pytest.param("ganache", True, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("node", "all_scenes"), DEMOS)
def test_make_demo_scenario(tmp_path: Path, node: str, all_scenes: bool) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            *(["--all"] if all_scenes else []),
            "--node",
            node,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert f"demo passed on {node}" in result.stdout
    assert f"Bring up the devnet: {node}," in result.stdout
    assert f"{node} chain {31337 if node == 'anvil' else 1337}, block" in result.stdout
    for line in (
        "the bytes equal the original lab result",
        "hospital B's read of the lab result is on chain",
        "alice still holds 0 ETH",
    ):
        assert line in result.stdout
    for line in (
        # The emergency scene: the break-glass read, its serve on chain, the review.
        "the allergy record, bytes equal to what hospital A wrote",
        "the serve is on chain: 1 allergies record, nothing else",
        "the regulator opened the justification too",
        # The prescription scene: one fill, then the chain's refusal, then the counts.
        "fill 1 of 1 dispensed",
        "error: Prescriptions_AlreadyDispensed",
        "the pharmacy: 1 fill of 1 prescription",
        # The study scene: a de-identified release, points, the leave.
        "three lab Observations (the HIV-labelled one was never granted)",
        "ids replaced by pseudonyms",
        "alice earned 10 points",
    ):
        assert (line in result.stdout) is all_scenes, line
    assert result.stdout.count("refused, as expected") == (3 if all_scenes else 2)
    # The devnet went down: no process of it is left.
    pids = (
        json.loads((data_dir / "devnet" / "pids.json").read_text())
        if (data_dir / "devnet" / "pids.json").exists()
        else {}
    )
    assert pids == {}
    status = _cli(data_dir, "--json", "devnet", "status")
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False


def test_devnet_restart_keeps_state_and_errors_are_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        up = _cli(data_dir, "devnet", "up", "--proxies", "2", "--threshold", "2")
        assert up.returncode == 0, up.stdout + up.stderr
        pids = json.loads((data_dir / "devnet" / "pids.json").read_text())
        assert set(pids) == {"anvil", "proxy-1", "proxy-2", "relay", "deid"}
        again = _cli(data_dir, "devnet", "up")
        assert again.returncode == 1 and "already running" in again.stderr
        assert "Traceback" not in again.stdout + again.stderr

        note = tmp_path / "note.txt"
        note.write_text("home blood pressure 120/80")
        added = _cli(
            data_dir,
            "--profile",
            "patient",
            "--json",
            "record",
            "add",
            str(note),
            "--category",
            "vitals",
        )
        assert added.returncode == 0, added.stderr
        rid = json.loads(added.stdout)["record_id"]

        denied = _cli(
            data_dir,
            "--profile",
            "hospital-b",
            "record",
            "add",
            str(note),
            "--patient",
            "patient",
            "--category",
            "vitals",
        )
        assert denied.returncode == 1
        assert denied.stderr.startswith("error: ") and "has not authorized" in denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1

        added_member = _cli(
            data_dir, "--profile", "admin", "member", "add", "pharmacy-x", "--role", "pharmacy"
        )
        assert added_member.returncode == 0, added_member.stdout + added_member.stderr
        members = json.loads(
            _cli(data_dir, "--json", "--profile", "admin", "member", "list").stdout
        )
        assert {"pharmacy", "provider", "insurer", "proxy"} <= {m["role"] for m in members}
        who = json.loads(_cli(data_dir, "--json", "--profile", "pharmacy-x", "whoami").stdout)
        assert who["kind"] == "member"
        # The devnet has a pharmacy of its own: pharmacy-x is a second one.
        roles = {m["address"]: m["role"] for m in members}
        assert roles[who["address"]] == "pharmacy"
        pharmacy = json.loads(_cli(data_dir, "--json", "--profile", "pharmacy", "whoami").stdout)
        assert pharmacy["address"] != who["address"] and roles[pharmacy["address"]] == "pharmacy"
        recovered = _cli(data_dir, "--profile", "hospital-a", "recover")
        assert recovered.returncode == 0 and "finished 0" in recovered.stdout
        recovered = _cli(data_dir, "--json", "--profile", "patient", "recover")
        assert recovered.returncode == 0, recovered.stderr
        assert json.loads(recovered.stdout)["operations"] == []

        down = _cli(data_dir, "devnet", "down")
        assert down.returncode == 0
        for info in pids.values():
            assert not psutil.pid_exists(int(info["pid"])) or (
                psutil.Process(int(info["pid"])).status() == psutil.STATUS_ZOMBIE
            )

        assert _cli(data_dir, "devnet", "up", "--proxies", "2").returncode == 0
        listed = _cli(data_dir, "--profile", "patient", "--json", "record", "list")
        assert [r["record_id"] for r in json.loads(listed.stdout)] == [rid]
        got = tmp_path / "got.txt"
        read = _cli(data_dir, "--profile", "patient", "record", "get", rid, "-o", str(got))
        assert read.returncode == 0 and got.read_text() == "home blood pressure 120/80"

        files = []
        for i in range(3):
            files.append(tmp_path / f"bp-{i}.txt")
            files[-1].write_text(f"blood pressure {120 + i}/80")
        assert (
            _cli(
                data_dir,
                "--profile",
                "patient",
                "writer",
                "add",
                "hospital-a",
                "--category",
                "vitals",
            ).returncode
            == 0
        )
        imported = _cli(
            data_dir,
            "--profile",
            "hospital-a",
            "--json",
            "record",
            "import",
            *map(str, files),
            "--patient",
            "patient",
            "--category",
            "vitals",
        )
        assert imported.returncode == 0, imported.stderr
        assert len(json.loads(imported.stdout)) == 3
        listed = _cli(data_dir, "--profile", "patient", "--json", "record", "list")
        assert len(json.loads(listed.stdout)) == 4
    finally:
        _cli(data_dir, "devnet", "down")


@pytest.mark.parametrize("node", NODES)
def test_devnet_restart_serves_records_written_before_it(tmp_path: Path, node: str) -> None:
    """`devnet up --node N` is labelled N everywhere and keeps its chain across `down` /
    `up`; a plain `up` resumes N (never the other node on its state); and a grantee reads,
    after the restart, a record written before it. (On anvil this read failed: its state
    file kept no historical states, and readers call at the entry's and grant's blocks.)"""
    data_dir = tmp_path / "data"
    chain_id = 31337 if node == "anvil" else 1337
    other = "ganache" if node == "anvil" else "anvil"
    dev = data_dir / "devnet"
    try:
        up = _cli(data_dir, "devnet", "up", "--node", node, "--proxies", "1", "--threshold", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"devnet up: {node} chain {chain_id}" in up.stdout
        status = json.loads(_cli(data_dir, "--json", "devnet", "status").stdout)
        assert status["node"] == node and status["chain_id"] == chain_id
        assert [p["name"] for p in status["processes"]] == sorted(
            [node, "proxy-1", "relay", "deid"]
        )
        deid_url = {p["name"]: p for p in status["processes"]}["deid"]["url"]
        assert (dev / ("anvil-state.json" if node == "anvil" else "ganache-db")).exists()
        deployment = json.loads((dev / "deployment.json").read_text())
        assert deployment["version"] == 2 and deployment["chain_id"] == chain_id
        runs = json.loads(
            (dev / "broadcast" / "deploy_contracts" / str(chain_id) / "run-latest.json").read_text()
        )
        assert {t["contractAddress"] for t in runs["transactions"]} == set(
            deployment["addresses"].values()
        )

        note = tmp_path / "note.txt"
        note.write_text(f"{node} keeps this")
        as_patient = (data_dir, "--profile", "patient")
        assert _cli(*as_patient, "writer", "add", "hospital-a", "--category", "lab").returncode == 0
        added = _cli(
            data_dir,
            "--profile",
            "hospital-a",
            "--json",
            "record",
            "add",
            str(note),
            "--patient",
            "patient",
            "--category",
            "lab",
        )
        assert added.returncode == 0, added.stderr
        rid = json.loads(added.stdout)["record_id"]
        granted = _cli(*as_patient, "grant", "add", "--to", "hospital-b", "--category", "lab")
        assert granted.returncode == 0, granted.stderr
        assert _cli(data_dir, "devnet", "down").returncode == 0

        wrong = _cli(data_dir, "devnet", "up", "--node", other)
        assert wrong.returncode == 1 and f"chain state is {node}'s" in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1

        again = _cli(data_dir, "devnet", "up", "--proxies", "1", "--threshold", "1")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "contracts   reloaded from state" in again.stdout
        # The research service is back on the port its registry endpoint names.
        after = json.loads(_cli(data_dir, "--json", "devnet", "status").stdout)
        deid = {p["name"]: p for p in after["processes"]}["deid"]
        assert deid["url"] == deid_url and deid["healthy"], deid
        got = tmp_path / "got.txt"
        read = _cli(
            data_dir,
            "--profile",
            "hospital-b",
            "record",
            "get",
            rid,
            "--patient",
            "patient",
            "-o",
            str(got),
        )
        assert read.returncode == 0, read.stderr
        assert got.read_text() == f"{node} keeps this"
    finally:
        _cli(data_dir, "devnet", "down")
