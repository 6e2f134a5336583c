"""``request add|list|approve|deny``: a member asks a patient for access; the patient
answers."""

from __future__ import annotations

from typing import Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, out, state, want_json
from emrshare.cli.commands.grants import CategoryOpt, ExpiresOpt

app = typer.Typer(no_args_is_help=True, help="Ask for access, and answer requests.")

RequestArg = Annotated[int, typer.Argument(help="request number")]


@app.command("add")
def request_add(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    category: CategoryOpt,
    purpose: Annotated[
        str,
        typer.Option(metavar="CODE", help="FHIR PurposeOfUse, any case: TREAT, HPAYMT, HRESCH, …"),
    ] = "TREAT",
    reason: Annotated[
        str, typer.Option(help="free text, at most 200 bytes; sealed to the patient")
    ] = "",
    new_category: Annotated[
        bool, typer.Option("--new-category", help="ask for a custom category of the patient's")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Ask a patient for access to one category."""
    from emrshare.cli._parse import option, parse_purpose

    code = option(parse_purpose, purpose, "--purpose")
    st = state(ctx)
    rid = st.provider().request_access(
        st.profiles.resolve(patient),
        category,
        purpose=code,
        reason=reason,
        new_category=new_category,
    )
    if want_json(ctx, json_out):
        emit_json({"request_id": rid})
    else:
        out.print(f"request #{rid} sent")


@app.command("list")
def request_list(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option(help="only unanswered requests")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List requests: those addressed to a patient, or those this member made."""
    reqs = state(ctx).by_kind(
        lambda p: p.requests(pending_only=pending),
        lambda p: [
            r for r in p.my_requests() if not pending or render.label(r.status) == "pending"
        ],
    )
    render.REQUESTS.show(reqs, want_json(ctx, json_out))


@app.command("approve")
def request_approve(
    ctx: typer.Context,
    request_id: RequestArg,
    expires: ExpiresOpt = "30d",
    category: Annotated[
        str | None, typer.Option(help="category name, if the request's is not recognised")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve a request: grants the category to the requester."""
    from emrshare.cli._parse import option, parse_expires

    when = option(parse_expires, expires, "--expires")
    g = state(ctx).patient().approve(request_id, expires=when, category=category)
    if want_json(ctx, json_out):
        emit_json(render.GRANTS.json(g))
    else:
        out.print(
            f"approved #{request_id}: {g.category} for {g.grantee} until "
            f"{render.when(g.expiry)} (policy {render.hex_id(g.policy_id)})"
        )


@app.command("deny")
def request_deny(ctx: typer.Context, request_id: RequestArg, json_out: JsonOpt = False) -> None:
    """Deny a request."""
    state(ctx).patient().deny(request_id)
    if want_json(ctx, json_out):
        emit_json({"request_id": request_id, "decision": "denied"})
    else:
        out.print(f"denied #{request_id}")
