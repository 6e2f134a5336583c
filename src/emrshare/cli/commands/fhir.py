"""``fhir import|read``: publish what an EHR exported as a patient's records, and read
granted records back as FHIR."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli._context import JsonOpt, emit_json, err, out, progress_bar, safe, state, want_json
from emrshare.cli.commands.grants import OutOpt, emit_fhir

if TYPE_CHECKING:
    from emrshare.fhir import ImportPlan

app = typer.Typer(no_args_is_help=True, help="FHIR in and out: import an EHR export, read it back.")

VersionOpt = Annotated[
    str | None,
    typer.Option("--fhir-version", metavar="VERSION", help="R4, R4B or R5 (default: detected)"),
]


@app.command("import")
def fhir_import(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, metavar="FILE...")
    ],
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    mapping: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="category mapping rules (TOML), tried before the defaults"
        ),
    ] = None,
    fhir_version: VersionOpt = None,
    fhir_patient: Annotated[
        str | None,
        typer.Option(metavar="REF", help="take this FHIR patient's resources (Patient/123) only"),
    ] = None,
    per_encounter: Annotated[
        bool, typer.Option("--per-encounter", help="one record per encounter and category")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="write the valid resources, report the others")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="show the rule that placed each resource")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="plan and check only; write nothing")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import FHIR Bundles, Bulk Data NDJSON (or its manifest) and single resources as the
    patient's records: validated, placed by category, each resource written once however
    often it is imported. Nothing is written if a resource is invalid (unless
    --skip-invalid) or the patient has not authorized every category it needs."""
    from emrshare.cli._parse import load_mapping
    from emrshare.fhir import plan_import

    st = state(ctx)
    plan = plan_import(
        files,
        version=fhir_version,
        mapping=load_mapping(mapping),
        per_encounter=per_encounter,
        on_invalid="skip" if skip_invalid else "stop",
        subject=fhir_patient,
    )
    as_json = want_json(ctx, json_out)
    if explain and not as_json:
        _explain(plan)
    for problem in plan.problems:
        err.print(f"skipped {safe(str(problem))}", markup=False, highlight=False)
    if dry_run:
        if as_json:
            emit_json(_plan_json(plan))
        else:
            out.print(
                f"would write {len(plan.records)} records ({', '.join(plan.categories) or 'none'})"
                f"; {len(plan.skipped)} reference resources skipped, {len(plan.problems)} refused"
            )
        return
    provider = st.provider()
    who = st.profiles.resolve(patient)
    total = len(plan.records)
    with progress_bar("importing", total, total > 20 and not st.json) as bar:
        report = provider.import_fhir(who, plan, progress=lambda done, _: bar(done))
    if as_json:
        emit_json(
            {
                **_plan_json(plan),
                "written": len(report.written),
                "existing": len(report.existing),
                "records": [
                    {
                        "record_id": "0x" + r.record_id.hex(),
                        "category": r.category,
                        "kind": r.kind,
                        "resources": list(r.resources),
                        "status": "existing" if r.existing else "written",
                    }
                    for r in report.imported
                ],
            }
        )
        return
    out.print(
        f"imported {report.resources} resources as {len(report.imported)} records "
        f"({len(report.written)} written, {len(report.existing)} already there) in "
        f"{', '.join(plan.categories) or 'no category'}"
    )


def _explain(plan: ImportPlan) -> None:
    width = max((len(p.reference) for p in plan.placements), default=10)
    for p in plan.placements:
        where = p.category or "(skipped)"
        out.print(f"{safe(p.reference):<{width}}  {where:<16} {safe(p.rule)}", markup=False)


def _plan_json(plan: ImportPlan) -> dict[str, Any]:
    return {
        "fhir_version": plan.version.label,
        "categories": plan.categories,
        "planned_records": len(plan.records),
        "placements": [
            {"resource": p.reference, "category": p.category, "rule": p.rule}
            for p in plan.placements
        ],
        "problems": [dataclasses.asdict(p) for p in plan.problems],
    }


@app.command("read")
def fhir_read(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    category: Annotated[
        str | None, typer.Option(help="only this category (an alias such as lab too)")
    ] = None,
    types: Annotated[
        str | None,
        typer.Option("--type", metavar="TYPES", help="only these resource types, e.g. Observation"),
    ] = None,
    encounter: Annotated[
        str | None, typer.Option(metavar="REF", help="only this encounter's (Encounter/e1)")
    ] = None,
    inline: Annotated[
        bool, typer.Option("--inline-attachments", help="put attachment data back inline")
    ] = False,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="every record of a resource, not the last")
    ] = False,
    out_file: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Read the granted records of a patient back as FHIR: a searchset Bundle of every
    resource (each record opened and checked as `record get` does; logged as reads). The
    output is JSON with or without --json."""
    from emrshare.cli._parse import parse_list

    st = state(ctx)
    resources = st.provider().read_fhir(
        st.profiles.resolve(patient),
        category=category,
        resource_types=parse_list(types) or None,
        encounter=encounter,
        attachments="inline" if inline else "reference",
        versions="all" if all_versions else "latest",
    )
    from emrshare.fhir import bundle

    found = [json.loads(r.model_dump_json(exclude_none=True)) for r in resources]
    emit_fhir(bundle(found, "searchset"), out_file)
