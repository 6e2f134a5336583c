"""``grant add|list|revoke`` and ``writer add|remove|list``: who may read and who may
write a patient's categories."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, err, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.fhir import FhirVersion

app = typer.Typer(no_args_is_help=True, help="Grant, list and revoke access (patient).")
writer_app = typer.Typer(no_args_is_help=True, help="Who may write a category (patient).")

#: How long a grant lasts (``grant add``, ``request approve``).
ExpiresOpt = Annotated[
    str,
    typer.Option(
        metavar="WHEN",
        help="how long or until when: 30d, 12h, 2w, 18mo, 1y, '30 days', or a date "
        "(2027-01-01: the end of that day, UTC) or time (2027-01-01T12:00Z)",
    ),
]
CategoryOpt = Annotated[
    str, typer.Option(help="category: lab-results, imaging, … (aliases such as lab too)")
]
#: Create a category outside the vocabulary (``emrshare.categories``) not yet used.
NewCategoryOpt = Annotated[
    bool, typer.Option("--new-category", help="create a new custom category (a slug: my-notes)")
]
WriterArg = Annotated[str, typer.Argument(help="provider address or profile name")]
#: ``--fhir``, ``--fhir-version`` and ``--out`` of the FHIR exports (grants, audit, provenance).
FhirOpt = Annotated[bool, typer.Option("--fhir", help="print a FHIR Bundle (JSON) instead")]
FhirVersionOpt = Annotated[
    str,
    typer.Option("--fhir-version", metavar="R4|R5", help="with --fhir: the Bundle's FHIR version"),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", metavar="FILE", dir_okay=False, help="write the FHIR Bundle to FILE, not stdout"
    ),
]


def fhir_version(name: str) -> FhirVersion:
    """``--fhir-version``: R4 or R5 (R4B exports as R4: the same resources)."""
    from emrshare.cli._parse import option
    from emrshare.fhir import FhirVersion

    return option(FhirVersion.parse, name, "--fhir-version")


def emit_fhir(doc: dict[str, Any], to: Path | None) -> None:
    """A FHIR Bundle as JSON on stdout, or into ``to`` (written whole, then renamed)."""
    if to is None:
        emit_json(doc)
        return
    import json

    from emrshare._files import write_atomically
    from emrshare.cli._parse import output_file

    write_atomically(output_file(to, "--out"), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    err.print(f"wrote {len(doc.get('entry', []))} resources to {to}", markup=False)


@app.command("add")
def grant_add(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="grantee address or profile name")],
    category: CategoryOpt,
    expires: ExpiresOpt = "30d",
    threshold: Annotated[int | None, typer.Option(min=1, help="M of the N proxies")] = None,
    new_category: NewCategoryOpt = False,
    record: Annotated[
        list[str] | None,
        typer.Option(
            "--record",
            metavar="RECORD",
            help="grant only this record of the category (an id or a unique prefix); repeat",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Grant a member read access to one category (or some of its records) until it
    expires."""
    from emrshare.cli._parse import option, parse_expires

    when = option(parse_expires, expires, "--expires")
    st = state(ctx)
    g = st.patient().grant(
        st.profiles.resolve(to),
        category,
        expires=when,
        threshold=threshold,
        new_category=new_category,
        records=record or None,
    )
    if want_json(ctx, json_out):
        emit_json(render.GRANTS.json(g))
    else:
        what = f"{len(g.records)} {g.category} record(s)" if g.records else g.category
        out.print(
            f"granted {what} to {g.grantee} until {render.when(g.expiry)}: "
            f"policy {render.hex_id(g.policy_id)}"
        )


@app.command("list")
def grant_list(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option(help="only active grants")] = False,
    fhir: FhirOpt = False,
    fhir_version_name: FhirVersionOpt = "R4",
    json_out: JsonOpt = False,
) -> None:
    """List grants: those a patient made, or those made to this member.

    ``--fhir`` (a patient): a FHIR Bundle of Consent, one per grant (docs/fhir.md).
    """
    from emrshare.cli.commands.rotate import refresh_rotated

    quiet = want_json(ctx, json_out)
    if fhir:  # what refresh_rotated says goes to stderr: stdout holds the Bundle
        version = fhir_version(fhir_version_name)
        patient = state(ctx).patient()
        refresh_rotated(patient, quiet=quiet)
        emit_fhir(patient.fhir.consents(version, active_only=active), None)
        return
    grants = state(ctx).by_kind(
        # A patient's client first follows members that rotated their keys (re-issues).
        lambda p: (refresh_rotated(p, quiet=quiet), p.grants(active_only=active))[1],
        lambda p: p.grants(active_only=active),
    )
    render.GRANTS.show(grants, want_json(ctx, json_out))


@app.command("revoke")
def grant_revoke(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(help="0x… policy id (from `grant list`)")],
    keep_epoch: Annotated[
        bool, typer.Option(help="do not move the category to a new epoch")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a grant; by default the category moves to a new epoch (new key)."""
    state(ctx).patient().revoke(policy_id, new_epoch=not keep_epoch)
    if want_json(ctx, json_out):
        emit_json({"revoked": policy_id, "new_epoch": not keep_epoch})
    else:
        out.print(f"revoked {policy_id}")


@writer_app.command("add")
def writer_add(
    ctx: typer.Context,
    writer: WriterArg,
    category: CategoryOpt,
    new_category: NewCategoryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Let a provider append records of a category to your index."""
    from emrshare.categories import normalize_category

    st = state(ctx)
    address = st.profiles.resolve(writer)
    patient = st.patient()
    patient.authorize_writer(address, category, new_category=new_category)
    name = normalize_category(category, known=patient.categories(), new_category=True)
    if want_json(ctx, json_out):
        emit_json({"writer": address, "category": name, "authorized": True})
    else:
        out.print(f"{address} may now write {name} records")


@writer_app.command("remove")
def writer_remove(
    ctx: typer.Context, writer: WriterArg, category: CategoryOpt, json_out: JsonOpt = False
) -> None:
    """Stop a provider from writing a category."""
    st = state(ctx)
    address = st.profiles.resolve(writer)
    st.patient().deauthorize_writer(address, category)
    if want_json(ctx, json_out):
        emit_json({"writer": address, "category": category, "authorized": False})
    else:
        out.print(f"{address} may no longer write {category} records")


@writer_app.command("list")
def writer_list(ctx: typer.Context, category: CategoryOpt, json_out: JsonOpt = False) -> None:
    """Providers allowed to write a category."""
    writers = state(ctx).patient().writers(category)
    if want_json(ctx, json_out):
        emit_json(writers)
    else:
        for w in writers:
            out.print(safe(w), markup=False)
