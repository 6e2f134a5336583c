"""``rx issue|show|list|review|dispense|cancel|counts``: e-prescriptions (issue 15)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.roles._prescriptions import VerifiedPrescription

app = typer.Typer(no_args_is_help=True, help="E-prescriptions: issue, verify, dispense once.")

PatientArg = Annotated[str, typer.Argument(help="patient address or profile name")]
RecordArg = Annotated[str, typer.Argument(help="the prescription's record id (or a prefix)")]


def _json(v: VerifiedPrescription) -> dict[str, Any]:
    d = v.document
    return {
        "prescription": "0x" + v.prescription_id.hex(),
        "record": "0x" + bytes(v.record_id).hex(),
        "patient": v.patient,
        "prescriber": d.prescriber,
        "medication": d.medication,
        "code": d.code,
        "dosage": d.dosage,
        "fills": d.fills,
        "fills_used": v.chain.fills_used,
        "reviewed": v.chain.reviewed,
        "valid_until": d.valid_until,
        "status": v.status.name.lower(),
    }


def _line(v: VerifiedPrescription) -> str:
    """One prescription for people: the document's strings are the prescriber's, so they
    go through ``safe`` (no terminal escapes)."""
    d = v.document
    return safe(
        f"0x{bytes(v.record_id).hex()[:12]}  {d.medication} ({d.dosage}), "
        f"{v.chain.fills_used}/{d.fills} filled, until {render.when(d.valid_until)}, "
        f"by {d.prescriber}: {v.status.name.lower()}"
    )


@app.command("issue")
def rx_issue(
    ctx: typer.Context,
    patient: PatientArg,
    medication: Annotated[str, typer.Argument(help="what to dispense, e.g. 'amoxicillin 500 mg'")],
    dosage: Annotated[str, typer.Option(metavar="TEXT", help="how to take it")],
    fills: Annotated[int, typer.Option(metavar="N", help="fills allowed, 1..63")] = 1,
    valid_for: Annotated[
        str, typer.Option(metavar="DURATION", help="how long it stays valid, e.g. 30d")
    ] = "30d",
    code: Annotated[str | None, typer.Option(metavar="CODE", help="RxNorm code")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Issue a prescription (a Provider the patient authorized for prescriptions)."""
    from emrshare.cli._parse import option, parse_duration

    st = state(ctx)
    span = option(parse_duration, valid_for, "--valid-for")
    who = st.profiles.resolve(patient)
    rx = st.provider().prescriptions.issue(
        who, medication, dosage=dosage, fills=fills, valid_for=span, code=code
    )
    if want_json(ctx, json_out):
        emit_json(
            {
                "prescription": "0x" + rx.prescription_id.hex(),
                "record": "0x" + bytes(rx.record_id).hex(),
                "fills": rx.fills,
                "valid_until": rx.valid_until,
            }
        )
    else:
        out.print(
            f"prescription 0x{rx.prescription_id.hex()} issued in record "
            f"0x{bytes(rx.record_id).hex()}: {rx.fills} fill(s) until {render.when(rx.valid_until)}"
        )


@app.command("show")
def rx_show(
    ctx: typer.Context, patient: PatientArg, record: RecordArg, json_out: JsonOpt = False
) -> None:
    """Read and verify one prescription (signature, commitment, prescriber, terms)."""
    st = state(ctx)
    v = st.provider().prescriptions.verify(st.profiles.resolve(patient), record)
    if want_json(ctx, json_out):
        emit_json(_json(v))
    else:
        out.print("verified " + _line(v), markup=False)


@app.command("list")
def rx_list(ctx: typer.Context, patient: PatientArg, json_out: JsonOpt = False) -> None:
    """The patient's prescriptions this member can read, each verified."""
    st = state(ctx)
    found = st.provider().prescriptions.readable(st.profiles.resolve(patient))
    if want_json(ctx, json_out):
        emit_json([_json(v) for v in found])
        return
    if not found:
        out.print("no readable prescriptions (ask the patient to grant 'prescriptions')")
    for v in found:
        out.print(_line(v), markup=False)


@app.command("review")
def rx_review(
    ctx: typer.Context, patient: PatientArg, record: RecordArg, json_out: JsonOpt = False
) -> None:
    """Verify, then approve a prescription on chain (a reviewer, not its prescriber)."""
    st = state(ctx)
    v = st.provider().prescriptions.review(st.profiles.resolve(patient), record)
    if want_json(ctx, json_out):
        emit_json({"prescription": "0x" + v.prescription_id.hex(), "reviewed": True})
    else:
        out.print(f"prescription 0x{v.prescription_id.hex()} reviewed")


@app.command("dispense")
def rx_dispense(
    ctx: typer.Context, patient: PatientArg, record: RecordArg, json_out: JsonOpt = False
) -> None:
    """Verify, then dispense one fill on chain (a Pharmacy)."""
    st = state(ctx)
    d = st.provider().prescriptions.dispense(st.profiles.resolve(patient), record)
    if want_json(ctx, json_out):
        emit_json(
            {
                "prescription": "0x" + d.prescription_id.hex(),
                "record": "0x" + bytes(d.record_id).hex(),
                "fill": d.fill,
                "fills": d.fills,
            }
        )
    else:
        out.print(
            f"dispensed fill {d.fill} of {d.fills} of prescription 0x{d.prescription_id.hex()}"
        )


@app.command("cancel")
def rx_cancel(
    ctx: typer.Context,
    prescription: Annotated[str, typer.Argument(help="the prescription id (0x + 64 hex)")],
    json_out: JsonOpt = False,
) -> None:
    """Cancel a prescription you issued."""
    from emrshare.errors import InvalidInput

    digits = prescription.removeprefix("0x")
    if len(digits) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        raise InvalidInput(f"{prescription!r} is not a prescription id: give 0x and 64 hex digits")
    pid = bytes.fromhex(digits)
    state(ctx).provider().prescriptions.cancel(pid)
    if want_json(ctx, json_out):
        emit_json({"prescription": "0x" + pid.hex(), "cancelled": True})
    else:
        out.print(f"prescription 0x{pid.hex()} cancelled")


@app.command("counts")
def rx_counts(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Counts per prescriber and per pharmacy, from the chain alone (the regulator)."""
    counts = state(ctx).provider().prescriptions.counts()
    if want_json(ctx, json_out):
        emit_json(
            {
                "prescribers": {a: dict(c) for a, c in counts.by_prescriber.items()},
                "pharmacies": {a: dict(c) for a, c in counts.by_pharmacy.items()},
            }
        )
        return
    for who, table in (("prescriber", counts.by_prescriber), ("pharmacy", counts.by_pharmacy)):
        for account, c in sorted(table.items()):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            out.print(f"{who} {account}: {shown}")
