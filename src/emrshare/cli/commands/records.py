"""``record add|import|list|get`` and ``audit``: a patient's records and who read them."""

from __future__ import annotations

import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from emrshare._ids import short_hex
from emrshare.cli import _render as render
from emrshare.cli._context import (
    JsonOpt,
    _fail,
    count_bar,
    emit_json,
    err,
    known_names,
    out,
    progress_bar,
    safe,
    state,
    want_json,
)
from emrshare.cli._parse import output_file
from emrshare.cli.commands.grants import (
    CategoryOpt,
    FhirOpt,
    FhirVersionOpt,
    NewCategoryOpt,
    OutOpt,
    emit_fhir,
    fhir_version,
)

if TYPE_CHECKING:
    from emrshare.roles import Patient, Provider, RecordInfo
    from emrshare.types import Address, RecordId

app = typer.Typer(no_args_is_help=True, help="Add, list and read records.")

PatientOpt = Annotated[str | None, typer.Option(help="patient address or profile (members only)")]
MediaTypeOpt = Annotated[
    str | None, typer.Option(help="MIME type (default: from the file name, by mimetypes)")
]
AgainOpt = Annotated[
    bool, typer.Option("--again", help="write a copy even if this content was already added")
]


@app.command("add")
def record_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    category: CategoryOpt,
    patient: PatientOpt = None,
    media_type: MediaTypeOpt = None,
    again: AgainOpt = False,
    new_category: NewCategoryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Encrypt, store and index one record (journaled: exactly once, resumable).

    The same file again (same content, patient and category) is not written twice: an
    interrupted write of it is finished, a finished one reported; --again adds a copy.
    """
    from emrshare.categories import normalize_category

    st = state(ctx)
    size = file.stat().st_size
    kind = _media_type(file, media_type)
    seen: dict[str, Any] = {}

    with progress_bar(f"adding {file.name}", size, size >= 1 << 20 and not st.json) as bar:

        def on_stage(stage: str, rid: RecordId) -> None:
            seen.setdefault("how", stage)
            seen["rid"] = rid
            bar.stage(stage)

        options: dict[str, Any] = {
            "media_type": kind,
            "progress": lambda d, t: bar(d),
            "again": again,
            "on_stage": on_stage,
        }

        def own(p: Patient) -> tuple[RecordId, str]:
            rid = p.add_record(category, file, new_category=new_category, **options)
            return rid, normalize_category(category, known=p.categories(), new_category=True)

        def theirs(p: Provider, who: Address) -> tuple[RecordId, str]:
            rid = p.add_record(who, category, file, **options)
            # the name it went under (`LAB` is lab-results), as the library resolved it
            return rid, normalize_category(category, known=p.writable_categories(who))

        try:
            rid, category = st.on_records(patient, own, theirs)
        except KeyboardInterrupt:
            _interrupted(file, seen.get("rid"), want_json(ctx, json_out))
    how = {"existing": "existing", "resumed": "resumed"}.get(seen.get("how", ""), "added")
    if want_json(ctx, json_out):
        emit_json(
            {
                "record_id": render.hex_id(rid),
                "category": category,
                "size": size,
                "media_type": kind,
                "status": how,
            }
        )
    elif how == "existing":
        out.print(
            f"{file.name} was already added as record {render.hex_id(rid)} ({category}); "
            "nothing written (--again adds another copy)"
        )
    elif how == "resumed":
        out.print(
            f"finished the interrupted write of {file.name}: record {render.hex_id(rid)} "
            f"({category}, {size} bytes)"
        )
    else:
        out.print(f"added record {render.hex_id(rid)} ({category}, {size} bytes)")


def _media_type(file: Path, given: str | None) -> str:
    """``--media-type``, else the type ``mimetypes`` knows for the file name."""
    return given or mimetypes.guess_type(file.name)[0] or "application/octet-stream"


def _interrupted(file: Path, rid: RecordId | None, as_json: bool) -> NoReturn:
    """Ctrl-C during ``record add``: what was kept and how to resume; exit 130."""
    if rid is None:
        _stop(
            f"interrupted as the write of {file.name} began",
            "re-run the same command (it finishes a journaled write, never writes a copy)",
            as_json,
        )
    _stop(
        f"interrupted: the write of {file.name} is journaled as {short_hex(bytes(rid))}",
        "run 'emrshare recover' to finish it, or re-run the same command",
        as_json,
        render.hex_id(rid),
    )


def _stop(message: str, hint: str, as_json: bool, record_id: str | None = None) -> NoReturn:
    """One line (a JSON error on stderr under --json, with the full record id), exit 130."""
    if as_json:
        body = {"type": "Interrupted", "message": message, "hint": hint, "exit_code": 130}
        if record_id is not None:
            body["record_id"] = record_id
        _fail(message, 130, json_error={"error": body})  # as every JSON error is written
    err.print(safe(f"{message}; {hint}"), markup=False, highlight=False)
    raise typer.Exit(130)


@app.command("import")
def record_import(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            readable=True,
            help="files, or directories whose regular files are imported (sorted by name)",
        ),
    ],
    category: CategoryOpt,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    media_type: MediaTypeOpt = None,
    batch_size: Annotated[int, typer.Option(help="records per append transaction")] = 50,
    again: AgainOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Bulk import: many files of one category, appended in batches (journaled).

    A directory stands for its regular files (not its subdirectories), sorted by name.
    Files already imported (or interrupted) for this patient and category are reported
    (or finished), not written again, unless --again: after Ctrl-C, re-run the same
    command. On a terminal a progress bar counts the records on chain, with their rate
    and the time left.
    """
    st = state(ctx)
    files = _expand(paths)
    # One media type per import: --media-type, else the first file's.
    kind = _media_type(files[0], media_type)
    as_json = want_json(ctx, json_out)
    try:
        with count_bar(f"importing {category}", "rec", not as_json) as progress:
            ids = st.provider().add_records(
                st.profiles.resolve(patient),
                category,
                files,
                media_type=kind,
                batch_size=batch_size,
                again=again,
                progress=progress,
            )
    except KeyboardInterrupt:
        _stop(
            "interrupted: the files begun are journaled",
            "run 'emrshare recover' to finish them, or re-run the same command (files "
            "already in are not written again)",
            as_json,
        )
    if as_json:
        emit_json(
            [
                {"file": str(f), "record_id": render.hex_id(r)}
                for f, r in zip(files, ids, strict=True)
            ]
        )
    else:
        out.print(f"imported {len(ids)} {category} records")


def _expand(paths: list[Path]) -> list[Path]:
    """The files to import: each file given, and each directory's regular files (its
    direct entries, sorted by name); a directory with none is refused."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.is_file())
        if not inside:
            raise typer.BadParameter(
                f"the directory {path} holds no regular file to import", param_hint="PATHS"
            )
        files.extend(inside)
    return files


@app.command("list")
def record_list(
    ctx: typer.Context,
    patient: PatientOpt = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    details: Annotated[
        bool,
        typer.Option(
            help="a member: open the entries through the proxies for type and size "
            "(the patient's audit shows it as a read); --no-details lists ids only"
        ),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """List records: a patient's own, or a patient's records this member was granted.

    A member's list opens the entries of its active grants through the proxies (one
    batched request per proxy and grant) to show type and size; the patient's audit
    trail shows that as a read of those records. ``--no-details`` lists without it.
    """

    def theirs(p: Provider, who: Address) -> list[RecordInfo]:
        return p.records(who, category, open_entries=details)

    recs = state(ctx).on_records(patient, lambda p: p.records(category), theirs)
    render.RECORDS.show(recs, want_json(ctx, json_out))


@app.command("get")
def record_get(
    ctx: typer.Context,
    record_id: Annotated[
        str, typer.Argument(help="record id, or a unique prefix of 8+ hex digits")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            allow_dash=True,
            help="file to write the record to; - for stdout",
        ),
    ],
    patient: PatientOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Read one record, fully verified, into a file (written only once verified) or,
    with ``-o -``, to standard output (written only once verified; messages go to
    standard error)."""
    st = state(ctx)
    to_stdout = str(output) == "-"
    if not to_stdout:
        output_file(output, "-o")

    def own(p: Patient) -> tuple[RecordId, int]:
        rid = p.record_id(record_id)
        if to_stdout:
            return rid, _to_stdout(p.read(rid))
        return rid, p.read_to(rid, output)

    def theirs(p: Provider, who: Address) -> tuple[RecordId, int]:
        rid = p.record_id(who, record_id)
        if to_stdout:
            return rid, _to_stdout(p.read(who, rid))
        return rid, p.read_to(who, rid, output)

    rid, size = st.on_records(patient, own, theirs)
    where = "stdout" if to_stdout else str(output)
    if want_json(ctx, json_out):
        doc = {"record_id": render.hex_id(rid), "output": where, "size": size}
        if to_stdout:  # stdout holds the record: the JSON goes to stderr
            err.print_json(json.dumps(doc), ensure_ascii=True)
        else:
            emit_json(doc)
    else:
        (err if to_stdout else out).print(
            f"wrote {size} bytes of record {render.hex_id(rid)} to {where}", markup=False
        )


@app.command("provenance")
def record_provenance(
    ctx: typer.Context,
    record_id: Annotated[
        str | None, typer.Argument(help="one record (id or unique prefix); default: all")
    ] = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    fhir_version_name: FhirVersionOpt = "R4",
    out_file: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who wrote your records, as a FHIR Bundle of Provenance (patient): one per record,
    with the author and its signature from the verified index entry (docs/fhir.md)."""
    version = fhir_version(fhir_version_name)
    patient = state(ctx).patient()
    emit_fhir(patient.fhir.provenance(version, category=category, record=record_id), out_file)


def _to_stdout(data: bytes) -> int:
    """Write a verified record to standard output, binary-safe (a closed pipe, as in
    ``| head -c 100``, ends the command quietly with exit status 1)."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    return len(data)


#: ``audit --html FILE`` and ``--png FILE``: the reads drawn as a timeline.
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        metavar="FILE",
        dir_okay=False,
        help="write the reads as a timeline and a table to FILE (a standalone HTML page)",
    ),
]
PngOpt = Annotated[
    Path | None,
    typer.Option(
        "--png", metavar="FILE", dir_okay=False, help="write the reads as a timeline to FILE (PNG)"
    ),
]


def audit(
    ctx: typer.Context,
    by_proxy: Annotated[
        bool, typer.Option("--by-proxy", help="one row per proxy's log entry")
    ] = False,
    fhir: FhirOpt = False,
    fhir_version_name: FhirVersionOpt = "R4",
    anomalies: Annotated[
        bool, typer.Option("--anomalies", help="with --fhir: add the entries that fail a check")
    ] = False,
    out_file: OutOpt = None,
    html: HtmlOpt = None,
    png: PngOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The patient's access trail: who read which records, when (from the chain), and
    the steps of the patient's insurance claims.

    Emergency declarations come first, in red, with their logged serves (as
    ``notifications`` shows them); then one row per served read, with the proxies that
    logged it; ``--by-proxy`` shows each proxy's log entry. Refused reads are not logged
    anywhere a patient can read. ``--fhir``: a FHIR Bundle of AuditEvent, one per served
    read (docs/fhir.md); ``--json``: the reads (``notifications --json`` has the
    declarations). ``--html FILE`` and ``--png FILE`` (either or both) write the reads
    as a timeline instead, one lane per reader and one mark per read, coloured by
    category; the HTML page adds a table of the reads and the block they were checked at.
    """
    pictures = {"--html": html, "--png": png}
    if any(pictures.values()) and (fhir or by_proxy):
        raise typer.BadParameter("--html and --png draw the reads: not with --fhir or --by-proxy")
    for name, path in pictures.items():
        if path is not None:
            output_file(path, name)
    if fhir:
        version = fhir_version(fhir_version_name)
        events = state(ctx).patient().fhir.audit_events(version, anomalies=anomalies)
        emit_fhir(events, out_file)
        return
    if anomalies or out_file is not None:
        raise typer.BadParameter("--anomalies and --out go with --fhir")
    patient = state(ctx).patient()
    if html is not None or png is not None:
        _draw_reads(patient, html, png)
        return
    if not want_json(ctx, json_out):
        from emrshare.cli.commands.emergency import show_notices

        declared = patient.emergency.notifications()
        if declared:  # someone opened records without a grant: before everything else
            show_notices(declared, False, patient=True)
    if by_proxy:
        render.ACCESSES.show(patient.audit_by_proxy(), want_json(ctx, json_out))
    else:
        render.READS.show(patient.audit(), want_json(ctx, json_out))
    if not want_json(ctx, json_out):
        _show_claim_steps(patient)


def _draw_reads(patient: Patient, html: Path | None, png: Path | None) -> None:
    """``audit --html/--png``: the timeline of the reads, each file written whole then
    renamed, 0600; one line on stderr for each."""
    from emrshare._files import write_atomically
    from emrshare.portal.charts import timeline_html, timeline_png

    # Read first: the audit reads the chain up to this block or a later one.
    block = patient.network.chain.safe_block()
    reads = patient.audit()
    names = known_names()
    if html is not None:
        try:
            write_atomically(html, timeline_html(reads, names=names, block=block))
        except OSError as exc:
            _fail(f"cannot write {html} ({exc.strerror or exc}); check its permissions")
    if png is not None:
        timeline_png(reads, png, names=names)
    what = f"{len(reads)} read{'s' if len(reads) != 1 else ''}"
    for path in (p for p in (html, png) if p is not None):
        err.print(safe(f"wrote the timeline of {what} to {path}"), markup=False)


def _show_claim_steps(patient: Patient) -> None:
    """The patient's insurance claim steps (filed, consented, adjudicated, settled) after
    the reads: the insurer's reads of a claim's records are among the reads above."""
    steps = patient.claims.history()
    if steps:
        out.print("insurance claims:")
    for s in steps:
        out.print(
            safe(
                f"  block {s.block_number}  claim 0x{s.claim_id.hex()[:12]}  {s.kind} by "
                f"{s.who}: {s.detail}"
            ),
            markup=False,
        )
