"""The example ``emrshare`` command line (thin: parses, calls the library, prints).

Wiring only: the global options, and the command groups of :mod:`emrshare.cli.commands`
in the order ``--help`` lists them. Each command parses (:mod:`._parse`), calls one
library function with what :class:`~._context.State` resolved, and prints through
:mod:`._render`; :mod:`._errors` turns failures into one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from emrshare import __version__
from emrshare.cli._context import JsonOpt, State, emit_json, want_json
from emrshare.cli._errors import ErrorHandlingGroup
from emrshare.cli.commands import (
    backup,
    claims,
    devnet,
    drugs,
    drugs_patient,
    emergency,
    fhir,
    grants,
    guardians,
    identity,
    members,
    portal,
    proxy,
    records,
    relay,
    requests,
    rotate,
    rx,
    study,
)

app = typer.Typer(
    cls=ErrorHandlingGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    help="Share encrypted medical records across hospitals.",
)


def _profile_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of --profile: the profiles of the data dir (given or default)."""
    from emrshare.errors import EmrShareError
    from emrshare.roles.profiles import Profiles, default_data_dir

    given = ctx.params.get("data_dir")
    try:
        names = [p.name for p in Profiles(Path(given or default_data_dir()).expanduser()).list()]
    except (EmrShareError, OSError):  # completion never fails the shell: no names instead
        return []
    return [n for n in names if n.startswith(incomplete)]


@app.callback()
def _global_options(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            envvar="EMRSHARE_PROFILE",
            help="which local identity to act as",
            autocompletion=_profile_names,
        ),
    ] = "default",
    data_dir: Annotated[
        Path | None,
        typer.Option(envvar="EMRSHARE_DATA_DIR", help="profiles, network and state live here"),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="JSON output for scripts")] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="read the keystore password from this file")
    ] = None,
    relay: Annotated[
        str | None,
        typer.Option(
            envvar="EMRSHARE_RELAY",
            help="relay URL for a patient's operations (default: the network's; off: pay own gas)",
        ),
    ] = None,
) -> None:
    from emrshare.roles.profiles import default_data_dir

    ctx.obj = State(
        data_dir=(data_dir or default_data_dir()).expanduser(),
        profile_name=profile,
        json=json,
        password_file=password_file,
        relay=relay,
    )
    ctx.call_on_close(ctx.obj.close)


@app.command()
def version(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print the emrshare version."""
    if want_json(ctx, json_out):
        emit_json({"version": __version__})
    else:
        typer.echo(__version__)


app.add_typer(proxy.app, name="proxy")
app.add_typer(relay.app, name="relay")
app.command()(identity.init)
app.command()(backup.restore)
app.command()(identity.register)
app.command()(identity.whoami)
app.command()(records.audit)
app.command()(identity.recover)
app.command()(rotate.rotate)
app.add_typer(records.app, name="record")
app.add_typer(grants.app, name="grant")
app.add_typer(requests.app, name="request")
app.add_typer(fhir.app, name="fhir")
app.add_typer(grants.writer_app, name="writer")
app.add_typer(guardians.app, name="guardian")
members.app.command("rotate-keys")(rotate.member_rotate_keys)
app.add_typer(members.app, name="member")
app.add_typer(emergency.app, name="emergency")
app.add_typer(rx.app, name="rx")
app.add_typer(study.app, name="study")
app.add_typer(study.research_app, name="research")
app.add_typer(claims.app, name="claims")
for _name in ("check", "export", "link", "mine", "reveal"):
    drugs.app.command(_name)(getattr(drugs_patient, f"drugs_{_name}"))
app.add_typer(drugs.app, name="drugs")
app.command()(emergency.notifications)
app.command()(portal.portal)
app.add_typer(backup.app, name="backup")
app.add_typer(devnet.app, name="devnet")


def main() -> None:
    """Console-script entry point.

    Everything the command (and the nodes and proxies it starts) creates is owner-only:
    a belt to the library's braces, which creates its files 0600 whatever the umask.
    """
    os.umask(0o077)
    app()
