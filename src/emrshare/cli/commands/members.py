"""``member add|list|suspend|approve|verify-report|capabilities``: consortium membership."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, State, emit_json, err, out, state, want_json

if TYPE_CHECKING:
    from emrshare.roles import ConsortiumAdmin

app = typer.Typer(no_args_is_help=True, help="Consortium membership.")


def _admin(st: State) -> ConsortiumAdmin:
    from emrshare.roles import ConsortiumAdmin

    return ConsortiumAdmin(st.network(), st.keys().ethereum_key)


@app.command("add")
def member_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="profile to create (or reuse) for the member")],
    role: Annotated[
        str,
        typer.Option(
            help="provider, insurer, pharmacy, regulator, proxy, manufacturer, distributor"
        ),
    ] = "provider",
    endpoint: Annotated[str, typer.Option(help="base URL (proxies only)")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Admit a member (admin; devnet): creates its profile, publishes its keys, admits it.

    Run as the admin profile (``--profile admin`` on a devnet).
    """
    from emrshare.cli._parse import parse_role
    from emrshare.devnet import fund_account
    from emrshare.roles.onboard import onboard_member

    st = state(ctx)
    parsed = parse_role(role)
    admin_key = st.keys().ethereum_key
    net = st.network()
    done = onboard_member(
        net,
        admin_key,
        st.profiles,
        name,
        parsed,
        st.password(),
        endpoint=endpoint,
        # A new member needs gas to publish its keys: the devnet admin funds it.
        fund=functools.partial(fund_account, net, admin_key),
        fast_kdf=True,
    )
    if want_json(ctx, json_out):
        info = {"name": name, "address": done.address, "role": render.label(done.role)}
        # A new profile's mnemonic is shown once: in the JSON, for a script to back up.
        emit_json(info if done.mnemonic is None else {**info, "mnemonic": done.mnemonic})
        return
    if done.mnemonic is not None:
        err.print(f"created member profile {name} ({done.address}); its mnemonic:")
        err.print(f"  {done.mnemonic}", markup=False)
    out.print(f"admitted {name} ({done.address}) as {render.label(done.role)}")


@app.command("list")
def member_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Consortium members and their roles."""
    members = state(ctx).network().contracts.registry.all_members()
    render.MEMBERS.show(members, want_json(ctx, json_out))


@app.command("suspend")
def member_suspend(
    ctx: typer.Context,
    proxy: Annotated[str, typer.Argument(help="the reported proxy's address")],
    report: Annotated[int, typer.Option("--report", help="the proxy report id to act on")],
    json_out: JsonOpt = False,
) -> None:
    """Propose suspending a proxy on a report (admin): its evidence is verified here first."""
    st = state(ctx)
    pid = _admin(st).suspend(proxy, report)
    suspended = st.network().contracts.registry.member(proxy).suspended_at != 0
    if want_json(ctx, json_out):
        emit_json({"proposal": pid, "suspended": suspended})
        return
    done = "suspended" if suspended else "proposed; other admins run `member approve`"
    out.print(f"report {report} verified; proposal {pid}: {proxy} {done}")


@app.command("approve")
def member_approve(
    ctx: typer.Context,
    proposal: Annotated[int, typer.Argument(help="the proposal id")],
    json_out: JsonOpt = False,
) -> None:
    """Approve a registry proposal (admin); a suspension's evidence is verified here first."""
    st = state(ctx)
    _admin(st).approve(proposal)
    executed = st.network().contracts.registry.proposal(proposal).executed
    if want_json(ctx, json_out):
        emit_json({"proposal": proposal, "executed": executed})
        return
    out.print(f"approved proposal {proposal}" + (" (executed)" if executed else ""))


@app.command("verify-report")
def member_verify_report(
    ctx: typer.Context,
    report: Annotated[int, typer.Argument(help="the proxy report id")],
    json_out: JsonOpt = False,
) -> None:
    """Check a proxy report against the chain (anyone): does its evidence prove misbehaviour?"""
    v = _admin(state(ctx)).verify_report(report)
    if want_json(ctx, json_out):
        emit_json(
            {"report": report, "proxy": v.proxy, "evidence_hash": render.hex_id(v.evidence_hash)}
        )
        return
    out.print(f"report {report} proves that {v.proxy} signed a capsule fragment that fails")


@app.command("capabilities")
def member_capabilities(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="the member's address or profile name")],
    set_: Annotated[
        str,
        typer.Option(
            "--set",
            metavar="CAPS",
            help="comma-separated: emergency, pharmacy, or none to withdraw all",
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Propose a member's capabilities (admin; M-of-N like any proposal)."""
    from emrshare.cli._parse import parse_capabilities

    st = state(ctx)
    caps = parse_capabilities(set_)
    address = st.profiles.resolve(address)
    pid = _admin(st).set_capabilities(address, caps)
    now = st.network().contracts.registry.member(address).capabilities
    names = [c.name.lower() for c in type(caps) if c.name and c & now]
    if want_json(ctx, json_out):
        emit_json({"proposal": pid, "executed": now == caps, "capabilities": names})
        return
    if pid < 0:
        out.print(f"{address} already has capabilities: {', '.join(names) or 'none'}")
        return
    done = "executed" if now == caps else "proposed; other admins run `member approve`"
    out.print(f"proposal {pid}: capabilities of {address} {done} ({', '.join(names) or 'none'})")
