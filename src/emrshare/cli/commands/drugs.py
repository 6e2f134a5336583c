"""``drugs …``: drug supply traceability and the two-invoice check (issue 17).

Manufacturers register batches, every holder ships and receives, pharmacies dispense to a
patient's link, the regulator audits, traces and recalls; a patient makes links, lists
its dispenses and checks a pack. ``drugs check`` needs no key.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli._context import JsonOpt, emit_json, out, safe, state, table, want_json
from emrshare.cli._parse import parse_hex32

if TYPE_CHECKING:
    from emrshare.roles import BatchTrace
    from emrshare.trace import DispenseTrace, SerialList

app = typer.Typer(no_args_is_help=True, help="Drug traceability: batches, shipments, audits.")

BatchArg = Annotated[str, typer.Argument(help="the batch id (0x and 64 hex digits)")]
ShipmentArg = Annotated[str, typer.Argument(help="the shipment id (0x and 64 hex digits)")]
SerialListOpt = Annotated[
    Path | None,
    typer.Option(
        "--serial-list", metavar="FILE", help="the batch's serial list from its manufacturer"
    ),
]


def _read(path: Path, what: str) -> bytes:
    from emrshare.errors import ConfigurationError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None


def write_file(path: Path, data: str | bytes, what: str) -> None:
    """Write an output file the user named (0600); a failure is one line, not a traceback."""
    from emrshare._files import write_atomically
    from emrshare.errors import LocalStateError

    try:
        write_atomically(Path(path), data)
    except OSError as exc:
        raise LocalStateError(
            path, f"cannot write the {what} to {path}: {exc.strerror}; pick another path"
        ) from None


def read_serial_list(path: Path | None) -> SerialList | None:
    from emrshare.trace import SerialList

    return None if path is None else SerialList.from_bytes(_read(path, "serial list"))


def _date(text: str) -> date:
    from emrshare.errors import InvalidInput

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--expiry {text!r}: give the date as YYYY-MM-DD") from None


@app.command("register")
def drugs_register(
    ctx: typer.Context,
    gtin: Annotated[str, typer.Argument(help="the GTIN (8, 12, 13 or 14 digits)")],
    lot: Annotated[str, typer.Argument(help="the lot (batch) number")],
    expiry: Annotated[str, typer.Option(metavar="YYYY-MM-DD", help="usable through this day")],
    quantity: Annotated[int, typer.Option(metavar="N", help="units in the batch")],
    certificate: Annotated[
        Path, typer.Option(metavar="FILE", help="the batch release certificate")
    ],
    unit: Annotated[str, typer.Option(metavar="UNIT", help="pack, vial, tablet…")] = "pack",
    serials: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="one serial per line: a serialized batch"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """As a Manufacturer: register a production batch (GS1 check digit verified; with
    --serials, their Merkle root; the list is written beside FILE as FILE.list.json)."""
    from emrshare.errors import InvalidInput
    from emrshare.trace import SerialList

    listed, list_path = None, None
    if serials is not None:
        try:
            text = _read(serials, "serials").decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"{serials} is not UTF-8 text: one serial per line") from None
        listed = SerialList.of(s.strip() for s in text.splitlines() if s.strip())
        # Written first: the list is what pharmacies need, and the chain only has its root.
        list_path = serials.with_name(serials.name + ".list.json")
        write_file(list_path, listed.to_bytes(), "serial list")
    b = (
        state(ctx)
        .provider()
        .drugs.register_batch(
            gtin,
            lot,
            expiry=_date(expiry),
            quantity=quantity,
            certificate=_read(certificate, "certificate"),
            unit=unit,
            serials=listed,
        )
    )
    if want_json(ctx, json_out):
        emit_json(
            {
                "batch": b.batch_id,
                "gtin": b.gtin,
                "lot": b.lot,
                "expiry": b.expiry,
                "quantity": b.quantity,
                "serial_list": list_path,
            }
        )
        return
    out.print(safe(f"batch 0x{b.batch_id.hex()} registered: {b.gtin} lot {b.lot}, {b.quantity}"))
    if list_path is not None:
        out.print(safe(f"serial list for pharmacies: {list_path}"))


@app.command("ship")
def drugs_ship(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="the recipient's address or profile name")],
    batch: BatchArg,
    quantity: Annotated[int, typer.Argument(help="units to ship")],
    invoice_number: Annotated[str, typer.Option(metavar="NUMBER", help="the invoice's number")],
    amount: Annotated[int, typer.Option(metavar="MINOR", help="invoice amount, minor units")],
    tax_id: Annotated[str, typer.Option(metavar="ID", help="your tax id on the invoice")],
    waybill: Annotated[str | None, typer.Option(metavar="NUMBER", help="waybill number")] = None,
    carrier: Annotated[str, typer.Option(metavar="NAME", help="the carrier")] = "own transport",
    json_out: JsonOpt = False,
) -> None:
    """Ship units you hold; the invoice and the waybill go on chain as digests, their
    plaintexts stay in your data dir for the regulator (`drugs invoices`)."""
    st = state(ctx)
    s = st.provider().drugs.ship(
        st.profiles.resolve(to),
        parse_hex32(batch, "batch id"),
        quantity,
        invoice_number=invoice_number,
        amount_minor=amount,
        tax_id=tax_id,
        waybill_number=waybill,
        carrier=carrier,
    )
    if want_json(ctx, json_out):
        emit_json(
            {
                "shipment": s.shipment_id,
                "batch": s.batch_id,
                "to": s.recipient,
                "quantity": s.quantity,
                "invoice_digest": s.invoice.digest(),
                "kept": s.path,
            }
        )
        return
    out.print(f"shipment 0x{s.shipment_id.hex()}: {s.quantity} to {s.recipient}")


@app.command("receive")
def drugs_receive(
    ctx: typer.Context,
    shipment: ShipmentArg,
    quantity: Annotated[
        int | None, typer.Option(metavar="N", help="units that arrived (default: all)")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Confirm a shipment to you: the units that arrived (the shortfall is recorded)."""
    short = state(ctx).provider().drugs.receive(parse_hex32(shipment, "shipment id"), quantity)
    if want_json(ctx, json_out):
        emit_json({"shipment": shipment, "discrepancy": short})
    else:
        out.print(f"received{f', {short} short' if short else ' in full'}")


@app.command("cancel")
def drugs_cancel(ctx: typer.Context, shipment: ShipmentArg, json_out: JsonOpt = False) -> None:
    """Take back a shipment of yours that was never confirmed."""
    state(ctx).provider().drugs.cancel(parse_hex32(shipment, "shipment id"))
    if want_json(ctx, json_out):
        emit_json({"shipment": shipment, "cancelled": True})
    else:
        out.print("cancelled: the units are back in your stock")


@app.command("invoices")
def drugs_invoices(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="where to write them")],
    json_out: JsonOpt = False,
) -> None:
    """Write the invoice plaintexts you keep, one JSON file each, to hand the regulator."""
    from emrshare._files import private_dir

    found = state(ctx).provider().drugs.invoices()
    private_dir(out_dir)
    written = []
    for inv in found:
        path = out_dir / f"{(inv.shipment_id or inv.digest()).hex()}.json"
        write_file(path, inv.to_json(), "invoice")
        written.append(path)
    if want_json(ctx, json_out):
        emit_json({"written": written})
    else:
        out.print(f"{len(found)} invoice(s) written to {out_dir}")


@app.command("dispense")
def drugs_dispense(
    ctx: typer.Context,
    batch: BatchArg,
    quantity: Annotated[int, typer.Argument(help="units (1 for a serialized pack)")],
    link: Annotated[str, typer.Option(metavar="LINK", help="the link the patient shows")],
    serial: Annotated[str | None, typer.Option(metavar="SERIAL", help="a pack's serial")] = None,
    serial_list: SerialListOpt = None,
    prescription: Annotated[
        str | None, typer.Option(metavar="ID", help="the prescription filled")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """As a pharmacy: dispense to a patient's link (a serialized pack with --serial and
    --serial-list)."""
    from emrshare.errors import InvalidInput

    drugs = state(ctx).provider().drugs
    bid, who = parse_hex32(batch, "batch id"), parse_hex32(link, "patient link")
    rx = None if prescription is None else parse_hex32(prescription, "prescription id")
    index = None
    if serial is None:
        drugs.dispense(bid, quantity, who, prescription_id=rx)
    else:
        listed = read_serial_list(serial_list)
        if listed is None or quantity != 1:
            raise InvalidInput("a serialized pack is dispensed one at a time, with --serial-list")
        index = drugs.dispense_unit(bid, listed, serial, who, prescription_id=rx)
    if want_json(ctx, json_out):
        emit_json({"batch": bid, "quantity": quantity, "unit": index})
    else:
        out.print(safe(f"dispensed {quantity}" + ("" if serial is None else f" ({serial})")))


@app.command("recall")
def drugs_recall(
    ctx: typer.Context,
    batch: BatchArg,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why (kept off chain)")],
    no_notify: Annotated[
        bool, typer.Option("--no-notify", help="do not notify the patient links it reached")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """As its manufacturer or a regulator: recall a batch and notify the patients."""
    drugs = state(ctx).provider().drugs
    bid = parse_hex32(batch, "batch id")
    drugs.recall(bid, reason)
    sent = 0 if no_notify else drugs.notify_recall(bid)
    if want_json(ctx, json_out):
        emit_json({"batch": bid, "recalled": True, "notices": sent})
    else:
        out.print(f"recalled; {sent} patient notice(s) sent")


@app.command("adverse")
def drugs_adverse(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="patient address or profile name")],
    batch: BatchArg,
    description: Annotated[str, typer.Option(metavar="TEXT", help="what happened")],
    seriousness: Annotated[int, typer.Option(metavar="1-4", help="1 mild … 4 fatal")],
    json_out: JsonOpt = False,
) -> None:
    """As a clinician (a Provider the patient authorized for allergies): file a FHIR
    AdverseEvent record and a notice on chain naming the batch, never the patient."""
    st = state(ctx)
    r = st.provider().drugs.report_adverse_event(
        st.profiles.resolve(patient),
        parse_hex32(batch, "batch id"),
        description=description,
        seriousness=seriousness,
    )
    if want_json(ctx, json_out):
        emit_json({"record": bytes(r.record_id), "batch": r.batch_id, "digest": r.digest})
    else:
        out.print(f"adverse event in record 0x{bytes(r.record_id).hex()}, notice on chain")


@app.command("audit")
def drugs_audit(
    ctx: typer.Context,
    invoices: Annotated[
        list[Path] | None,
        typer.Option("--invoices", metavar="DIR", help="invoice files handed in (repeat)"),
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE", help="also write the CSV")
    ] = None,
    from_block: Annotated[
        int, typer.Option(metavar="N", help="report receipts from this block on")
    ] = 0,
    json_out: JsonOpt = False,
) -> None:
    """As a regulator: the two-invoice check of every hospital receipt (exit 1 if any is
    flagged)."""
    from emrshare.trace import Invoice

    handed = None
    if invoices:
        handed = [
            Invoice.from_json(_read(f, "invoice"))
            for d in invoices
            for f in (sorted(d.glob("*.json")) if d.is_dir() else [d])
        ]
    report = state(ctx).provider().drugs.two_invoice_report(handed, from_block=from_block)
    if csv_out is not None:
        write_file(csv_out, report.to_csv(), "CSV")
    if want_json(ctx, json_out):
        emit_json(report.to_json())
    else:
        rows = report.table()
        table("two-invoice check", rows[0], rows[1:])
        checked = "invoices checked" if report.invoices_checked else "digests only"
        out.print(
            f"{len(report.findings)} hospital receipt(s), {len(report.flagged)} flagged "
            f"({checked}); {len(report.unmatched_invoices)} invoice(s) match no shipment"
        )
    if not report.ok:
        raise typer.Exit(1)


def _trace_json(t: DispenseTrace) -> dict[str, Any]:
    e = t.dispense
    return {
        "batch": bytes(e.batch_id),
        "gtin": None if t.gtin is None else f"{t.gtin:014d}",
        "lot": t.lot,
        "manufacturer": t.manufacturer,
        "pharmacy": e.pharmacy,
        "quantity": e.quantity,
        "block": e.block_number,
        "routes": [
            {
                "quantity": c.quantity,
                "shipments": None
                if c.legs is None
                else [
                    {"shipment": x.shipment_id, "from": x.sender, "to": x.recipient} for x in c.legs
                ],
            }
            for c in t.chains
        ],
    }


def _show_batch(t: BatchTrace) -> None:
    batch = "?" if t.gtin is None else f"{t.gtin:014d} lot {t.lot}"
    state = "RECALLED" if t.batch.recalled else "not recalled"
    out.print(safe(f"batch {batch}: {t.batch.quantity} registered, {state}"))
    rows = [(h.account, h.received, h.shipped, h.dispensed, h.patients, h.stock) for h in t.holders]
    table("holders", ("HOLDER", "RECEIVED", "SHIPPED", "DISPENSED", "PATIENTS", "STOCK"), rows)
    out.print(f"{t.dispensed} unit(s) dispensed to {t.patients} patient link(s)")


def batch_json(t: BatchTrace) -> dict[str, Any]:
    return {
        "batch": t.batch.batch_id,
        "gtin": None if t.gtin is None else f"{t.gtin:014d}",
        "lot": t.lot,
        "manufacturer": t.batch.manufacturer,
        "quantity": t.batch.quantity,
        "recalled": t.batch.recalled,
        "dispensed": t.dispensed,
        "patients": t.patients,
        "holders": [
            {
                "account": h.account,
                "received": h.received,
                "shipped": h.shipped,
                "dispensed": h.dispensed,
                "patients": h.patients,
                "stock": h.stock,
            }
            for h in t.holders
        ],
        "shipments": [
            {
                "shipment": x.shipment_id,
                "from": x.sender,
                "to": x.recipient,
                "shipped": x.shipped,
                "received": x.received,
                "state": x.state.name.lower(),
            }
            for x in t.hops
        ],
    }


@app.command("trace")
def drugs_trace(
    ctx: typer.Context,
    batch: Annotated[str | None, typer.Argument(help="a batch id: where every unit went")] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(metavar="SECRET", help="a dispense secret a patient revealed (repeat)"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """A batch: every shipment and holder down to each pharmacy and its patients. With
    --secret (a regulator): the dispenses a patient revealed, back to the factory."""
    from emrshare.errors import InvalidInput

    if (batch is None) == (not secret):
        raise InvalidInput("give a batch id, or --secret with a patient's dispense secret")
    drugs = state(ctx).provider().drugs
    if batch is not None:
        t = drugs.trace_batch(parse_hex32(batch, "batch id"))
        if want_json(ctx, json_out):
            emit_json(batch_json(t))
        else:
            _show_batch(t)
        return
    traces = drugs.trace_dispense([parse_hex32(s, "dispense secret") for s in secret or ()])
    if want_json(ctx, json_out):
        emit_json([_trace_json(t) for t in traces])
        return
    if not traces:
        out.print("no dispense to these links")
    for d in traces:
        gtin = "?" if d.gtin is None else f"{d.gtin:014d}"
        out.print(safe(f"{d.dispense.quantity} of {gtin} lot {d.lot} at {d.dispense.pharmacy}"))
        for c in d.chains:
            legs = c.legs or ()
            path = " → ".join([legs[0].sender, *(x.recipient for x in legs)]) if legs else "?"
            out.print(safe(f"  {c.quantity}: {path}"))
