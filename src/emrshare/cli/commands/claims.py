"""``claims file|list|show|consent|read|adjudicate|report``: insurance claims (issue 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli._context import JsonOpt, emit_json, out, safe, state, want_json
from emrshare.cli._parse import parse_hex32

if TYPE_CHECKING:
    from emrshare.fhir.claim import ClaimItem
    from emrshare.roles import ClaimInfo

app = typer.Typer(no_args_is_help=True, help="Insurance claims: file, consent, adjudicate once.")

ClaimArg = Annotated[str, typer.Argument(help="the claim id (or a prefix of 8+ hex digits)")]


def _claim(st: Any, text: str) -> bytes:
    """A claim id, or a unique prefix (8+ hex digits) of one of the claims you list."""
    from emrshare.errors import AmbiguousId, InvalidInput

    digits = text.removeprefix("0x").lower()
    if len(digits) == 64:
        return parse_hex32(text, "claim id")
    if len(digits) < 8 or any(ch not in "0123456789abcdef" for ch in digits):
        raise InvalidInput(f"{text!r} is not a claim id: give 0x and 64 (or 8+) hex digits")
    listed = st.by_kind(lambda p: p.claims.list(), lambda m: m.claims.incoming())
    found = [c.claim_id for c in listed if c.claim_id.hex().startswith(digits)]
    if len(found) > 1:
        shown = ["0x" + f.hex() for f in found]
        raise AmbiguousId(text, shown, f"{text} names {len(found)} claims; give more digits")
    if not found:
        raise InvalidInput(f"no claim you can list starts with {text}; give the full id")
    return bytes(found[0])


def _item(text: str) -> ClaimItem:
    """``DESCRIPTION:AMOUNT`` or ``DESCRIPTION:AMOUNT:PRESCRIPTION_ID`` (minor units)."""
    from emrshare.errors import InvalidInput
    from emrshare.fhir.claim import ClaimItem

    parts = text.split(":")
    rx = parse_hex32(parts.pop(), "prescription id") if parts[-1].startswith("0x") else None
    if len(parts) < 2 or not parts[-1].isdigit():
        raise InvalidInput(
            f"--item {text!r}: give DESCRIPTION:AMOUNT (minor units), optionally "
            ":PRESCRIPTION_ID, e.g. 'consultation:20000'"
        )
    return ClaimItem(":".join(parts[:-1]), int(parts[-1]), rx)


def _json(c: ClaimInfo) -> dict[str, Any]:
    return {
        "claim": "0x" + c.claim_id.hex(),
        "status": c.status.value,
        "hospital": c.hospital,
        "insurer": c.insurer,
        "patient": c.patient,
        "amount": c.amount,
        "approved": c.approved,
        "reason": int(c.reason),
        "reason_name": getattr(c.reason, "name", str(c.reason)).lower().replace("_", "-"),
        "records": ["0x" + bytes(r).hex() for r in c.records],
        "items": ["0x" + i.hex() for i in c.items],
        "filed_block": c.filed_block,
    }


def _line(c: ClaimInfo) -> str:
    reason = getattr(c.reason, "name", str(c.reason)).lower().replace("_", "-")
    decided = f", {c.approved} approved ({reason})" if c.status.adjudicated else ""
    return safe(
        f"0x{c.claim_id.hex()[:12]}  {c.amount} billed by {c.hospital} to {c.insurer}, "
        f"{len(c.records)} record(s): {c.status.value}{decided}"
    )


@app.command("file")
def claims_file(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="patient address or profile name")],
    insurer: Annotated[str, typer.Argument(help="the insurer's address or profile name")],
    category: Annotated[str, typer.Argument(help="the encounter records' category")],
    record: Annotated[
        list[str], typer.Option("--record", metavar="ID", help="an encounter record (repeat)")
    ],
    item: Annotated[
        list[str],
        typer.Option("--item", metavar="DESC:AMOUNT[:RX]", help="a billed item (repeat)"),
    ],
    currency: Annotated[str, typer.Option(metavar="CODE", help="ISO 4217")] = "CNY",
    json_out: JsonOpt = False,
) -> None:
    """File a claim (a Provider the patient authorized for CATEGORY)."""
    st = state(ctx)
    filed = st.provider().claims.file(
        st.profiles.resolve(patient),
        st.profiles.resolve(insurer),
        category,
        records=[parse_hex32(r, "record id") for r in record],
        items=[_item(i) for i in item],
        currency=currency,
    )
    if want_json(ctx, json_out):
        emit_json(
            {
                "claim": "0x" + filed.claim_id.hex(),
                "record": "0x" + bytes(filed.record_id).hex(),
                "amount": filed.amount,
                "records": ["0x" + bytes(r).hex() for r in filed.records],
            }
        )
    else:
        out.print(
            f"claim 0x{filed.claim_id.hex()} filed: {filed.amount} to {filed.insurer}, "
            f"document in record 0x{bytes(filed.record_id).hex()}"
        )


@app.command("list")
def claims_list(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="only claims not yet decided")] = False,
    json_out: JsonOpt = False,
) -> None:
    """A patient: each claim filed for you and its state. An insurer: claims filed with it."""
    st = state(ctx)
    found = st.by_kind(lambda p: p.claims.list(), lambda m: m.claims.incoming(open_only=open_only))
    if open_only:
        found = [c for c in found if not c.status.adjudicated]
    if want_json(ctx, json_out):
        emit_json([_json(c) for c in found])
        return
    if not found:
        out.print("no claims")
    for c in found:
        out.print(_line(c), markup=False)


@app.command("show")
def claims_show(ctx: typer.Context, claim: ClaimArg, json_out: JsonOpt = False) -> None:
    """One claim and its state on chain."""
    st = state(ctx)
    cid = _claim(st, claim)
    c = st.by_kind(lambda p: p.claims.get(cid), lambda m: m.claims.claim(cid))
    if want_json(ctx, json_out):
        emit_json(_json(c))
    else:
        out.print(_line(c), markup=False)


@app.command("consent")
def claims_consent(
    ctx: typer.Context,
    claim: ClaimArg,
    expires: Annotated[
        str, typer.Option(metavar="WHEN", help="how long the insurer may read, e.g. 14d")
    ] = "14d",
    json_out: JsonOpt = False,
) -> None:
    """Consent to one claim: its insurer may read the claim's records only, until WHEN."""
    from emrshare.cli._parse import option, parse_expires

    st = state(ctx)
    when = option(parse_expires, expires, "--expires")
    grant = st.patient().claims.consent(_claim(st, claim), expires=when)
    if want_json(ctx, json_out):
        emit_json({"claim": claim, "policy": "0x" + bytes(grant.policy_id).hex()})
    else:
        out.print(
            f"consented: grant 0x{bytes(grant.policy_id).hex()} lets {grant.grantee} read "
            f"{len(grant.records)} record(s) of the claim"
        )


@app.command("read")
def claims_read(ctx: typer.Context, claim: ClaimArg, json_out: JsonOpt = False) -> None:
    """Read and verify a claim's document and records (the claim's insurer)."""
    st = state(ctx)
    read = st.provider().claims.read(_claim(st, claim))
    d = read.document
    if want_json(ctx, json_out):
        emit_json(
            {
                **_json(read.claim),
                "document_record": "0x" + bytes(read.document_record).hex(),
                "currency": d.currency,
                "lines": [{"description": i.description, "amount": i.amount} for i in d.items],
                "record_sizes": {"0x" + bytes(r).hex(): len(b) for r, b in read.records},
            }
        )
        return
    out.print("verified " + _line(read.claim), markup=False)
    for i in d.items:
        out.print(safe(f"  {i.description}: {i.amount} {d.currency}"), markup=False)
    for r, b in read.records:
        out.print(f"  record 0x{bytes(r).hex()[:12]}: {len(b)} bytes")


@app.command("adjudicate")
def claims_adjudicate(
    ctx: typer.Context,
    claim: ClaimArg,
    approved: Annotated[int, typer.Argument(help="approved amount, minor units (0: deny)")],
    reason: Annotated[
        str, typer.Option(metavar="REASON", help="e.g. exceeds-limit, not-covered (or a code)")
    ] = "none",
    json_out: JsonOpt = False,
) -> None:
    """Adjudicate a claim once (its insurer); settlement follows on chain."""
    from emrshare.roles import ClaimReason

    st = state(ctx)
    c = st.provider().claims.adjudicate(_claim(st, claim), approved, ClaimReason.of(reason))
    if want_json(ctx, json_out):
        emit_json(_json(c))
    else:
        out.print(_line(c), markup=False)


@app.command("report")
def claims_report(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Figures per hospital and insurer, and billed-but-never-dispensed items (the bureau)."""
    r = state(ctx).provider().claims.report()
    if want_json(ctx, json_out):
        emit_json(
            {
                "block": r.block,
                "hospitals": {a: dict(c) for a, c in r.by_hospital.items()},
                "insurers": {a: dict(c) for a, c in r.by_insurer.items()},
                "mismatches": [
                    {
                        "claim": "0x" + m.claim_id.hex(),
                        "hospital": m.hospital,
                        "prescription": "0x" + m.prescription_id.hex(),
                    }
                    for m in r.mismatches
                ],
            }
        )
        return
    for who, table in (("hospital", r.by_hospital), ("insurer", r.by_insurer)):
        for account, c in sorted(table.items()):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            out.print(f"{who} {account}: {shown}")
    for m in r.mismatches:
        out.print(
            f"billed, never dispensed: prescription 0x{m.prescription_id.hex()} in claim "
            f"0x{m.claim_id.hex()} by {m.hospital}"
        )
