"""The patient / hospital / insurer commands: init, whoami, record, grant, request, writer,
member, audit, recover, devnet. Each parses, calls the library and prints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from emrshare.cli._context import emit_json, err, out, progress_bar, safe, state, table, want_json

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]

record_app = typer.Typer(no_args_is_help=True, help="Add, list and read records.")
grant_app = typer.Typer(no_args_is_help=True, help="Grant, list and revoke access (patient).")
request_app = typer.Typer(no_args_is_help=True, help="Ask for access, and answer requests.")
writer_app = typer.Typer(no_args_is_help=True, help="Who may write a category (patient).")
member_app = typer.Typer(no_args_is_help=True, help="Consortium membership.")
devnet_app = typer.Typer(no_args_is_help=True, help="A local development network.")


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hex(b: bytes | None) -> str:
    return "-" if b is None else "0x" + bytes(b).hex()


def _short(b: bytes) -> str:
    h = bytes(b).hex()
    return f"0x{h[:10]}…{h[-6:]}"


# -- identity ------------------------------------------------------------------------------


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
) -> None:
    """Create a new identity in this profile: a keystore, and the mnemonic shown once."""
    st = state(ctx)
    words_in = None
    if restore:
        words_in = typer.prompt("mnemonic (24 words)", hide_input=True)
    profile, words = st.profiles.create(
        st.profile_name,
        kind,  # type: ignore[arg-type]
        st.password(confirm=True),
        role=role,
        mnemonic=words_in,
    )
    if st.json:
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


def whoami(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the current profile: name, kind, address, role, network."""
    st = state(ctx)
    profile = st.profile()
    info: dict[str, Any] = {
        "profile": profile.name,
        "kind": profile.kind,
        "address": profile.address,
        "role": profile.role,
        "data_dir": str(st.data_dir),
        "network": str(st.profiles.network_path) if st.profiles.network_path.exists() else None,
    }
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
    st = state(ctx)
    ops: list[Any] = []
    if st.profile().kind == "patient":
        patient = st.patient()
        # Chain transactions cannot be undone: a patient's operations are finished, never
        # rolled back; an error leaves them logged (and is printed as one line).
        ops = patient.resume()
        report = patient.recover(rollback=rollback)
    else:
        report = st.provider().recover(rollback=rollback)
    if want_json(ctx, json_out):
        emit_json(
            {
                "confirmed": [_hex(r) for r in report.confirmed],
                "rolled_back": [_hex(r) for r in report.rolled_back],
                "failed": {_hex(k): v for k, v in report.failed.items()},
                "operations": [
                    {"id": o.op_id, "kind": o.kind, "steps": o.steps, "sent": o.sent} for o in ops
                ],
            }
        )
    else:
        out.print(
            f"finished {len(report.confirmed)}, rolled back {len(report.rolled_back)}, "
            f"still failing {len(report.failed)}"
        )
        for o in ops:
            out.print(
                f"finished interrupted {o.kind} {o.op_id[:8]}: {o.sent} of {o.steps} "
                "steps sent now, the rest was already on chain"
            )
            for note in o.notes:
                err.print(f"  {note}", markup=False)
        for rid, why in report.failed.items():
            err.print(f"  {_hex(rid)}: {safe(why)}", markup=False)
    if report.failed:
        raise typer.Exit(1)


def audit(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The patient's access trail: who read which records, when (from the chain)."""
    events = state(ctx).patient().audit()
    if want_json(ctx, json_out):
        emit_json(
            [
                {
                    "requester": e.requester,
                    "proxy": e.proxy,
                    "policy_id": _hex(e.policy_id),
                    "category": e.category,
                    "records": [_hex(r) for r in e.record_ids] if e.record_ids else None,
                    "count": e.count,
                    "nonce": e.nonce,
                    "evaluated_at_block": e.evaluated_at_block,
                    "block": e.block_number,
                    "time": _when(e.timestamp),
                }
                for e in events
            ]
        )
        return
    table(
        "access trail",
        ["time", "requester", "category", "records", "proxy", "block"],
        [
            (
                _when(e.timestamp),
                e.requester,
                e.category,
                ", ".join(_short(r) for r in e.record_ids) if e.record_ids else f"{e.count}",
                e.proxy,
                e.block_number,
            )
            for e in events
        ],
    )


# -- records -------------------------------------------------------------------------------


@record_app.command("add")
def record_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    category: Annotated[str, typer.Option(help="category name, e.g. lab or imaging")],
    patient: Annotated[
        str | None, typer.Option(help="patient address or profile (members only)")
    ] = None,
    media_type: Annotated[str, typer.Option(help="MIME type")] = "application/octet-stream",
    json_out: JsonOpt = False,
) -> None:
    """Encrypt, store and index one record (journaled: exactly once, resumable)."""
    st = state(ctx)
    size = file.stat().st_size
    with progress_bar(f"adding {file.name}", size, size >= 1 << 20 and not st.json) as advance:
        if st.profile().kind == "patient":
            rid = st.patient().add_record(
                category, file, media_type=media_type, progress=lambda d, t: advance(d)
            )
        else:
            if patient is None:
                raise typer.BadParameter("--patient is required for a member", param_hint="patient")
            rid = st.provider().add_record(
                st.profiles.resolve(patient),
                category,
                file,
                media_type=media_type,
                progress=lambda d, t: advance(d),
            )
    if want_json(ctx, json_out):
        emit_json({"record_id": _hex(rid), "category": category, "size": size})
    else:
        out.print(f"added record {_hex(rid)} ({category}, {size} bytes)")


@record_app.command("import")
def record_import(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    category: Annotated[str, typer.Option(help="category name, e.g. lab")],
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    media_type: Annotated[str, typer.Option(help="MIME type")] = "application/octet-stream",
    batch_size: Annotated[int, typer.Option(help="records per append transaction")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Bulk import: many files of one category, appended in batches (journaled)."""
    st = state(ctx)
    ids = st.provider().add_records(
        st.profiles.resolve(patient),
        category,
        files,
        media_type=media_type,
        batch_size=batch_size,
    )
    if want_json(ctx, json_out):
        emit_json([{"file": str(f), "record_id": _hex(r)} for f, r in zip(files, ids, strict=True)])
    else:
        out.print(f"imported {len(ids)} {category} records")


@record_app.command("list")
def record_list(
    ctx: typer.Context,
    patient: Annotated[
        str | None, typer.Option(help="patient address or profile (members only)")
    ] = None,
    category: Annotated[str | None, typer.Option(help="only this category")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List records: a patient's own, or a patient's records this member was granted."""
    st = state(ctx)
    if st.profile().kind == "patient":
        recs = st.patient().records(category)
    else:
        if patient is None:
            raise typer.BadParameter("--patient is required for a member", param_hint="patient")
        recs = st.provider().records(st.profiles.resolve(patient), category)
    if want_json(ctx, json_out):
        emit_json(
            [
                {
                    "record_id": _hex(r.record_id),
                    "category": r.category,
                    "epoch": r.epoch,
                    "author": r.author,
                    "media_type": r.media_type,
                    "size": r.size,
                    "created_at": _when(r.created_at) if r.created_at else None,
                    "block": r.block_number,
                }
                for r in recs
            ]
        )
        return
    table(
        "records",
        ["record id", "category", "epoch", "author", "type", "size", "block"],
        [
            (
                _hex(r.record_id),
                r.category,
                r.epoch,
                r.author,
                r.media_type,
                r.size,
                r.block_number,
            )
            for r in recs
        ],
    )


@record_app.command("get")
def record_get(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="0x… record id")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", dir_okay=False, help="where to write the record"),
    ],
    patient: Annotated[
        str | None, typer.Option(help="patient address or profile (members only)")
    ] = None,
) -> None:
    """Read one record, fully verified, into a file (written only once verified)."""
    st = state(ctx)
    if not output.parent.is_dir():
        raise typer.BadParameter(
            f"the directory {output.parent} does not exist; create it first", param_hint="-o"
        )
    if st.profile().kind == "patient":
        size = st.patient().read_to(record_id, output)
    else:
        if patient is None:
            raise typer.BadParameter("--patient is required for a member", param_hint="patient")
        size = st.provider().read_to(st.profiles.resolve(patient), record_id, output)
    if st.json:
        emit_json({"record_id": record_id, "output": str(output), "size": size})
    else:
        out.print(f"wrote {size} bytes to {output}")


# -- grants ----------------------------------------------------------------------------------


def _grant_rows(grants: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (_hex(g.policy_id), g.grantee, g.category, g.epoch, _when(g.expiry), g.status)
        for g in grants
    ]


def _grants_json(grants: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "policy_id": _hex(g.policy_id),
            "patient": g.patient,
            "grantee": g.grantee,
            "category": g.category,
            "epoch": g.epoch,
            "expires": _when(g.expiry),
            "threshold": g.threshold,
            "proxies": list(g.proxies),
            "status": g.status,
        }
        for g in grants
    ]


@grant_app.command("add")
def grant_add(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="grantee address or profile name")],
    category: Annotated[str, typer.Option(help="category name")],
    expires: Annotated[str, typer.Option(help="how long: 30d, 12h, 2w, …")] = "30d",
    threshold: Annotated[int | None, typer.Option(min=1, help="M of the N proxies")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Grant a member read access to one category until it expires."""
    from emrshare.roles import parse_duration

    st = state(ctx)
    g = st.patient().grant(
        st.profiles.resolve(to), category, expires=parse_duration(expires), threshold=threshold
    )
    if want_json(ctx, json_out):
        emit_json(_grants_json([g])[0])
    else:
        out.print(
            f"granted {category} to {g.grantee} until {_when(g.expiry)}: policy {_hex(g.policy_id)}"
        )


@grant_app.command("list")
def grant_list(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option(help="only active grants")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List grants: those a patient made, or those made to this member."""
    st = state(ctx)
    if st.profile().kind == "patient":
        grants = st.patient().grants(active_only=active)
    else:
        grants = st.provider().grants(active_only=active)
    if want_json(ctx, json_out):
        emit_json(_grants_json(grants))
        return
    table(
        "grants",
        ["policy id", "grantee", "category", "epoch", "expires", "status"],
        _grant_rows(grants),
    )


@grant_app.command("revoke")
def grant_revoke(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(help="0x… policy id (from `grant list`)")],
    keep_epoch: Annotated[
        bool, typer.Option(help="do not move the category to a new epoch")
    ] = False,
) -> None:
    """Revoke a grant; by default the category moves to a new epoch (new key)."""
    state(ctx).patient().revoke(policy_id, new_epoch=not keep_epoch)
    out.print(f"revoked {policy_id}")


# -- access requests ------------------------------------------------------------------------


@request_app.command("add")
def request_add(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option(help="patient address or profile name")],
    category: Annotated[str, typer.Option(help="category name")],
    purpose: Annotated[str, typer.Option(help="FHIR PurposeOfUse: TREAT, HPAYMT, …")] = "TREAT",
    reason: Annotated[
        str, typer.Option(help="free text, at most 200 bytes; sealed to the patient")
    ] = "",
    json_out: JsonOpt = False,
) -> None:
    """Ask a patient for access to one category."""
    st = state(ctx)
    rid = st.provider().request_access(
        st.profiles.resolve(patient), category, purpose=purpose, reason=reason
    )
    if want_json(ctx, json_out):
        emit_json({"request_id": rid})
    else:
        out.print(f"request #{rid} sent")


@request_app.command("list")
def request_list(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option(help="only unanswered requests")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List requests: those addressed to a patient, or those this member made."""
    st = state(ctx)
    if st.profile().kind == "patient":
        reqs = st.patient().requests(pending_only=pending)
    else:
        reqs = [r for r in st.provider().my_requests() if not pending or r.status == "pending"]
    if want_json(ctx, json_out):
        emit_json(
            [
                {
                    "request_id": r.request_id,
                    "patient": r.patient,
                    "requester": r.requester,
                    "category": r.category,
                    "purpose": r.purpose,
                    "reason": r.reason,
                    "status": r.status,
                    "policy_id": _hex(r.policy_id) if r.policy_id else None,
                    "policy_ids": [_hex(p) for p in r.policy_ids],
                }
                for r in reqs
            ]
        )
        return
    table(
        "access requests",
        ["#", "requester", "patient", "category", "purpose", "reason", "status"],
        [
            (r.request_id, r.requester, r.patient, r.category, r.purpose, r.reason, r.status)
            for r in reqs
        ],
    )


@request_app.command("approve")
def request_approve(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="request number")],
    expires: Annotated[str, typer.Option(help="how long: 30d, 12h, 2w, …")] = "30d",
    category: Annotated[
        str | None, typer.Option(help="category name, if the request's is not recognised")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve a request: grants the category to the requester."""
    from emrshare.roles import parse_duration

    g = state(ctx).patient().approve(request_id, expires=parse_duration(expires), category=category)
    if want_json(ctx, json_out):
        emit_json(_grants_json([g])[0])
    else:
        out.print(
            f"approved #{request_id}: {g.category} for {g.grantee} until {_when(g.expiry)} "
            f"(policy {_hex(g.policy_id)})"
        )


@request_app.command("deny")
def request_deny(
    ctx: typer.Context, request_id: Annotated[int, typer.Argument(help="request number")]
) -> None:
    """Deny a request."""
    state(ctx).patient().deny(request_id)
    out.print(f"denied #{request_id}")


# -- writers --------------------------------------------------------------------------------


@writer_app.command("add")
def writer_add(
    ctx: typer.Context,
    writer: Annotated[str, typer.Argument(help="provider address or profile name")],
    category: Annotated[str, typer.Option(help="category name")],
) -> None:
    """Let a provider append records of a category to your index."""
    st = state(ctx)
    address = st.profiles.resolve(writer)
    st.patient().authorize_writer(address, category)
    out.print(f"{address} may now write {category} records")


@writer_app.command("remove")
def writer_remove(
    ctx: typer.Context,
    writer: Annotated[str, typer.Argument(help="provider address or profile name")],
    category: Annotated[str, typer.Option(help="category name")],
) -> None:
    """Stop a provider from writing a category."""
    st = state(ctx)
    address = st.profiles.resolve(writer)
    st.patient().deauthorize_writer(address, category)
    out.print(f"{address} may no longer write {category} records")


@writer_app.command("list")
def writer_list(
    ctx: typer.Context,
    category: Annotated[str, typer.Option(help="category name")],
    json_out: JsonOpt = False,
) -> None:
    """Providers allowed to write a category."""
    writers = state(ctx).patient().writers(category)
    if want_json(ctx, json_out):
        emit_json(writers)
    else:
        for w in writers:
            out.print(safe(w), markup=False)


# -- membership -----------------------------------------------------------------------------


@member_app.command("add")
def member_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="profile to create (or reuse) for the member")],
    role: Annotated[str, typer.Option(help="provider, insurer, pharmacy, regulator, proxy")] = (
        "provider"
    ),
    endpoint: Annotated[str, typer.Option(help="base URL (proxies only)")] = "",
) -> None:
    """Admit a member (admin; devnet): creates its profile, publishes its keys, admits it.

    Run as the admin profile (``--profile admin`` on a devnet).
    """
    from emrshare.chain.contracts import Role
    from emrshare.crypto import MemberKeys
    from emrshare.devnet import fund_account
    from emrshare.errors import AccessDenied
    from emrshare.roles import ConsortiumAdmin, Requester, parse_role

    st = state(ctx)
    admin_keys = st.keys()
    net = st.network()
    if not net.contracts.registry.has_role(admin_keys.address, Role.ADMIN):
        # Checked first: otherwise a new profile is created and funded, then refused.
        raise AccessDenied(
            f"profile {st.profile_name!r} ({admin_keys.address}) is not a consortium admin; "
            "run `member add` with --profile admin"
        )
    profiles = st.profiles
    password = st.password()
    if not profiles.exists(name):
        # A new member needs gas to publish its keys: the devnet admin funds it.
        profile, words = profiles.create(name, "member", password, role=role, fast_kdf=True)
        fund_account(net, admin_keys.ethereum_key, profile.address)
        err.print(f"created member profile {name} ({profile.address}); its mnemonic:")
        err.print(f"  {words}", markup=False)
    keys = profiles.unlock(name, password)
    assert isinstance(keys, MemberKeys)
    Requester(net, keys, state_dir=profiles.get(name).state_dir).apply(endpoint=endpoint)
    ConsortiumAdmin(net, admin_keys.ethereum_key).admit(keys.address, parse_role(role))
    profiles.set_role(name, role)
    out.print(f"admitted {name} ({keys.address}) as {role}")


@member_app.command("list")
def member_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Consortium members and their roles."""
    members = state(ctx).network().contracts.registry.all_members()
    if want_json(ctx, json_out):
        emit_json(
            [
                {"address": m.account, "role": m.role.name.lower(), "endpoint": m.endpoint}
                for m in members
            ]
        )
        return
    table(
        "members",
        ["address", "role", "endpoint"],
        [(m.account, m.role.name.lower(), m.endpoint or "-") for m in members],
    )


@member_app.command("suspend")
def member_suspend(
    ctx: typer.Context,
    proxy: Annotated[str, typer.Argument(help="the reported proxy's address")],
    report: Annotated[int, typer.Option("--report", help="the proxy report id to act on")],
) -> None:
    """Propose suspending a proxy on a report (admin): its evidence is verified here first."""
    from emrshare.roles import ConsortiumAdmin

    st = state(ctx)
    admin = ConsortiumAdmin(st.network(), st.keys().ethereum_key)
    pid = admin.suspend(proxy, report)
    suspended = st.network().contracts.registry.member(proxy).suspended_at != 0
    if want_json(ctx, False):
        emit_json({"proposal": pid, "suspended": suspended})
        return
    done = "suspended" if suspended else "proposed; other admins run `member approve`"
    out.print(f"report {report} verified; proposal {pid}: {proxy} {done}")


@member_app.command("approve")
def member_approve(
    ctx: typer.Context,
    proposal: Annotated[int, typer.Argument(help="the proposal id")],
) -> None:
    """Approve a registry proposal (admin); a suspension's evidence is verified here first."""
    from emrshare.roles import ConsortiumAdmin

    st = state(ctx)
    ConsortiumAdmin(st.network(), st.keys().ethereum_key).approve(proposal)
    executed = st.network().contracts.registry.proposal(proposal).executed
    if want_json(ctx, False):
        emit_json({"proposal": proposal, "executed": executed})
        return
    out.print(f"approved proposal {proposal}" + (" (executed)" if executed else ""))


@member_app.command("verify-report")
def member_verify_report(
    ctx: typer.Context, report: Annotated[int, typer.Argument(help="the proxy report id")]
) -> None:
    """Check a proxy report against the chain (anyone): does its evidence prove misbehaviour?"""
    from emrshare.roles import ConsortiumAdmin

    st = state(ctx)
    v = ConsortiumAdmin(st.network(), st.keys().ethereum_key).verify_report(report)
    if want_json(ctx, False):
        emit_json({"report": report, "proxy": v.proxy, "evidence_hash": _hex(v.evidence_hash)})
        return
    out.print(f"report {report} proves that {v.proxy} signed a capsule fragment that fails")


# -- devnet -----------------------------------------------------------------------------------


@devnet_app.command("up")
def devnet_up_cmd(
    ctx: typer.Context,
    proxies: Annotated[int, typer.Option(help="number of proxy processes (N)")] = 3,
    threshold: Annotated[int, typer.Option(help="M of N")] = 2,
    store: Annotated[
        str, typer.Option(help="blob store: 'local' (embedded) or 'ipfs' (a js-ipfs daemon)")
    ] = "local",
) -> None:
    """Start anvil (persisted state), the contracts, the proxies, a store, demo profiles."""
    from emrshare.devnet import DEVNET_PASSWORD, devnet_up

    st = state(ctx)
    status = devnet_up(
        st.data_dir,
        proxies=proxies,
        threshold=threshold,
        store=store,
        log=lambda line: out.print(line, markup=False),
    )
    out.print(
        f"devnet up: chain {status.chain_id} at block {status.block}; profiles "
        f"{', '.join(status.profiles)} (password: $EMRSHARE_PASSWORD or {DEVNET_PASSWORD!r})"
    )


@devnet_app.command("down")
def devnet_down_cmd(
    ctx: typer.Context,
    wipe: Annotated[bool, typer.Option(help="also delete the chain state")] = False,
) -> None:
    """Stop every devnet process (state is kept unless --wipe)."""
    from emrshare.devnet import devnet_down

    stopped = devnet_down(state(ctx).data_dir, wipe=wipe)
    out.print(f"stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")


@devnet_app.command("status")
def devnet_status_cmd(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Which devnet processes run and answer."""
    from emrshare.devnet import devnet_status

    status = devnet_status(state(ctx).data_dir)
    if want_json(ctx, json_out):
        emit_json(
            {
                "running": status.running,
                "rpc_url": status.rpc_url,
                "chain_id": status.chain_id,
                "block": status.block,
                "processes": [
                    {
                        "name": p.name,
                        "pid": p.pid,
                        "alive": p.alive,
                        "healthy": p.healthy,
                        "url": p.url,
                    }
                    for p in status.processes
                ],
                "profiles": status.profiles,
            }
        )
    else:
        table(
            f"devnet ({'running' if status.running else 'not running'})",
            ["process", "pid", "alive", "healthy", "url"],
            [(p.name, p.pid, p.alive, p.healthy, p.url) for p in status.processes],
        )
        if status.block is not None:
            out.print(f"chain {status.chain_id}, block {status.block}")
    if not status.running:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add these commands to the top-level app."""
    app.command()(init)
    app.command()(whoami)
    app.command()(audit)
    app.command()(recover)
    app.add_typer(record_app, name="record")
    app.add_typer(grant_app, name="grant")
    app.add_typer(request_app, name="request")
    app.add_typer(writer_app, name="writer")
    app.add_typer(member_app, name="member")
    app.add_typer(devnet_app, name="devnet")
