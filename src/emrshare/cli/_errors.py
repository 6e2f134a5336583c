"""How the CLI fails: one line on stderr, exit 1 for library errors and 2 for usage.

The library's messages say what happened and what to do in library terms; where a
command fixes it, :func:`hints` adds that command, in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from emrshare.cli._context import State, _fail, err
from emrshare.errors import (
    DeploymentError,
    EmrShareError,
    JournalError,
    NotAdmin,
    NotFound,
    RecordNotFound,
    UnknownCategory,
)

__all__ = ["HINTS", "ErrorHandlingGroup", "message_for"]


#: Error type, the commands it applies to (empty: all), and the hint appended to the
#: message; the first match wins.
HINTS: tuple[tuple[type[EmrShareError], tuple[str, ...], str], ...] = (
    (JournalError, (), "run `emrshare recover`"),
    (NotAdmin, (), "run `member add` with --profile admin"),
    (RecordNotFound, (), "`emrshare record list` shows the records"),
    (NotFound, ("grant revoke",), "`emrshare grant list` shows the grants"),
    (NotFound, ("request approve", "request deny"), "`emrshare request list` shows them"),
    (DeploymentError, (), "on a devnet, `emrshare devnet up` deploys them"),
    (
        UnknownCategory,
        ("record add", "writer add", "grant add", "request add"),
        "pass `--new-category` for a custom category",
    ),
)


def message_for(exc: EmrShareError, command: str = "") -> str:
    """The error's message with the CLI hint for ``command`` (``grant revoke``), unless
    the message already names the hint's command."""
    message = str(exc)
    for kind, commands, hint in HINTS:
        if isinstance(exc, kind) and (not commands or command in commands):
            if not any(cmd in message for cmd in re.findall(r"`[^`]+`", hint)):
                message = f"{message}; {hint}"
            break
    return message


class ErrorHandlingGroup(TyperGroup):
    """Turns library errors and bad input into one clear line and exit code 1 (2 for usage)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        # The top-level options are parsed here, before invoke().
        with _one_line_errors(None):
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors(ctx):
            return super().invoke(ctx)


@contextmanager
def _one_line_errors(ctx: Any) -> Iterator[None]:
    try:
        yield
    except EmrShareError as exc:
        _fail(message_for(exc, _command(ctx)))
    except typer.TyperException as exc:  # usage errors (exit 2) and other refusals
        # `emrshare record` alone prints the group's help, as it should. The class is not
        # public: matched by name, as typer's own rich_utils does.
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        where = getattr(exc, "ctx", None)
        # Typer draws a usage block and a box; a mistyped option is still one line.
        hint = f" (see `{where.command_path} --help`)" if where is not None else ""
        _fail(exc.format_message() + hint, code=exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _command(ctx: Any) -> str:
    obj = ctx.obj if ctx is not None else None
    return obj.command if isinstance(obj, State) else ""
