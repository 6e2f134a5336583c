"""The example ``emrshare`` command line (thin: parses, calls the library, prints)."""

from __future__ import annotations

import typer

from emrshare import __version__

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Share encrypted medical records across hospitals.",
)


@app.command()
def version() -> None:
    """Print the emrshare version."""
    typer.echo(__version__)


from emrshare.cli.proxy import app as _proxy_app  # noqa: E402

app.add_typer(_proxy_app, name="proxy")


def main() -> None:
    """Console-script entry point."""
    app()
