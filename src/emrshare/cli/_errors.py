"""How the CLI fails: one line on stderr, exit 1 for library errors and 2 for usage.

The library's messages say what happened and what to do in library terms; where a
command fixes it, :func:`hints` adds that command, in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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
    ProfileExists,
    ProfileNotFound,
    RecordNotFound,
)

__all__ = ["HINTS", "ErrorHandlingGroup", "message_for"]


def _profile_hint(exc: EmrShareError, st: State | None) -> str:
    """What to run when a profile name names nothing: on a data dir with no network and
    no profiles (a first run), a devnet, which makes the demo profiles; after a typo,
    nothing more (the message asks "did you mean"); else ``init``."""
    assert isinstance(exc, ProfileNotFound)
    if exc.suggestion is not None:
        return "" if exc.reference else f"pick it with --profile {exc.suggestion}"
    if exc.reference:
        return "give a 0x address or the name of a profile in this data dir"
    fresh = st is not None and not exc.known and not st.profiles.network_path.exists()
    if fresh:
        return (
            "this data dir is new: `emrshare devnet up` starts a local network with demo "
            "profiles (patient, hospital, …), or `emrshare init` creates your own identity"
        )
    return f"create it with `emrshare --profile {exc.name} init`, or pick another with --profile"


#: A hint: a fixed text, or one made from the error and the command's state.
Hint = str | Callable[[EmrShareError, State | None], str]

#: Error type, the commands it applies to (empty: all), and the hint appended to the
#: message; the first match wins.
HINTS: tuple[tuple[type[EmrShareError], tuple[str, ...], Hint], ...] = (
    (ProfileNotFound, (), _profile_hint),
    (ProfileExists, (), "pick another name with --profile, or another --data-dir"),
    (JournalError, (), "run `emrshare recover`"),
    (NotAdmin, (), "run `member add` with --profile admin"),
    (RecordNotFound, (), "`emrshare record list` shows the records"),
    (NotFound, ("grant revoke",), "`emrshare grant list` shows the grants"),
    (NotFound, ("request approve", "request deny"), "`emrshare request list` shows them"),
    (DeploymentError, (), "on a devnet, `emrshare devnet up` deploys them"),
)


def message_for(exc: EmrShareError, st: State | None = None) -> str:
    """The error's message with the CLI hint for the command ``st`` runs (``grant
    revoke``), unless the message already names the hint's command."""
    message = str(exc)
    command = st.command if st is not None else ""
    for kind, commands, hint in HINTS:
        if isinstance(exc, kind) and (not commands or command in commands):
            text = hint if isinstance(hint, str) else hint(exc, st)
            if text and not any(cmd in message for cmd in re.findall(r"`[^`]+`", text)):
                # after a question ("did you mean 'alice'?") the hint is a new sentence
                joined = f" {text[:1].upper()}{text[1:]}" if message.endswith("?") else f"; {text}"
                message += joined
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
        _fail(message_for(exc, _state(ctx)))
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


def _state(ctx: Any) -> State | None:
    obj = ctx.obj if ctx is not None else None
    return obj if isinstance(obj, State) else None
