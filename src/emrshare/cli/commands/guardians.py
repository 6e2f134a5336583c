"""``guardian add|list|withdraw|actions`` (a patient names and withdraws guardians, and sees
what they did) and ``guardian act …`` (a guardian grants, revokes and answers requests in
a patient's name, ``--for PATIENT``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, State, emit_json, out, state, want_json
from emrshare.cli.commands.grants import CategoryOpt, ExpiresOpt
from emrshare.cli.commands.requests import RequestArg

if TYPE_CHECKING:
    from emrshare.roles import Guardian

app = typer.Typer(no_args_is_help=True, help="Guardians: name, list, withdraw; act for a patient.")
act_app = typer.Typer(
    no_args_is_help=True, help="As a guardian: grant, revoke and answer requests for a patient."
)
app.add_typer(act_app, name="act")

GuardianArg = Annotated[str, typer.Argument(help="the guardian's address or profile name")]
ForOpt = Annotated[str, typer.Option("--for", help="the patient's address or profile name")]
RelayOpt = Annotated[
    str | None,
    typer.Option(
        help="relay URL that pays the gas (default: the global --relay, else the network's "
        "relay; 'off': the guardian pays it itself)"
    ),
]


@app.command("add")
def guardian_add(
    ctx: typer.Context,
    guardian: GuardianArg,
    until: ExpiresOpt = "1y",
    category: Annotated[
        list[str] | None,
        typer.Option(help="a category the guardian may act on (repeat; default: all)"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Name a guardian (a registered patient profile) until a date, or renew one."""
    from emrshare.cli._parse import option, parse_expires

    when = option(parse_expires, until, "--until")
    st = state(ctx)
    g = st.patient().guardians.add(st.profiles.resolve(guardian), until=when, categories=category)
    if want_json(ctx, json_out):
        emit_json(render.GUARDIANS.json(g))
    else:
        out.print(f"{g.guardian} is a guardian until {render.when(g.until)}")


@app.command("list")
def guardian_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Guardians this patient named: until when, and whether they act now."""
    render.GUARDIANS.show(state(ctx).patient().guardians.all(), want_json(ctx, json_out))


@app.command("withdraw")
def guardian_withdraw(ctx: typer.Context, guardian: GuardianArg, json_out: JsonOpt = False) -> None:
    """End a guardianship now (its next action reverts)."""
    st = state(ctx)
    who = st.profiles.resolve(guardian)
    st.patient().guardians.withdraw(who)
    if want_json(ctx, json_out):
        emit_json({"guardian": who, "withdrawn": True})
    else:
        out.print(
            f"{who} is no longer a guardian; it keeps what it already read: revoke its grants "
            "(`guardian actions`) and move categories to new epochs if needed"
        )


@app.command("actions")
def guardian_actions(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every grant, revocation and answer a guardian made in this patient's name."""
    render.GUARDIAN_ACTIONS.show(state(ctx).patient().guardians.actions(), want_json(ctx, json_out))


def _guardian(st: State, patient: str, relay: str | None) -> Guardian:
    from emrshare.crypto import PatientKeys
    from emrshare.errors import ConfigurationError
    from emrshare.roles import Guardian

    who = st.profiles.resolve(patient)  # a typo fails before any unlock
    keys = st.keys()
    if not isinstance(keys, PatientKeys):
        raise ConfigurationError(
            f"profile {st.profile_name!r} is a member; a guardian acts with a personal "
            "(patient) profile: use --profile"
        )
    where = st.profile().state_dir / "guardian" / who
    net = st.network()
    chosen = relay or st.relay or net.relay_url  # this option, the global --relay, the network's
    return Guardian(
        net, keys, who, state_dir=where, relay=None if chosen in (None, "off") else chosen
    )


@act_app.command("grant")
def act_grant(
    ctx: typer.Context,
    for_: ForOpt,
    to: Annotated[str, typer.Option("--to", help="grantee address or profile name")],
    category: CategoryOpt,
    expires: ExpiresOpt = "30d",
    threshold: Annotated[int | None, typer.Option(min=1, help="M of the N proxies")] = None,
    relay: RelayOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Grant a member read access to a covered category, in the patient's name."""
    from emrshare.cli._parse import option, parse_expires

    when = option(parse_expires, expires, "--expires")
    st = state(ctx)
    g = _guardian(st, for_, relay).grant(
        st.profiles.resolve(to), category, expires=when, threshold=threshold
    )
    if want_json(ctx, json_out):
        emit_json(render.GRANTS.json(g))
    else:
        out.print(
            f"granted {g.category} of {g.patient} to {g.grantee} until {render.when(g.expiry)}: "
            f"policy {render.hex_id(g.policy_id)}"
        )


@act_app.command("grants")
def act_grants(
    ctx: typer.Context,
    for_: ForOpt,
    active: Annotated[bool, typer.Option(help="only active grants")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The patient's grants (``by``: the guardian that made one)."""
    grants = _guardian(state(ctx), for_, None).grants(active_only=active)
    render.GRANTS.show(grants, want_json(ctx, json_out))


@act_app.command("revoke")
def act_revoke(
    ctx: typer.Context,
    for_: ForOpt,
    policy_id: Annotated[str, typer.Argument(help="0x… policy id (from `guardian act grants`)")],
    relay: RelayOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a grant of the patient's (a plain revocation: no new epoch)."""
    done = _guardian(state(ctx), for_, relay).revoke(policy_id)
    if want_json(ctx, json_out):
        emit_json({"revoked": [render.hex_id(p) for p in done]})
    else:
        out.print("revoked " + ", ".join(render.hex_id(p) for p in done))


@act_app.command("requests")
def act_requests(
    ctx: typer.Context,
    for_: ForOpt,
    pending: Annotated[bool, typer.Option(help="only unanswered requests")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The access requests to the patient, opened."""
    reqs = _guardian(state(ctx), for_, None).requests(pending_only=pending)
    render.REQUESTS.show(reqs, want_json(ctx, json_out))


@act_app.command("approve")
def act_approve(
    ctx: typer.Context,
    for_: ForOpt,
    request_id: RequestArg,
    expires: ExpiresOpt = "30d",
    category: Annotated[
        str | None, typer.Option(help="category name, if the request's is not recognised")
    ] = None,
    relay: RelayOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve a request in the patient's name: grants the covered category."""
    from emrshare.cli._parse import option, parse_expires

    when = option(parse_expires, expires, "--expires")
    g = _guardian(state(ctx), for_, relay).approve(request_id, expires=when, category=category)
    if want_json(ctx, json_out):
        emit_json(render.GRANTS.json(g))
    else:
        out.print(
            f"approved #{request_id}: {g.category} for {g.grantee} until "
            f"{render.when(g.expiry)} (policy {render.hex_id(g.policy_id)})"
        )


@act_app.command("deny")
def act_deny(
    ctx: typer.Context,
    for_: ForOpt,
    request_id: RequestArg,
    relay: RelayOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deny a request in the patient's name."""
    _guardian(state(ctx), for_, relay).deny(request_id)
    if want_json(ctx, json_out):
        emit_json({"request_id": request_id, "decision": "denied"})
    else:
        out.print(f"denied #{request_id}")


@act_app.command("end-emergency")
def act_end_emergency(
    ctx: typer.Context,
    for_: ForOpt,
    declaration: Annotated[int, typer.Argument(metavar="DECLARATION", help="the declaration id")],
    relay: RelayOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """End an emergency declaration early in the patient's name."""
    _guardian(state(ctx), for_, relay).end_emergency(declaration)
    if want_json(ctx, json_out):
        emit_json({"declaration": declaration, "ended": True})
    else:
        out.print(f"ended emergency #{declaration}")
