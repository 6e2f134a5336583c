"""``proxy serve|report``: run a re-encryption proxy node; report one that misbehaved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emrshare.cli._context import JsonOpt, emit_json, out, state, want_json

app = typer.Typer(no_args_is_help=True, help="Run a re-encryption proxy node; report one.")


@app.command()
def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="proxy config file (TOML or JSON)")
    ],
    log_level: Annotated[str, typer.Option(help="uvicorn/proxy log level")] = "info",
) -> None:
    """Serve re-encryption requests for the grants on chain (until Ctrl-C / SIGTERM)."""
    from emrshare.proxy.node import ProxyConfig
    from emrshare.proxy.node import serve as run

    run(ProxyConfig.load(config), log_level=log_level)


@app.command()
def report(
    ctx: typer.Context,
    evidence: Annotated[Path, typer.Argument(help="an evidence file (.emev) a read wrote")],
    json_out: JsonOpt = False,
) -> None:
    """Report the proxy an evidence file proves misbehaved (published on chain for the
    admins to verify; as a member profile)."""
    from emrshare.proxy.evidence import Evidence

    proxy = Evidence.read(evidence).proxy  # refused here, before any chain access
    report_id = state(ctx).provider().report_proxy(evidence)
    if want_json(ctx, json_out):
        emit_json({"report_id": report_id, "proxy": proxy})
        return
    out.print(
        f"reported {proxy} as report {report_id}; admins verify it before suspending "
        f"(`emrshare member suspend {proxy} --report {report_id}`)"
    )
