"""``emrshare proxy …``: run a re-encryption proxy node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emrshare.errors import EmrShareError

app = typer.Typer(no_args_is_help=True, help="Run a re-encryption proxy node.")


@app.command()
def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="proxy config file (TOML or JSON)")
    ],
    log_level: Annotated[str, typer.Option(help="uvicorn/proxy log level")] = "info",
) -> None:
    """Serve re-encryption requests for the grants on chain (until Ctrl-C / SIGTERM)."""
    from emrshare.proxy.config import ProxyConfig
    from emrshare.proxy.node import serve as run

    try:
        run(ProxyConfig.load(config), log_level=log_level)
    except EmrShareError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
