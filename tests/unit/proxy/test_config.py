"""Proxy configuration files (TOML and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emrshare.errors import ConfigurationError
from emrshare.proxy.node import ProxyConfig

TOML = """
[proxy]
listen = "127.0.0.1:7777"
data_dir = "state"
keystore = "proxy.keystore"
password_env = "MY_PROXY_PW"

[chain]
rpc_url = "http://127.0.0.1:8545"
deployment = "/etc/emrshare/deployment.json"
confirmations = 2

[audit]
flush_interval = 0.5
flush_entries = 8
"""


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(TOML)
    cfg = ProxyConfig.load(path)
    assert (cfg.host, cfg.port) == ("127.0.0.1", 7777)
    assert cfg.data_dir == tmp_path / "state"
    assert cfg.keystore == tmp_path / "proxy.keystore"
    assert cfg.deployment == Path("/etc/emrshare/deployment.json")
    assert cfg.confirmations == 2 and cfg.flush_entries == 8 and cfg.flush_interval == 0.5
    assert cfg.database.parent == tmp_path / "state"


def test_round_trip_and_json(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(TOML)
    cfg = ProxyConfig.load(path)
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert ProxyConfig.load(again) == cfg
    j = tmp_path / "proxy.json"
    j.write_text(
        json.dumps(
            {
                "proxy": {"keystore": "k", "listen": "0.0.0.0:1"},
                "chain": {"rpc_url": "http://x", "deployment": "d.json"},
            }
        )
    )
    cfg2 = ProxyConfig.load(j)
    assert cfg2.port == 1 and cfg2.flush_entries == 64


def test_password_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(TOML)
    cfg = ProxyConfig.load(path)
    monkeypatch.delenv("MY_PROXY_PW", raising=False)
    with pytest.raises(ConfigurationError, match="MY_PROXY_PW"):
        cfg.password()
    monkeypatch.setenv("MY_PROXY_PW", "pw")
    assert cfg.password() == "pw"


@pytest.mark.parametrize(
    "text",
    ["[proxy]\nkeystore='k'\n", "not toml ===", "[proxy]\n[chain]\nrpc_url='x'\ndeployment='d'\n"],
)
def test_bad_configs(tmp_path: Path, text: str) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError):
        ProxyConfig.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ProxyConfig.load(tmp_path / "nope.toml")


def test_ipv6_listen(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(TOML.replace("127.0.0.1:7777", "[::]:7777"))
    cfg = ProxyConfig.load(path)
    assert (cfg.host, cfg.port) == ("::", 7777)
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert ProxyConfig.load(again) == cfg


def test_to_toml_quotes_awkward_paths(tmp_path: Path) -> None:
    odd = tmp_path / 'dir with "quotes" and \\ backslash'
    cfg = ProxyConfig(
        keystore=odd / "k.json",
        password_env="PW",
        rpc_url="http://127.0.0.1:8545",
        deployment=odd / "d.json",
        data_dir=odd / "data",
    )
    path = tmp_path / "proxy.toml"
    path.write_text(cfg.to_toml())
    assert ProxyConfig.load(path) == cfg
