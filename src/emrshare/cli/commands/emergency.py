"""``emergency opt-in|withdraw|declare|read|list|end|review`` and ``notifications``: break-glass
access (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, err, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.roles._emergency import EmergencyNotice

app = typer.Typer(no_args_is_help=True, help="Emergency (break-glass) access.")

DeclarationArg = Annotated[int, typer.Argument(help="declaration number")]


def _json(n: EmergencyNotice) -> dict[str, Any]:
    return {
        "declaration": n.declaration_id,
        "patient": n.patient,
        "clinician": n.clinician,
        "cosigner": n.cosigner,
        "reason_code": n.reason_code,
        "purpose_of_use": n.purpose_of_use,
        "block": n.block_number,
        "ends_at": n.ends_at,
        "status": n.status.name.lower(),
        "review": n.review.name.lower(),
        "justification": n.justification,
        "accesses": [
            {
                "proxy": a.proxy,
                "block": a.block_number,
                "at": a.timestamp,
                "records": a.records,
                "category": a.category,
            }
            for a in n.accesses
        ],
    }


def show_notices(
    notices: list[EmergencyNotice], as_json: bool, *, patient: bool, own: bool = False
) -> None:
    """Emergency declarations, in red, each with the serves logged under it (``notifications``,
    ``audit``, ``emergency list|review``); the justification is the clinician's text, so it
    is printed through ``safe``."""
    if as_json:
        emit_json([_json(n) for n in notices])
        return
    if not notices:
        out.print("no emergency declarations")
        return
    for n in notices:
        who = n.clinician if patient else f"{n.clinician} for patient {n.patient}"
        why = n.justification if n.justification is not None else "(justification did not open)"
        if own:
            why = "justification sealed to the patient and the regulator"
        # Declarations come first and in red: someone opened records without a grant.
        out.print(
            f"EMERGENCY #{n.declaration_id} by {who} (hospital member {n.clinician}), "
            f"block {n.block_number}, until {render.when(n.ends_at)}, "
            f"{safe(n.purpose_of_use)}, {n.status.name.lower()}, review "
            f"{n.review.name.lower()}: {safe(why)}",
            style="bold red",
            markup=False,
        )
        for a in n.accesses:
            out.print(
                f"  read by {n.clinician} through proxy {a.proxy} at {render.when(a.timestamp)}"
                f" (block {a.block_number}): {a.records} record(s)"
                + (f" of {a.category}" if a.category else ""),
                style="red",
                markup=False,
            )


@app.command("opt-in")
def emergency_opt_in(
    ctx: typer.Context,
    categories: Annotated[
        str, typer.Option(metavar="CATEGORIES", help="comma-separated, e.g. allergies,medications")
    ],
    window: Annotated[
        str, typer.Option(metavar="DURATION", help="how long a declaration stays open, e.g. 24h")
    ] = "24h",
    json_out: JsonOpt = False,
) -> None:
    """Opt in to emergency access (the patient): which categories, for how long."""
    from emrshare.cli._parse import option, parse_duration, parse_list

    span = option(parse_duration, window, "--window")
    cats = parse_list(categories)
    generation = state(ctx).patient().emergency.opt_in(cats, span)
    if want_json(ctx, json_out):
        emit_json({"generation": generation, "categories": cats, "window_s": span.total_seconds()})
    else:
        out.print(f"emergency opt-in {generation}: {', '.join(cats)} for {window} per declaration")


@app.command("declare")
def emergency_declare(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    why: Annotated[
        str, typer.Option(metavar="TEXT", help="justification, sealed to patient and regulator")
    ],
    reason_code: Annotated[int, typer.Option(metavar="N", help="reason code 0..255")] = 1,
    cosigner: Annotated[
        str | None,
        typer.Option(metavar="ADDR", help="the co-signing clinician (with --cosignature)"),
    ] = None,
    cosignature: Annotated[
        str | None,
        typer.Option(metavar="HEX", help="its co-signature, from `emergency cosign`"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Declare an emergency for a patient (a Provider with the EMERGENCY capability)."""
    from emrshare.errors import InvalidInput
    from emrshare.roles import Cosignature

    st = state(ctx)
    cosig = None
    if (cosigner is None) != (cosignature is None):
        raise InvalidInput("pass --cosigner and --cosignature together (or neither)")
    if cosignature is not None and cosigner is not None:
        cosig = Cosignature.from_hex(cosignature)
        if cosig.cosigner.lower() != st.profiles.resolve(cosigner).lower():
            raise InvalidInput(
                f"the co-signature was made by {cosig.cosigner}, not by {cosigner}; "
                "check --cosigner"
            )
    did = st.provider().emergency.declare(
        st.profiles.resolve(patient), reason_code, why, cosignature=cosig
    )
    if want_json(ctx, json_out):
        emit_json({"declaration": did})
    else:
        out.print(f"emergency #{did} declared; the patient and the regulator are notified")


@app.command("cosign")
def emergency_cosign(
    ctx: typer.Context,
    clinician: Annotated[str, typer.Option(metavar="ADDR", help="the declaring clinician")],
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    reason_code: Annotated[int, typer.Option(metavar="N", help="reason code 0..255")] = 1,
    valid_for: Annotated[
        str, typer.Option(metavar="DURATION", help="how long it is valid, at most 15m")
    ] = "10m",
    json_out: JsonOpt = False,
) -> None:
    """Co-sign another clinician's emergency declaration (a second EMERGENCY Provider)."""
    from emrshare.cli._parse import option, parse_duration

    st = state(ctx)
    span = option(parse_duration, valid_for, "--valid-for")
    c = st.provider().emergency.cosign(
        st.profiles.resolve(clinician), st.profiles.resolve(patient), reason_code, valid_for=span
    )
    if want_json(ctx, json_out):
        emit_json({"cosigner": c.cosigner, "deadline": c.deadline, "cosignature": c.hex()})
    else:
        out.print(
            f"co-signature by {c.cosigner}, valid until {render.when(c.deadline)}, once; "
            f"give it to {c.clinician}:",
            markup=False,
        )
        out.print(c.hex(), markup=False)


def _clinician(ctx: typer.Context) -> Any:
    """The member facade, with the emergency key file of its data dir (where its
    hospital's emergency service, or the devnet, put it)."""
    from emrshare.roles import EMERGENCY_KEY_FILE

    member = state(ctx).provider()
    if member.emergency.key_file is None:
        member.emergency.key_file = member.state_dir / EMERGENCY_KEY_FILE
    return member


_SUFFIX = {"text/plain": ".txt", "application/json": ".json", "application/fhir+json": ".json"}


@app.command("read")
def emergency_read(
    ctx: typer.Context,
    declaration: DeclarationArg,
    category: Annotated[str, typer.Argument(help="an opted-in category, e.g. allergies")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="write each record into DIR"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read a category of the patient of your active declaration (each serve is logged)."""
    from emrshare._files import private_dir, write_atomically

    records = _clinician(ctx).emergency.read(declaration, category)
    if records.warning is not None:  # on stderr, so --json output stays a list
        err.print(f"[yellow]warning:[/] {records.warning}", highlight=False)
    paths: dict[str, str] = {}
    if out_dir is not None:
        private_dir(out_dir)
        for r in records:
            path = out_dir / (r.record_id[2:] + _SUFFIX.get(r.media_type, ".bin"))
            write_atomically(path, r.content)
            paths[r.record_id] = str(path)
    if want_json(ctx, json_out):
        emit_json(
            [
                {
                    "record": r.record_id,
                    "category": r.category,
                    "media_type": r.media_type,
                    "author": r.author,
                    "created_at": r.created_at,
                    "size": len(r.content),
                    "path": paths.get(r.record_id),
                }
                for r in records
            ]
        )
        return
    if not records:
        out.print(f"no {category} records")
    for r in records:
        # The record's text and media type are its author's: no terminal escapes (each
        # line sanitized, the lines kept).
        shown = paths.get(r.record_id) or (
            "\n".join(safe(line) for line in r.content.decode(errors="replace").splitlines())
            if r.media_type.startswith("text/")
            else f"{len(r.content)} bytes"
        )
        out.print(
            f"{render.hex_id(bytes.fromhex(r.record_id[2:]))} {safe(r.media_type)} "
            f"by {render.who(r.author)}, {render.when(r.created_at)}: {shown}",
            markup=False,
        )


@app.command("list")
def emergency_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Your own emergency declarations, with their status (a clinician)."""
    notices = state(ctx).provider().emergency.declarations()
    show_notices(notices, want_json(ctx, json_out), patient=False, own=True)


@app.command("end")
def emergency_end(
    ctx: typer.Context, declaration: DeclarationArg, json_out: JsonOpt = False
) -> None:
    """End an active emergency declaration early (the patient)."""
    state(ctx).patient().emergency.end(declaration)
    if want_json(ctx, json_out):
        emit_json({"declaration": declaration, "ended": True})
    else:
        out.print(f"emergency #{declaration} ended")


@app.command("withdraw")
def emergency_withdraw(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Withdraw your emergency opt-in (the patient): its declarations stop being served."""
    state(ctx).patient().emergency.withdraw()
    if want_json(ctx, json_out):
        emit_json({"withdrawn": True})
    else:
        out.print("emergency opt-in withdrawn; the proxies delete its key fragments")


@app.command("review")
def emergency_review(
    ctx: typer.Context,
    declaration: Annotated[
        int | None, typer.Argument(help="with --mark: the declaration to mark")
    ] = None,
    mark: Annotated[
        str | None, typer.Option(metavar="VERDICT", help="reviewed or disputed")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List every declaration with its justification, or mark one (the regulator)."""
    from emrshare.chain import EmergencyReview

    member = state(ctx).provider()
    if (declaration is None) != (mark is None):
        raise typer.BadParameter("give a declaration and --mark together, or neither")
    if declaration is not None and mark is not None:
        verdicts = {"reviewed": EmergencyReview.REVIEWED, "disputed": EmergencyReview.DISPUTED}
        if mark.lower() not in verdicts:
            raise typer.BadParameter("--mark is reviewed or disputed")
        member.emergency.mark(declaration, verdicts[mark.lower()])
        if want_json(ctx, json_out):
            emit_json({"declaration": declaration, "review": mark.lower()})
        else:
            out.print(f"emergency #{declaration} marked {mark.lower()}")
        return
    show_notices(member.emergency.review(), want_json(ctx, json_out), patient=False)


def notifications(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """What happened to this patient that needs attention: emergency declarations first."""
    show_notices(
        state(ctx).patient().emergency.notifications(), want_json(ctx, json_out), patient=True
    )
