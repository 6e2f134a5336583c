"""``emrshare restore`` and ``emrshare backup shamir`` on a real anvil (issue 13): a
patient made in Python is restored by the command line from its words or its shares,
and every bad input is one line, a typed error, and a state the same command resumes."""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from web3 import Web3

from emrshare.chain import Role
from emrshare.chain.deploy import deploy_contracts
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import DevNode, fund_account
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.roles import ConsortiumAdmin, Patient, Profiles, Provider
from tests.cli_support import run_cli

pytestmark = pytest.mark.integration


@dataclass
class World:
    data_dir: Path
    keys: PatientKeys
    record_id: bytes
    request_id: int


@pytest.fixture(scope="module")
def world(anvil: DevNode, tmp_path_factory: pytest.TempPathFactory) -> World:
    from emrshare.devnet import dev_private_keys

    dev = dev_private_keys(10)
    tmp = tmp_path_factory.mktemp("restore-cli")
    data_dir = tmp / "data"
    data_dir.mkdir(mode=0o700)
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))
    config = NetworkConfig(
        rpc_url=anvil.rpc_url,
        deployment=deploy_contracts(w3, dev[0]),
        store=StoreConfig(kind="local", path=str(tmp / "store")),
        threshold=1,
    )
    config.write(data_dir / "network.json")
    net = Network.from_config(config)
    admin = ConsortiumAdmin(net, dev[0])
    members = {
        name: Provider(net, MemberKeys.generate(ethereum_key=dev[i]), state_dir=tmp / name)
        for name, i in (("hospital", 4), ("insurer", 6), ("proxy", 1))
    }
    for name, m in members.items():
        # A proxy only needs its keys registered here: grants seal kfrags to them, and no
        # read goes through it.
        m.apply("http://127.0.0.1:9" if name == "proxy" else "")
        admin.admit(m.address, Role.PROXY if name == "proxy" else Role.PROVIDER)
    keys = PatientKeys(secrets.token_bytes(32))
    fund_account(net, dev[0], keys.address)
    patient = Patient(net, keys, state_dir=tmp / "old-machine")
    patient.register()
    patient.authorize_writer(members["hospital"].address, "lab")
    rid = members["hospital"].add_record(keys.address, "lab", b"K 4.1", media_type="text/plain")
    patient.revoke(
        patient.grant(members["insurer"].address, "lab", expires=timedelta(days=1)).policy_id
    )
    request = members["insurer"].request_access(keys.address, "imaging", reason="claim")
    for m in (*members.values(), patient):
        m.close()
    net.close()
    return World(data_dir, keys, bytes(rid), request)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _refused(result: subprocess.CompletedProcess[str], kind: str, *needles: str) -> dict:
    """One line on stderr (also checked as JSON: the typed error), exit 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    body = json.loads(result.stderr)["error"]
    assert body["type"] == kind, body
    for needle in needles:
        assert needle in body["message"] + (body["hint"] or ""), body
    return body


def test_restore_from_words_then_again(world: World) -> None:
    words = world.keys.to_mnemonic() + "\n"
    first = _ok(run_cli(world.data_dir, "--profile", "alice", "--json", "restore", input=words))
    found = json.loads(first.stdout)
    assert found["created"] is True and found["address"] == world.keys.address
    assert found["categories"] == {"lab-results": 1}
    assert [r["request_id"] for r in found["pending_requests"]] == [world.request_id]
    assert [g["status"] for g in found["grants"]] == ["revoked"]
    assert world.keys.to_mnemonic().split()[0] not in first.stdout + first.stderr
    # The same command again: the profile is there, its state refreshed, nothing asked.
    again = _ok(run_cli(world.data_dir, "--profile", "alice", "restore", input=words))
    assert "refreshed" in again.stdout and "lab-results (epoch 1)" in again.stdout
    assert "pending requests: 1" in again.stdout
    listed = _ok(run_cli(world.data_dir, "--profile", "alice", "--json", "record", "list"))
    assert [r["record_id"] for r in json.loads(listed.stdout)] == ["0x" + world.record_id.hex()]


def test_backup_shamir_then_restore_from_shares(world: World, tmp_path: Path) -> None:
    words = world.keys.to_mnemonic() + "\n"
    _ok(run_cli(world.data_dir, "--profile", "sharer", "restore", input=words))
    text = _ok(run_cli(world.data_dir, "--profile", "sharer", "backup", "shamir"))
    assert "shown only now" in text.stderr and len(text.stdout.splitlines()) == 5
    made = json.loads(
        _ok(
            run_cli(world.data_dir, "--profile", "sharer", "backup", "shamir", "--shares", "4",
                    "--threshold", "2", "--json")
        ).stdout
    )  # fmt: skip
    assert made["threshold"] == 2 and len(made["shares"]) == 4
    # As printed ("share 1: …"), from stdin.
    lines = "\n".join(text.stdout.splitlines()[i] for i in (4, 0, 2)) + "\n"
    got = _ok(run_cli(world.data_dir, "--profile", "bob", "--json", "restore", "--shares", "-",
                      input=lines))  # fmt: skip
    assert json.loads(got.stdout)["address"] == world.keys.address
    file = tmp_path / "shares.txt"
    file.write_text("\n".join(made["shares"][1:3]) + "\n")
    got = _ok(run_cli(world.data_dir, "--profile", "carol", "--json", "restore", "--shares",
                      str(file)))  # fmt: skip
    assert json.loads(got.stdout)["categories"] == {"lab-results": 1}

    # Too few, mixed, a wrong passphrase: one line each; no profile is left behind.
    few = "\n".join(made["shares"][:1]) + "\n"
    cli = ("--profile", "dave", "--json", "restore", "--shares", "-")
    body = _refused(run_cli(world.data_dir, *cli, input=few), "InvalidBackup", "needs 2")
    assert body["reason"] == "too_few"
    other = PatientKeys.generate().to_shamir_shares(2, 3)
    mixed = "\n".join([made["shares"][0], other[1]]) + "\n"
    body = _refused(run_cli(world.data_dir, *cli, input=mixed), "InvalidBackup", "another backup")
    assert body["reason"] == "mixed"
    pw = tmp_path / "pw"
    pw.write_text("not the passphrase\n")
    two = "\n".join(made["shares"][:2]) + "\n"
    _refused(
        run_cli(world.data_dir, *cli, "--passphrase-file", str(pw), input=two),
        "PatientNotFound",
        "passphrase",
    )
    assert not Profiles(world.data_dir).exists("dave")


def _bad_checksum(words: list[str]) -> str:
    """The words with the last one replaced so that the checksum fails."""
    from mnemonic import Mnemonic

    from emrshare.errors import WireFormatError

    for w in Mnemonic("english").wordlist:
        candidate = [*words[:23], w]
        try:
            PatientKeys.from_mnemonic(" ".join(candidate))
        except WireFormatError:
            return " ".join(candidate)
    raise AssertionError("unreachable")


def test_bad_words_unknown_patient_and_taken_profile(world: World) -> None:
    words = world.keys.to_mnemonic().split()
    cli = ("--profile", "erin", "--json", "restore")
    body = _refused(run_cli(world.data_dir, *cli, input=" ".join(words[:23])), "InvalidBackup",
                    "24 words")  # fmt: skip
    assert body["reason"] == "words"
    body = _refused(run_cli(world.data_dir, *cli, input=_bad_checksum(words)), "InvalidBackup",
                    "checksum")  # fmt: skip
    assert body["reason"] == "words" and words[2] not in body["message"].split()
    stranger = PatientKeys.generate()
    body = _refused(
        run_cli(world.data_dir, *cli, input=stranger.to_mnemonic()), "PatientNotFound", "init"
    )
    assert body["address"] == stranger.address
    assert not Profiles(world.data_dir).exists("erin")
    plain = run_cli(world.data_dir, "--profile", "erin", "restore", input=stranger.to_mnemonic())
    assert plain.returncode == 1 and plain.stderr.startswith("error: ")
    assert len(plain.stderr.strip().splitlines()) == 1

    # A profile of that name holding another identity.
    Profiles(world.data_dir).create("taken", "patient", "devnet", mnemonic=stranger.to_mnemonic(),
                                    fast_kdf=True)  # fmt: skip
    _refused(
        run_cli(world.data_dir, "--profile", "taken", "--json", "restore",
                input=world.keys.to_mnemonic()),
        "ProfileExists",
        "another identity",
    )  # fmt: skip


def test_restore_resumes_after_the_keystore_was_written(world: World) -> None:
    # Interrupted after the keystore (and profile.json) were written, before the state
    # was restored: the same command finishes it.
    profile, _ = Profiles(world.data_dir).create(
        "frank", "patient", "devnet", mnemonic=world.keys.to_mnemonic(), fast_kdf=True
    )
    assert not (profile.state_dir / "patient.json").exists()
    got = _ok(run_cli(world.data_dir, "--profile", "frank", "--json", "restore",
                      input=world.keys.to_mnemonic()))  # fmt: skip
    found = json.loads(got.stdout)
    assert found["created"] is False and found["categories"] == {"lab-results": 1}
    assert (profile.state_dir / "patient.json").exists()
