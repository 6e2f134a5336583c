"""docs/cli.md documents every command and option `emrshare --help` shows, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from emrshare.cli import app

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
#: Documented once, for all commands (global options and "every listing command").
COMMON = {"--help", "--json"}


def _commands() -> dict[str, set[str]]:
    """Every leaf command path → the long option names it takes."""
    found: dict[str, set[str]] = {}

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        opts = {o for p in cmd.params for o in p.opts if o.startswith("--")}
        found[" ".join(path)] = opts

    walk(typer.main.get_command(app), [])
    return found


def _global_options() -> set[str]:
    root = typer.main.get_command(app)
    return {o for p in root.params for o in p.opts if o.startswith("--")}


def _documented(commands: dict[str, set[str]]) -> dict[str, set[str]]:
    """Command path → options named next to it in the first cell of a table row."""
    doc: dict[str, set[str]] = {}
    longest_first = sorted(commands, key=len, reverse=True)
    for line in CLI_MD.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split(" | ")[0]
        for snippet in re.findall(r"`([^`]+)`", first_cell):
            path = next((c for c in longest_first if snippet.startswith(c)), None)
            if path is None:
                continue
            doc.setdefault(path, set()).update(re.findall(r"--[a-z][a-z-]*", snippet))
    return doc


def test_every_command_and_option_is_documented() -> None:
    commands = _commands()
    doc = _documented(commands)
    assert sorted(set(commands) - set(doc)) == [], "commands missing from docs/cli.md"
    for path, opts in commands.items():
        missing = opts - COMMON - doc[path]
        assert not missing, f"docs/cli.md does not show {sorted(missing)} of `{path}`"


def test_documented_options_exist() -> None:
    commands = _commands()
    allowed = _global_options()
    for path, opts in _documented(commands).items():
        unknown = opts - commands[path] - allowed
        assert not unknown, f"docs/cli.md shows {sorted(unknown)} for `{path}`, which has none"
