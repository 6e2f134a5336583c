"""``record add|import|list|get`` and ``audit``: a patient's records and who read them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, out, progress_bar, state, want_json
from emrshare.cli.commands.grants import CategoryOpt, NewCategoryOpt

if TYPE_CHECKING:
    from emrshare.roles import Patient, Provider, RecordInfo
    from emrshare.types import Address, RecordId

app = typer.Typer(no_args_is_help=True, help="Add, list and read records.")

PatientOpt = Annotated[str | None, typer.Option(help="patient address or profile (members only)")]
MediaTypeOpt = Annotated[str, typer.Option(help="MIME type")]


@app.command("add")
def record_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    category: CategoryOpt,
    patient: PatientOpt = None,
    media_type: MediaTypeOpt = "application/octet-stream",
    new_category: NewCategoryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Encrypt, store and index one record (journaled: exactly once, resumable)."""
    st = state(ctx)
    size = file.stat().st_size
    with progress_bar(f"adding {file.name}", size, size >= 1 << 20 and not st.json) as advance:

        def own(p: Patient) -> RecordId:
            return p.add_record(
                category,
                file,
                media_type=media_type,
                new_category=new_category,
                progress=lambda d, t: advance(d),
            )

        def theirs(p: Provider, who: Address) -> RecordId:
            return p.add_record(
                who, category, file, media_type=media_type, progress=lambda d, t: advance(d)
            )

        rid = st.on_records(patient, own, theirs)
    if want_json(ctx, json_out):
        emit_json({"record_id": render.hex_id(rid), "category": category, "size": size})
    else:
        out.print(f"added record {render.hex_id(rid)} ({category}, {size} bytes)")


@app.command("import")
def record_import(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    category: CategoryOpt,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    media_type: MediaTypeOpt = "application/octet-stream",
    batch_size: Annotated[int, typer.Option(help="records per append transaction")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Bulk import: many files of one category, appended in batches (journaled)."""
    st = state(ctx)
    ids = st.provider().add_records(
        st.profiles.resolve(patient), category, files, media_type=media_type, batch_size=batch_size
    )
    if want_json(ctx, json_out):
        emit_json(
            [
                {"file": str(f), "record_id": render.hex_id(r)}
                for f, r in zip(files, ids, strict=True)
            ]
        )
    else:
        out.print(f"imported {len(ids)} {category} records")


@app.command("list")
def record_list(
    ctx: typer.Context,
    patient: PatientOpt = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List records: a patient's own, or a patient's records this member was granted."""

    def theirs(p: Provider, who: Address) -> list[RecordInfo]:
        return p.records(who, category)

    recs = state(ctx).on_records(patient, lambda p: p.records(category), theirs)
    render.RECORDS.show(recs, want_json(ctx, json_out))


@app.command("get")
def record_get(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="0x… record id")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", dir_okay=False, help="where to write the record"),
    ],
    patient: PatientOpt = None,
) -> None:
    """Read one record, fully verified, into a file (written only once verified)."""
    st = state(ctx)
    if not output.parent.is_dir():
        raise typer.BadParameter(
            f"the directory {output.parent} does not exist; create it first", param_hint="-o"
        )
    size = st.on_records(
        patient,
        lambda p: p.read_to(record_id, output),
        lambda p, who: p.read_to(who, record_id, output),
    )
    if st.json:
        emit_json({"record_id": record_id, "output": str(output), "size": size})
    else:
        out.print(f"wrote {size} bytes to {output}")


def audit(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The patient's access trail: who read which records, when (from the chain)."""
    render.ACCESSES.show(state(ctx).patient().audit(), want_json(ctx, json_out))
