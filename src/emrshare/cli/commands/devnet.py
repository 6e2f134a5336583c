"""``devnet up|down|status``: a local development network in the data dir."""

from __future__ import annotations

import contextlib
import functools
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, err, out, state, table, want_json


class _Node(StrEnum):
    """The chain nodes ``devnet up --node`` offers."""

    anvil = "anvil"
    ganache = "ganache"


app = typer.Typer(no_args_is_help=True, help="A local development network.")


@app.command("up")
def devnet_up_cmd(
    ctx: typer.Context,
    proxies: Annotated[int, typer.Option(help="number of proxy processes (N)")] = 3,
    threshold: Annotated[int, typer.Option(help="M of N")] = 2,
    store: Annotated[
        str, typer.Option(help="blob store: 'local' (embedded) or 'ipfs' (a js-ipfs daemon)")
    ] = "local",
    node: Annotated[
        _Node | None,
        typer.Option(
            help="chain node (default: the one the devnet's state was made with; anvil for a "
            "new devnet)",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Start a chain node (anvil or ganache, persisted state), the contracts, the proxies,
    a store, demo profiles."""
    from emrshare.devnet import DEVNET_PASSWORD, devnet_up

    as_json = want_json(ctx, json_out)
    # Under --json the progress lines go to stderr and stdout holds one JSON object.
    progress = functools.partial(_progress, console=err if as_json else out)
    status = devnet_up(
        state(ctx).data_dir,
        proxies=proxies,
        threshold=threshold,
        store=store,
        node=None if node is None else node.value,
        log=progress,
    )
    if as_json:
        with contextlib.suppress(BrokenPipeError, SystemExit):
            emit_json(render.devnet_json(status))
        return
    progress(
        f"devnet up: {status.node} chain {status.chain_id} at block {status.block}; profiles "
        f"{', '.join(status.profiles)} (password: $EMRSHARE_PASSWORD or {DEVNET_PASSWORD!r})"
    )


def _progress(line: str, *, console: Console) -> None:
    """Print a progress line of ``devnet up``; a reader that closed the pipe (``devnet up |
    head -1``) stops the output, never the devnet. (On a broken pipe rich points stdout
    at /dev/null and raises SystemExit, which would otherwise roll the devnet back.)"""
    with contextlib.suppress(BrokenPipeError, SystemExit):
        console.print(line, markup=False)


@app.command("down")
def devnet_down_cmd(
    ctx: typer.Context,
    wipe: Annotated[bool, typer.Option(help="also delete the chain state")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Stop every devnet process (state is kept unless --wipe)."""
    from emrshare.devnet import devnet_down

    stopped = devnet_down(state(ctx).data_dir, wipe=wipe)
    if want_json(ctx, json_out):
        emit_json({"stopped": stopped, "wiped": wipe})
    else:
        out.print(f"stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")


@app.command("status")
def devnet_status_cmd(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Which devnet processes run and answer."""
    from emrshare.devnet import devnet_status

    status = devnet_status(state(ctx).data_dir)
    if want_json(ctx, json_out):
        emit_json(render.devnet_json(status))
    else:
        view = render.PROCESSES
        title = f"{view.title} ({'running' if status.running else 'not running'})"
        table(title, view.columns, [view.row(p) for p in status.processes])
        if status.block is not None:
            out.print(f"{status.node} chain {status.chain_id}, block {status.block}")
    if not status.running:
        raise typer.Exit(1)
