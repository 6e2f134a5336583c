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
    purpose: Annotated[str, typer.Option(help="FHIR PurposeOfUse: TREAT, HPAYMT, …")] = "TREAT",
    reason: Annotated[
        str, typer.Option(help="free text, at most 200 bytes; sealed to the patient")
    ] = "",
    json_out: JsonOpt = False,
) -> None:
    """Ask a patient for access to one category."""
    st = state(ctx)
    rid = st.provider().request_access(
        st.profiles.resolve(patient), category, purpose=purpose, reason=reason
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
    from emrshare.cli._parse import parse_duration

    g = state(ctx).patient().approve(request_id, expires=parse_duration(expires), category=category)
    if want_json(ctx, json_out):
        emit_json(render.GRANTS.json(g))
    else:
        out.print(
            f"approved #{request_id}: {g.category} for {g.grantee} until "
            f"{render.when(g.expiry)} (policy {render.hex_id(g.policy_id)})"
        )


@app.command("deny")
def request_deny(ctx: typer.Context, request_id: RequestArg) -> None:
    """Deny a request."""
    state(ctx).patient().deny(request_id)
    out.print(f"denied #{request_id}")
