"""Network configuration files and identity helpers (no chain needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emrshare.chain.deploy import DEPLOY_ORDER, Deployment
from emrshare.errors import ConfigurationError
from emrshare.network import Network, NetworkConfig, StoreConfig


def _config(tmp_path: Path) -> NetworkConfig:
    return NetworkConfig(
        rpc_url="http://127.0.0.1:8545",
        deployment=Deployment(
            chain_id=31337,
            addresses={name: "0x" + f"{i + 1:02x}" * 20 for i, name in enumerate(DEPLOY_ORDER)},
            start_block=3,
            deployer="0x" + "22" * 20,
        ),
        store=StoreConfig(kind="local", path=str(tmp_path / "store")),
        threshold=2,
        confirmations=2,
        name="test",
    )


def test_round_trip(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg.write(tmp_path / "network.json")
    assert NetworkConfig.read(tmp_path / "network.json") == cfg


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"write one with NetworkConfig\.write"):
        NetworkConfig.read(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "text", ["{not json", json.dumps({"rpc_url": "x"}), json.dumps({"deployment": {}})]
)
def test_bad_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "network.json").write_text(text)
    with pytest.raises(ConfigurationError, match="network configuration"):
        NetworkConfig.read(tmp_path / "network.json")


def test_unknown_store_kind(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    bad = NetworkConfig(cfg.rpc_url, cfg.deployment, StoreConfig(kind="s3"))
    with pytest.raises(ConfigurationError, match="unknown store kind 's3'"):
        Network.from_config(bad)


def test_from_config_builds_without_contacting_the_node(tmp_path: Path) -> None:
    net = Network.from_config(_config(tmp_path))
    assert net.threshold == 2 and net.confirmations == 2
    assert repr(net) == "Network('test', chain_id=31337)"
    net.close()


def test_patient_and_member_identities(tmp_path: Path) -> None:
    from nacl.pwhash import argon2id

    from emrshare.crypto import MemberKeys, PatientKeys, save_keystore
    from emrshare.roles import Patient, Provider, Requester

    net = Network.from_config(_config(tmp_path))
    keys = PatientKeys.generate()
    restored = Patient.restore(net, keys.to_mnemonic(), state_dir=tmp_path / "p")
    assert restored.address == keys.address and repr(restored) == f"Patient({keys.address})"
    fast = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
    save_keystore(tmp_path / "p.json", keys, "pw", **fast)
    opened = Patient.from_keystore(net, tmp_path / "p.json", "pw", state_dir=tmp_path / "o")
    assert opened.address == keys.address
    member = MemberKeys.generate()
    save_keystore(tmp_path / "m.json", member, "pw", **fast)
    hospital = Provider.from_keystore(net, tmp_path / "m.json", "pw", state_dir=tmp_path / "h")
    assert isinstance(hospital, Provider) and hospital.address == member.address
    reader = Requester.from_keystore(net, tmp_path / "m.json", "pw", state_dir=tmp_path / "r")
    assert type(reader) is Requester
    assert "seed" not in repr(hospital) and "secret" not in repr(restored)


def test_facades_create_no_directory_until_they_write(tmp_path: Path) -> None:
    from emrshare.crypto import MemberKeys, PatientKeys
    from emrshare.roles import AsyncProvider, AsyncRequester, Patient, Provider, Requester

    net = Network.from_config(_config(tmp_path))
    state = tmp_path / "state"
    Patient(net, PatientKeys.generate(), state_dir=state / "p", known_categories=["lab"])
    for cls in (Provider, Requester, AsyncProvider, AsyncRequester):
        cls(net, MemberKeys.generate(), state_dir=state / cls.__name__)
    assert not state.exists(), "a constructor created its state directory"
