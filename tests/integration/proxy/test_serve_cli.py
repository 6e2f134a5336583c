"""``emrshare proxy serve`` start-up failures are one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emrshare._process import free_port
from emrshare.chain.deploy import Deployment
from emrshare.crypto.keys import MemberKeys
from emrshare.crypto.keystore import save_keystore
from emrshare.proxy.node import ProxyConfig


def test_unreachable_chain_is_a_one_line_error(tmp_path: Path) -> None:
    keystore = tmp_path / "proxy.keystore"
    save_keystore(keystore, MemberKeys.generate(), "pw", opslimit=1, memlimit=8192)
    deployment = tmp_path / "deployment.json"
    Deployment(31337, {"Grants": "0x" + "11" * 20}, 0, "0x" + "22" * 20).write(deployment)
    port = free_port()  # nothing listens there
    config = ProxyConfig(
        keystore=keystore,
        password_env="EMRSHARE_TEST_PW",
        # An RPC URL with credentials and an API key in its path, as providers hand out.
        rpc_url=f"http://user:hunter2@127.0.0.1:{port}/v3/SECRETAPIKEY",
        deployment=deployment,
        data_dir=tmp_path / "data",
        rpc_timeout=2.0,
    )
    path = tmp_path / "proxy.toml"
    path.write_text(config.to_toml())
    result = subprocess.run(
        [sys.executable, "-m", "emrshare.cli", "proxy", "serve", "--config", str(path)],
        env=dict(os.environ, EMRSHARE_TEST_PW="pw"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert str(port) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "SECRETAPIKEY" not in result.stderr and "hunter2" not in result.stderr
