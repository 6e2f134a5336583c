"""The example ``emrshare`` command line (thin: parses, calls the library, prints)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from emrshare import __version__
from emrshare.cli._context import ErrorHandlingGroup, State

app = typer.Typer(
    cls=ErrorHandlingGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Share encrypted medical records across hospitals.",
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    profile: Annotated[
        str, typer.Option(envvar="EMRSHARE_PROFILE", help="which local identity to act as")
    ] = "default",
    data_dir: Annotated[
        Path | None,
        typer.Option(envvar="EMRSHARE_DATA_DIR", help="profiles, network and state live here"),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="JSON output for scripts")] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="read the keystore password from this file")
    ] = None,
) -> None:
    from emrshare.roles.profiles import default_data_dir

    ctx.obj = State(
        data_dir=(data_dir or default_data_dir()).expanduser(),
        profile_name=profile,
        json=json,
        password_file=password_file,
    )
    ctx.call_on_close(ctx.obj.close)


@app.command()
def version() -> None:
    """Print the emrshare version."""
    typer.echo(__version__)


from emrshare.cli.proxy import app as _proxy_app  # noqa: E402

app.add_typer(_proxy_app, name="proxy")

from emrshare.cli.commands import register as _register  # noqa: E402

_register(app)


def main() -> None:
    """Console-script entry point.

    Everything the command (and the nodes and proxies it starts) creates is owner-only:
    a belt to the library's braces, which creates its files 0600 whatever the umask.
    """
    os.umask(0o077)
    app()
