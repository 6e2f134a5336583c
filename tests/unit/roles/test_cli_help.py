"""Help reads alike everywhere (metavars, an example per command that parses), errors
are JSON on stderr under --json, and shell completion works (issue 12, item 9)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from emrshare.cli import app
from emrshare.cli._help import EXAMPLES
from emrshare.roles import Profiles

runner = CliRunner()
EMRSHARE = Path(sys.executable).with_name("emrshare")


def _leaves() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_has_an_example_and_no_example_is_stale() -> None:
    leaves = _leaves()
    assert sorted(set(leaves) - set(EXAMPLES)) == [], "commands without an example"
    assert sorted(set(EXAMPLES) - set(leaves)) == [], "examples of no command"


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_each_example_parses(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's words reach its command and parse there (no unknown option, no
    missing argument): what a user copies from --help works as far as parsing goes."""
    monkeypatch.chdir(tmp_path)
    words = shlex.split(EXAMPLES[path])
    for w in words:  # files an example names must exist for `exists=True` arguments
        if w.endswith("/") and not w.startswith("-"):  # a directory
            Path(w).mkdir(parents=True)
        elif "." in w and not w.startswith(("-", "0x")):
            Path(w).write_bytes(b"{}")
    root = typer.main.get_command(app)
    ctx = root.make_context("emrshare", list(words))
    rest = [*ctx._protected_args, *ctx.args]
    cmd: Any = root
    reached: list[str] = []
    while getattr(cmd, "commands", None):
        name, rest = rest[0], rest[1:]
        cmd = cmd.commands[name]
        reached.append(name)
        sub = cmd.make_context(name, list(rest), parent=ctx)
        rest = [*sub._protected_args, *sub.args] if getattr(cmd, "commands", None) else []
        ctx = sub
    assert " ".join(reached) == path


def test_help_has_standard_metavars_and_the_example() -> None:
    for path in _leaves():
        result = runner.invoke(app, [*path.split(), "--help"], terminal_width=200)
        assert result.exit_code == 0, path
        assert "<bool>" not in result.stdout, f"a flag shows a metavar in `{path} --help`"
        options = [line for line in result.stdout.splitlines() if " --" in line]
        assert not [o for o in options if "<str>" in o or "<path>" in o], (path, options)
        assert f"Example: emrshare {EXAMPLES[path]}" in " ".join(result.stdout.split()), path


def test_errors_are_json_on_stderr_with_json(tmp_path: Path) -> None:
    Profiles(tmp_path).create("alice", "patient", "pw", fast_kdf=True)
    base = ["--data-dir", str(tmp_path)]
    for args in (
        [*base, "--json", "--profile", "alcie", "whoami"],  # global --json
        [*base, "--profile", "alcie", "whoami", "--json"],  # the command's own
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        error = json.loads(result.stderr)["error"]
        assert error["type"] == "ProfileNotFound" and error["exit_code"] == 1
        assert error["suggestion"] == "alice" and "did you mean" in error["message"]
        assert error["hint"] == "pick it with --profile alice"
        assert result.stdout == ""
    # A usage error: JSON too, exit 2, even before the command's own --json is parsed.
    result = runner.invoke(app, [*base, "record", "list", "--bogus", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert error["type"] == "UsageError" and "--bogus" in error["message"]
    # Without --json: one line, never JSON.
    result = runner.invoke(app, [*base, "--profile", "alcie", "whoami"])
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def _complete(words: str, data_dir: Path) -> list[str]:
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        "_EMRSHARE_COMPLETE": "complete_bash",
        "EMRSHARE_DATA_DIR": str(data_dir),
    }
    out = subprocess.run([str(EMRSHARE)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_shell_completion_completes_commands_options_and_profiles(tmp_path: Path) -> None:
    Profiles(tmp_path).create("alice", "patient", "pw", fast_kdf=True)
    Profiles(tmp_path).create("hospital", "member", "pw", fast_kdf=True)
    assert _complete("emrshare rec", tmp_path) == ["recover", "record"]
    assert _complete("emrshare record add --ca", tmp_path) == ["--category"]
    assert _complete("emrshare --profile h", tmp_path) == ["hospital"]
    # typer names the shell from the process tree: a user's bash is the parent. `bash -c`
    # with a lone command would exec it in bash's place (then the parent is pytest, and an
    # orphaned test run has no shell above it at all), so bash runs a second command.
    script = subprocess.run(
        ["bash", "-c", f"{EMRSHARE} --show-completion; exit $?"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "complete -o default -F _emrshare_completion emrshare" in script.stdout


#: Commands whose output is not a result: the proxy and relay servers log as they serve.
NO_JSON = {"proxy serve", "relay serve", "research serve"}


def test_every_command_takes_json() -> None:
    lacking = sorted(
        path
        for path, cmd in _leaves().items()
        if path not in NO_JSON and not any("--json" in p.opts for p in cmd.params)
    )
    assert lacking == [], "commands without their own --json"
