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
from emrshare.cli._help import polish
from emrshare.errors import (
    AccessDenied,
    DeploymentError,
    EmrShareError,
    InvalidFhir,
    InvalidInput,
    JournalError,
    MixedFhirVersions,
    NotAdmin,
    NotFound,
    PatientNotFound,
    ProfileExists,
    ProfileNotFound,
    RecordNotFound,
    UnknownCategory,
)

__all__ = ["HINTS", "ErrorHandlingGroup", "error_json", "hint_for", "message_for"]


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


def _subject_hint(exc: EmrShareError, st: State | None) -> str:
    """``fhir import`` of several patients: the library names ``subject=``, the CLI its flag."""
    return "pick one with `--fhir-patient Patient/…`" if "subject='Patient/" in str(exc) else ""


#: Error type, the commands it applies to (empty: all), and the hint appended to the
#: message; the first match wins.
HINTS: tuple[tuple[type[EmrShareError], tuple[str, ...], Hint], ...] = (
    (ProfileNotFound, (), _profile_hint),
    (ProfileExists, (), "pick another name with --profile, or another --data-dir"),
    (PatientNotFound, ("restore",), "a new identity is made with `emrshare init` instead"),
    (JournalError, (), "run `emrshare recover`"),
    (NotAdmin, (), "run `member add` with --profile admin"),
    (RecordNotFound, (), "`emrshare record list` shows the records"),
    (NotFound, ("grant revoke",), "`emrshare grant list` shows the grants"),
    (NotFound, ("request approve", "request deny"), "`emrshare request list` shows them"),
    (DeploymentError, (), "on a devnet, `emrshare devnet up` deploys them"),
    (MixedFhirVersions, ("fhir import",), "name the version with `--fhir-version R4|R5`"),
    (InvalidFhir, ("fhir import",), "pass `--skip-invalid` to write the valid resources"),
    (InvalidInput, ("fhir import",), _subject_hint),
    (AccessDenied, ("fhir import",), "a mapping file is passed with `--mapping FILE`"),
    (
        UnknownCategory,
        ("record add", "writer add", "grant add", "request add"),
        "pass `--new-category` for a custom category",
    ),
)


def hint_for(exc: EmrShareError, st: State | None = None) -> str:
    """The CLI hint for ``exc`` in the command ``st`` runs (``grant revoke``), or ``""``
    (also when the message already names the hint's command)."""
    message = str(exc)
    command = st.command if st is not None else ""
    for kind, commands, hint in HINTS:
        if isinstance(exc, kind) and (not commands or command in commands):
            text = hint if isinstance(hint, str) else hint(exc, st)
            if any(cmd in message for cmd in re.findall(r"`[^`]+`", text)):
                return ""
            return text
    return ""


def message_for(exc: EmrShareError, st: State | None = None) -> str:
    """The error's message followed by its CLI hint, as one line."""
    return _joined(str(exc), hint_for(exc, st))


def _joined(message: str, hint: str) -> str:
    if not hint:
        return message
    if message.endswith("?"):  # after "did you mean 'alice'?" the hint is a new sentence
        return f"{message} {hint[:1].upper()}{hint[1:]}"
    return f"{message}; {hint}"


#: What an error's JSON form on stderr carries besides its type and message: the
#: machine-readable attributes a script acts on (a proxy's refusal reasons, …).
_DETAILS = (
    "reasons",
    "reason",
    "failures",
    "record_id",
    "path",
    "name",
    "suggestion",
    "needed",
    "got",
    "address",
)


def error_json(exc: EmrShareError | None, message: str, hint: str, code: int) -> dict[str, Any]:
    """``{"error": {"type", "message", "hint", "exit_code", …}}``: what ``--json`` prints
    on stderr instead of the one line (``type`` is ``"UsageError"`` for a bad argument)."""
    body: dict[str, Any] = {
        "type": type(exc).__name__ if exc is not None else "UsageError",
        "message": message,
        "hint": hint or None,
        "exit_code": code,
    }
    for attr in _DETAILS:
        value = getattr(exc, attr, None)
        if value is not None and value != {}:
            body[attr] = value
    return {"error": body}


class ErrorHandlingGroup(TyperGroup):
    """Turns library errors and bad input into one clear line and exit code 1 (2 for usage).

    As the root group it also gives the whole command tree its help vocabulary
    (:func:`~._help.polish`), once it is built (typer adds the completion options after
    constructing the group)."""

    def make_context(self, info_name: str | None, args: list[str], *a: Any, **kw: Any) -> Any:
        # The top-level options are parsed here, before invoke(): --json is not parsed
        # yet, so it is looked for among the words.
        polish(self)
        words = "--json" in args
        with _one_line_errors(None, json_out=words):
            ctx = super().make_context(info_name, args, *a, **kw)
        ctx.meta["emrshare.json_words"] = words  # a subcommand's usage error is raised
        return ctx  # before its own --json is parsed

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors(ctx, json_out=ctx.meta.get("emrshare.json_words", False)):
            return super().invoke(ctx)


@contextmanager
def _one_line_errors(ctx: Any, *, json_out: bool = False) -> Iterator[None]:
    try:
        yield
    except EmrShareError as exc:
        hint = hint_for(exc, _state(ctx))
        _fail(_joined(str(exc), hint), json_error=_json(ctx, json_out, exc, str(exc), hint, 1))
    except typer.TyperException as exc:  # usage errors (exit 2) and other refusals
        # `emrshare record` alone prints the group's help, as it should. The class is not
        # public: matched by name, as typer's own rich_utils does.
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        where = getattr(exc, "ctx", None)
        # Typer draws a usage block and a box; a mistyped option is still one line.
        hint = f"see `{where.command_path} --help`" if where is not None else ""
        message = exc.format_message()
        code = exc.exit_code
        text = f"{message} ({hint})" if hint else message
        _fail(text, code, json_error=_json(ctx, json_out, None, message, hint, code))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _json(
    ctx: Any, json_out: bool, exc: EmrShareError | None, message: str, hint: str, code: int
) -> dict[str, Any] | None:
    # The State is made by the root callback inside the try, and a command's own --json
    # (an eager option) sets its flag as the global one does.
    st = _state(ctx)
    if json_out or (st is not None and st.json):
        return error_json(exc, message, hint, code)
    return None


def _state(ctx: Any) -> State | None:
    obj = ctx.obj if ctx is not None else None
    return obj if isinstance(obj, State) else None
