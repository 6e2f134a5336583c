"""``init``, ``register``, ``whoami``, ``recover``: the local identity, its public keys on
chain and its interrupted writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, err, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.journal import RecoveryReport
    from emrshare.roles import OperationResult, Patient, Provider


def init(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option(help="patient, or member (hospital, insurer, …)")] = (
        "patient"
    ),
    role: Annotated[str | None, typer.Option(help="member role label: provider, insurer, …")] = (
        None
    ),
    restore: Annotated[
        bool, typer.Option(help="restore from a mnemonic instead of creating new keys")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a new identity in this profile: a keystore, and the mnemonic shown once."""
    from emrshare.cli._parse import parse_kind

    st = state(ctx)
    words_in = None
    if restore:
        words_in = typer.prompt("mnemonic (24 words)", hide_input=True)
    profile, words = st.profiles.create(
        st.profile_name, parse_kind(kind), st.password(confirm=True), role=role, mnemonic=words_in
    )
    if want_json(ctx, json_out):
        info = {"profile": profile.name, "kind": profile.kind, "address": profile.address}
        # Scripts get the new mnemonic here or never: this is its one showing.
        emit_json(info if restore else {**info, "mnemonic": words})
        return
    out.print(f"created {profile.kind} profile [bold]{profile.name}[/] → {profile.address}")
    if not restore:
        out.print(
            "\n[bold]Write down these 24 words and keep them offline.[/] They restore this "
            "identity; they are shown only now:\n"
        )
        out.print(f"  {words}\n", markup=False)


def register(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Publish this patient's public keys on chain (once), so hospitals can be authorized
    to write for it. Through the network's relay, the patient needs no ETH."""
    p = state(ctx).patient()
    sent = p.register()
    if want_json(ctx, json_out):
        emit_json({"address": p.address, "registered": True, "sent": sent})
    else:
        out.print(f"patient {p.address} " + ("registered" if sent else "was registered already"))


def whoami(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the current profile: name, kind, address, role, network."""
    st = state(ctx)
    network = st.profiles.network_path
    info = render.profile_json(st.profile(), st.data_dir, network if network.exists() else None)
    if want_json(ctx, json_out):
        emit_json(info)
        return
    for k, v in info.items():
        out.print(f"{k:<9} {v if v is not None else '-'}")


def recover(
    ctx: typer.Context,
    rollback: Annotated[
        bool, typer.Option(help="undo interrupted writes instead of finishing them")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Finish (or roll back) writes a crash or an outage interrupted; a patient's
    interrupted grants, approvals and revocations are always finished."""

    from emrshare.cli.commands.rotate import refresh_rotated

    def patient(p: Patient) -> tuple[list[OperationResult], RecoveryReport]:
        # Chain transactions cannot be undone: a patient's operations are finished, never
        # rolled back; an error leaves them logged (and is printed as one line).
        ops = p.resume()
        refresh_rotated(p, quiet=want_json(ctx, json_out))  # members that rotated keys
        return ops, p.recover(rollback=rollback)

    def member(p: Provider) -> tuple[list[OperationResult], RecoveryReport]:
        return [], p.recover(rollback=rollback)

    ops, report = state(ctx).by_kind(patient, member)
    if want_json(ctx, json_out):
        emit_json(render.recovery_json(report, ops))
    else:
        for line in render.recovery_lines(report):
            out.print(line, markup=False)
        for o in ops:
            out.print(
                f"finished interrupted {o.kind} {o.op_id[:8]}: {o.sent} of {o.steps} "
                "steps sent now, the rest was already on chain"
            )
            for note in o.notes:
                err.print(f"  {note}", markup=False)
        for rid, why in report.failed.items():
            err.print(f"  {render.hex_id(rid)}: {safe(why)}", markup=False)
    if report.failed:
        raise typer.Exit(1)
