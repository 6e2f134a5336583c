"""``emrshare proxy serve``: configuration errors are one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emrshare.cli import app


def test_missing_config_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["proxy", "serve", "--config", str(tmp_path / "x.toml")])
    assert result.exit_code == 1
    assert "cannot read proxy config" in result.output
    assert "Traceback" not in result.output


def test_missing_password_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "proxy.toml"
    cfg.write_text(
        "[proxy]\nkeystore='k'\npassword_env='EMRSHARE_TEST_UNSET_PW'\n"
        "[chain]\nrpc_url='http://127.0.0.1:1'\ndeployment='d.json'\n"
    )
    result = CliRunner().invoke(app, ["proxy", "serve", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "EMRSHARE_TEST_UNSET_PW" in result.output


def test_chain_errors_do_not_repeat_rpc_url_secrets() -> None:
    """Chain errors reach the log and GET /healthz; an RPC URL's key must not."""
    import requests

    from emrshare.errors import ChainError
    from emrshare.proxy.node.chain import _chain_errors

    @_chain_errors
    def head() -> int:
        raise requests.ConnectionError(
            "HTTPSConnectionPool(host='rpc.example', port=443): Max retries exceeded with "
            "url: /v3/SECRETAPIKEY (Caused by NewConnectionError('refused'))"
        )

    with pytest.raises(ChainError) as info:
        head()
    assert "SECRETAPIKEY" not in str(info.value)
    assert "rpc.example" in str(info.value) and "check the RPC endpoint" in str(info.value)


def test_report_of_a_file_that_is_no_evidence_is_a_one_line_error(tmp_path: Path) -> None:
    """``emrshare proxy report`` refuses a file that is not evidence before it touches the
    chain (here: no profile or network exists at all)."""
    bogus = tmp_path / "x.emev"
    bogus.write_bytes(b"EMEV\x01\x00not cbor")
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "data"), "proxy", "report", str(bogus)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "is not proxy evidence" in result.output
    assert "Traceback" not in result.output
