"""``drugs check|export|link|mine|reveal``: what a patient (or anyone, for ``check`` and
``export``) runs of drug traceability (issue 17); the supply chain's own commands are in
:mod:`.drugs`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli._context import JsonOpt, emit_json, out, safe, state, table, want_json
from emrshare.cli._parse import parse_hex32
from emrshare.cli.commands.drugs import SerialListOpt, batch_json, read_serial_list, write_file

if TYPE_CHECKING:
    from emrshare.roles import PackCheck


def _check_json(c: PackCheck) -> dict[str, Any]:
    return {
        "status": c.status.value,
        "genuine": c.genuine,
        "gtin": c.code.gtin,
        "lot": c.code.lot,
        "serial": c.code.serial,
        "batch": None if c.batch is None else c.batch.batch_id,
        "manufacturer": None if c.batch is None else c.batch.manufacturer,
        "unit_dispensed": c.unit_dispensed,
        "message": c.message,
    }


def drugs_check(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="the GTIN, or the whole pack code")],
    lot: Annotated[str | None, typer.Argument(help="the lot (with a GTIN)")] = None,
    serial: Annotated[str | None, typer.Argument(help="the pack's serial")] = None,
    serial_list: SerialListOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Anyone, no key: is this pack genuine, where did its batch go, is it recalled or
    expired (exit 1 unless genuine and usable)? GTIN LOT [SERIAL], or the pack's code."""
    from emrshare.roles import PackStatus, batch_trace, check_pack
    from emrshare.trace import PackCode, normalize_gtin, validate_lot, validate_serial

    pack: str | PackCode = code
    if lot is not None:
        pack = PackCode(
            normalize_gtin(code),
            validate_lot(lot),
            None if serial is None else validate_serial(serial),
        )
    trace = state(ctx).network().contracts.drug_trace
    c = check_pack(trace, pack, serials=read_serial_list(serial_list))
    path = None if c.batch is None else batch_trace(trace, c.batch.batch_id)
    if want_json(ctx, json_out):
        emit_json({**_check_json(c), "path": None if path is None else batch_json(path)})
    else:
        copied = " (this unit was dispensed already: a copied code?)" if c.unit_dispensed else ""
        out.print(safe(f"{c.status.value}: {c.message}{copied}"))
        if c.batch is not None:
            out.print(safe(f"  registered by {c.batch.manufacturer}"))
        if path is not None:
            for x in path.hops:
                if x.received is not None:
                    out.print(safe(f"  {x.sender} → {x.recipient}: {x.received}"))
    if c.status is not PackStatus.GENUINE or c.unit_dispensed:
        raise typer.Exit(1)


def drugs_link(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """As a patient: a fresh link to show the pharmacy for one dispense."""
    link = state(ctx).patient().drugs.new_link()
    if want_json(ctx, json_out):
        emit_json({"index": link.index, "link": link.link})
    else:
        out.print(f"link {link.index}: {link}")


def drugs_mine(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """As a patient: what was dispensed to your links, and any recall."""
    found = state(ctx).patient().drugs.dispenses()
    if want_json(ctx, json_out):
        emit_json(
            [
                {
                    "index": d.index,
                    "batch": bytes(d.event.batch_id),
                    "pharmacy": d.event.pharmacy,
                    "quantity": d.event.quantity,
                    "block": d.event.block_number,
                    "recalled": d.recalled,
                    "notified": d.notified,
                }
                for d in found
            ]
        )
        return
    rows = [
        (
            d.index,
            bytes(d.event.batch_id)[:8],
            d.event.pharmacy,
            d.event.quantity,
            "RECALLED" if d.recalled else "",
        )
        for d in found
    ]
    table("your dispenses", ("LINK", "BATCH", "PHARMACY", "QTY", "RECALL"), rows)


def drugs_reveal(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(help="the link's index")],
    json_out: JsonOpt = False,
) -> None:
    """As a patient: print one link's secret, for the regulator after a reaction (it
    shows that dispense, and no other, was yours)."""
    secret = state(ctx).patient().drugs.reveal(index)
    if want_json(ctx, json_out):
        emit_json({"index": index, "secret": secret})
    else:
        out.print(f"secret of link {index} (give it to the regulator only): 0x{secret.hex()}")


def drugs_export(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", metavar="FILE", help="the JSON-LD file")],
    batch: Annotated[str | None, typer.Option(metavar="BATCH", help="one batch only")] = None,
    serial_list: SerialListOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Anyone, no key: the supply events as a GS1 EPCIS 2.0 JSON-LD document (with
    --serial-list, a serialized batch's units by SGTIN)."""
    from emrshare.roles import epcis_export
    from emrshare.trace import epcis_json

    bid = None if batch is None else parse_hex32(batch, "batch id")
    listed = read_serial_list(serial_list)
    serials = None
    if listed is not None:
        if bid is None:
            from emrshare.errors import InvalidInput

            raise InvalidInput("--serial-list is one batch's: give --batch too")
        serials = {bid: listed.serials}
    doc = epcis_export(state(ctx).network().contracts.drug_trace, batch_id=bid, serials=serials)
    write_file(out_path, epcis_json(doc), "EPCIS document")
    n = len(doc["epcisBody"]["eventList"])
    if want_json(ctx, json_out):
        emit_json({"out": out_path, "events": n})
    else:
        out.print(f"{n} EPCIS event(s) written to {out_path}")
