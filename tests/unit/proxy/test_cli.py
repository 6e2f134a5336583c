"""``emrshare proxy serve``: configuration errors are one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

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
