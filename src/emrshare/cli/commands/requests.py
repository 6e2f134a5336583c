"""``request add|list|approve|deny``: a member asks a patient for access; the patient
answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, out, state, want_json
from emrshare.cli.commands.grants import ExpiresOpt

app = typer.Typer(no_args_is_help=True, help="Ask for access, and answer requests.")

RequestArg = Annotated[int, typer.Argument(help="request number")]


@app.command("add")
def request_add(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    category: Annotated[
        str | None,
        typer.Option(help="category: lab-results, imaging, … (aliases such as lab too)"),
    ] = None,
    fhir_types: Annotated[
        str | None,
        typer.Option(
            metavar="TYPES",
            help="instead of --category: FHIR resource types, e.g. Observation,DiagnosticReport",
        ),
    ] = None,
    fhir_category: Annotated[
        str | None,
        typer.Option(metavar="CODES", help="with --fhir-types: category codes, e.g. laboratory"),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="with --fhir-types: the importer's mapping (TOML)"),
    ] = None,
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
    """Ask a patient for access to one category, or to what FHIR names (--fhir-types):
    one sealed request per category the types map to."""
    from emrshare.cli._parse import load_mapping, option, parse_list, parse_purpose

    code = option(parse_purpose, purpose, "--purpose")
    st = state(ctx)
    if (category is None) == (fhir_types is None):
        raise typer.BadParameter("give --category or --fhir-types (one of them)")
    if fhir_types is not None:
        found = st.provider().request_fhir_access(
            st.profiles.resolve(patient),
            parse_list(fhir_types),
            parse_list(fhir_category),
            purpose=code,
            reason=reason,
            mapping=load_mapping(mapping),
        )
        if want_json(ctx, json_out):
            emit_json({"requests": found})
        else:
            for cat, rid in found.items():
                out.print(f"request #{rid} sent ({cat})")
        return
    if fhir_category is not None or mapping is not None:
        raise typer.BadParameter("--fhir-category and --mapping go with --fhir-types")
    rid = st.provider().request_access(
        st.profiles.resolve(patient),
        category or "",
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
