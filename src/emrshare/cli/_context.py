"""What every command shares: global options, lazy loading of identity and network, and
the console primitives (plain-text tables, JSON, one-line failures).

Nothing here holds logic that a library user would need: it resolves which profile,
data dir and network a command acts with (:class:`State`), and prints.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from emrshare._text import sanitize
from emrshare.errors import ConfigurationError, EmrShareError, KeystoreError

if TYPE_CHECKING:
    from emrshare.crypto import MemberKeys, PatientKeys
    from emrshare.network import Network
    from emrshare.roles import Patient, Provider
    from emrshare.roles.profiles import Profile, Profiles
    from emrshare.types import Address

T = TypeVar("T")


def _json_option(ctx: typer.Context, value: bool) -> bool:
    # Eager, so parsed first: an error in the command's other options or in its run is
    # then reported as JSON too (the global option sets the same flag).
    if value and isinstance(ctx.find_root().obj, State):
        ctx.find_root().obj.json = True
    return value


#: The ``--json`` option of every command (also a global option): JSON on stdout, and an
#: error as one JSON object on stderr.
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="print JSON instead of text", callback=_json_option, is_eager=True),
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1, *, json_error: dict[str, Any] | None = None) -> None:
    # One line: a user mistake is not a crash, so no traceback. The message may quote a
    # chain- or peer-supplied string (a proxy's refusal): its control characters are
    # shown as U+FFFD, never sent to the terminal. With --json, one JSON object instead
    # (escaped by json.dumps: ensure_ascii writes every control character as \u….).
    if json_error is not None:
        sys.stderr.write(json.dumps(json_error, default=_jsonable, ensure_ascii=True) + "\n")
        sys.stderr.flush()
    else:
        err.print(f"error: {safe(message)}", markup=False, highlight=False)
    raise typer.Exit(code)


def safe(text: object) -> str:
    """``str(text)`` with every C0/C1 control, bidi/zero-width format character and
    line separator replaced by U+FFFD: what the CLI prints of any chain- or peer-supplied
    string, so an ESC sequence cannot rewrite the screen. Print it with ``markup=False``
    (or as :class:`rich.text.Text`) so ``[link=…]`` is not Rich markup either."""
    return sanitize(str(text))


@dataclass
class State:
    """The global options and everything loaded from them (lazily, once)."""

    data_dir: Path
    profile_name: str
    json: bool = False
    password_file: Path | None = None
    #: ``--relay``: where a patient's operations go (``off``: sent with the patient's own
    #: key); ``None``: the network configuration's relay, if it names one.
    relay: str | None = None
    #: The command being run (``grant revoke``), set by :func:`state`: the error hints
    #: depend on it.
    command: str = ""
    _keys: PatientKeys | MemberKeys | None = field(default=None, repr=False)
    _network: Network | None = field(default=None, repr=False)
    _facade: Patient | Provider | None = field(default=None, repr=False)

    @property
    def profiles(self) -> Profiles:
        from emrshare.roles.profiles import Profiles

        return Profiles(self.data_dir)

    def profile(self) -> Profile:
        return self.profiles.get(self.profile_name)

    def password(self, *, confirm: bool = False) -> str:
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\n")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the password file {self.password_file}: {exc.strerror}; "
                    "fix --password-file"
                ) from exc
        env = os.environ.get("EMRSHARE_PASSWORD")
        if env:
            return env
        if not sys.stdin.isatty():
            raise KeystoreError(
                "a keystore password is needed: set EMRSHARE_PASSWORD, pass "
                "--password-file, or run in a terminal"
            )
        value: str = typer.prompt(
            f"password for profile {self.profile_name!r}",
            hide_input=True,
            confirmation_prompt=confirm,
        )
        return value

    def keys(self) -> PatientKeys | MemberKeys:
        if self._keys is None:
            self._keys = self.profiles.unlock(self.profile_name, self.password())
        return self._keys

    def network(self) -> Network:
        if self._network is None:
            from emrshare.errors import ChainError
            from emrshare.network import Network

            path = self.profiles.network_path
            if not path.exists():
                raise ConfigurationError(
                    f"no network configuration at {path}; start a local network with "
                    "`emrshare devnet up` or pass --data-dir pointing at one"
                )
            net = Network.from_config(path)
            if not net.w3.is_connected():
                raise ChainError(
                    f"cannot reach the chain node of {path}; start it "
                    "(`emrshare devnet up`) or fix rpc_url in that file"
                )
            self._network = net
        return self._network

    def patient(self) -> Patient:
        from emrshare.roles import Patient

        if not isinstance(self._facade, Patient):
            self._facade = self.new_patient()
        return self._facade

    def new_patient(self) -> Patient:
        """A new :class:`Patient` of this profile (the caller closes it; the portal's is
        built on, and only used from, its own thread)."""
        from emrshare.crypto import PatientKeys
        from emrshare.roles import Patient

        keys = self.keys()
        if not isinstance(keys, PatientKeys):
            raise ConfigurationError(
                f"profile {self.profile_name!r} is a member, not a patient; "
                "use --profile with a patient profile"
            )
        net = self.network()
        relay = self.relay or net.relay_url
        return Patient(
            net,
            keys,
            state_dir=self.profile().state_dir,
            relay=None if relay in (None, "off") else relay,
        )

    def provider(self) -> Provider:
        from emrshare.crypto import MemberKeys
        from emrshare.roles import Provider

        keys = self.keys()
        if not isinstance(keys, MemberKeys):
            raise ConfigurationError(
                f"profile {self.profile_name!r} is a patient, not a member (hospital, "
                "insurer, …); use --profile with a member profile"
            )
        if not isinstance(self._facade, Provider):
            self._facade = Provider(self.network(), keys, state_dir=self.profile().state_dir)
        return self._facade

    def is_patient(self) -> bool:
        return self.profile().kind == "patient"

    def by_kind(self, patient: Callable[[Patient], T], member: Callable[[Provider], T]) -> T:
        """Run ``patient`` with this profile's :class:`Patient`, or ``member`` with its
        :class:`Provider`: the commands both kinds run (list grants, recover, …)."""
        if self.is_patient():
            return patient(self.patient())
        return member(self.provider())

    def on_records(
        self,
        patient_arg: str | None,
        patient: Callable[[Patient], T],
        member: Callable[[Provider, Address], T],
    ) -> T:
        """As :meth:`by_kind`, for a command on a patient's records: a patient acts on
        its own, a member on those of ``--patient`` (required for a member, checked
        before its keys are unlocked)."""
        if self.is_patient():
            return patient(self.patient())
        if patient_arg is None:
            raise typer.BadParameter("--patient is required for a member", param_hint="patient")
        who = self.profiles.resolve(patient_arg)  # a typo fails before any unlock
        return member(self.provider(), who)

    def close(self) -> None:
        """Close what the command opened: the facade (its journal, its sealing workers),
        then the network."""
        if self._facade is not None:
            self._facade.close()
        if self._network is not None:
            self._network.close()


#: The state of the command being run (set by :func:`state`), for :func:`known_names`.
_current_state: ContextVar[State | None] = ContextVar("emrshare_state", default=None)


def known_names() -> dict[str, str]:
    """The profile name of each address a local profile of this data dir holds, for the
    tables (:mod:`._render`); empty outside a command. A damaged profile is skipped here:
    a table is no place to report it."""
    st = _current_state.get()
    if st is None:
        return {}
    root = st.data_dir / "profiles"
    names: dict[str, str] = {}
    if root.is_dir():
        profiles = st.profiles
        for d in sorted(root.iterdir()):
            try:
                names.setdefault(profiles.get(d.name).address, d.name)
            except EmrShareError:
                continue
    return names


def state(ctx: typer.Context) -> State:
    """The global state, from any command's context (which it records as the command)."""
    root = ctx.find_root()
    obj = root.obj
    assert isinstance(obj, State)
    _current_state.set(obj)
    obj.command = obj.command or ctx.command_path.removeprefix(root.command_path).strip()
    return obj


def want_json(ctx: typer.Context, local: bool) -> bool:
    return local or state(ctx).json


def emit_json(value: Any) -> None:
    # ensure_ascii: a bidi override or zero-width character from the chain is written as
    # a \u escape, never raw (Rich re-dumps with ensure_ascii=False by default).
    out.print_json(json.dumps(value, default=_jsonable), ensure_ascii=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table. Every cell is plain text (:class:`rich.text.Text`, never Rich
    markup) with control characters replaced (:func:`safe`): cells hold category names,
    reasons and addresses from the chain and from peers."""
    t = Table(title=Text(safe(title)), title_justify="left")
    for c in columns:
        t.add_column(Text(safe(c)), overflow="fold")
    for r in rows:
        t.add_row(*(Text(safe(_cell(v))) for v in r))
    out.print(t)


def _cell(v: Any) -> str:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if v is None:
        return "-"
    return str(v)


class _Bar:
    """What :func:`progress_bar` yields: ``bar(nbytes)`` advances it, ``bar.stage(name)``
    shows the step a write has reached (encrypt, store, append, confirm)."""

    def __init__(self, label: str, update: Callable[..., None] | None) -> None:
        self._label = label
        self._update = update

    def __call__(self, done: int) -> None:
        if self._update is not None:
            self._update(completed=done)

    def stage(self, name: str) -> None:
        if self._update is not None:  # drawn at once: a stage may last less than a refresh
            self._update(description=f"{self._label}: {name}", refresh=True)


@contextmanager
def progress_bar(label: str, total: int | None, enabled: bool) -> Iterator[_Bar]:
    """A rich progress bar for large transfers, on a terminal; yields a :class:`_Bar`
    (``bar(nbytes)``, ``bar.stage(name)``). The label holds a file name: Rich markup in
    it is escaped (the description column renders markup) and control characters are
    replaced (:func:`safe`)."""
    label = escape(safe(label))
    if not enabled or not err.is_terminal:  # scripts reading stderr get no bar residue
        yield _Bar(label, None)
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield _Bar(label, lambda **kw: bar.update(task, **kw))


class _RateColumn(ProgressColumn):
    """Items per second, as the bar measured them (``-`` until it can tell)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "-" if speed is None else f"{speed:,.0f}" if speed >= 10 else f"{speed:.1f}"
        return Text(f"{shown} {self._unit}/s", style="progress.data.speed")


@contextmanager
def count_bar(
    label: str, unit: str, enabled: bool, console: Console | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar that counts items (records), with their rate, time elapsed and
    time left, on a terminal's stderr; yields ``update(done, total)``. Disabled, or not on
    a terminal (a script reading stderr), the update does nothing."""
    console = console if console is not None else err
    label = escape(safe(label))
    if not enabled or not console.is_terminal:

        def nothing(done: int, total: int) -> None:
            return None

        yield nothing
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        started: list[bool] = []

        def update(done: int, total: int) -> None:
            if not started:  # what was done before (a resumed import) is no rate sample
                started.append(True)
                bar.reset(task, completed=done, total=total)
            else:
                bar.update(task, completed=done, total=total)

        yield update
