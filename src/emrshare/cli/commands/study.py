"""``study list|show|join|leave|points`` (patients), ``study publish|release|datasets|open|
close`` (researchers) and ``research serve`` (a member's de-identification service):
research cohorts (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.roles._research import DatasetInfo, StudyInfo

app = typer.Typer(no_args_is_help=True, help="Research studies: join, leave, publish, release.")
research_app = typer.Typer(no_args_is_help=True, help="Run a study de-identification service.")

StudyArg = Annotated[str, typer.Argument(help="the study id (0x-hex)")]


def say(text: str) -> None:
    """One line for people, printed as it is (no Rich markup: ids and needs are data)."""
    out.print(text, markup=False)


def _json(s: StudyInfo) -> dict[str, Any]:
    return {
        "study": "0x" + s.study_id.hex(),
        "researcher": s.researcher,
        "service": s.service,
        "needs": list(s.needs),
        "ends_at": s.ends_at,
        "status": s.status.value,
        "participants": s.participants,
        "releases": s.releases,
        "joined": s.joined,
        "points": s.points,
    }


def _line(s: StudyInfo) -> str:
    mine = ""
    if s.joined is not None:
        mine = f", {'joined' if s.joined else 'not joined'}, {s.points} point(s)"
    return safe(
        f"0x{s.study_id.hex()[:12]}  needs {', '.join(s.needs)}; {s.status.value} until "
        f"{render.when(s.ends_at)}; {s.participants} participant(s), {s.releases} "
        f"release(s){mine}"
    )


def _dataset_json(d: DatasetInfo) -> dict[str, Any]:
    return {
        "study": "0x" + d.study_id.hex(),
        "release": d.release,
        "cid": d.cid,
        "sha256": d.digest.hex(),
        "participants": d.participants,
        "resources": d.resources,
        "block": d.block_number,
    }


@app.command("list")
def study_list(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="only studies taking joins")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The published studies; for a patient, whether it joined each and its points."""
    st = state(ctx)
    if st.is_patient():
        found = st.patient().studies.list(open_only=open_only)
    else:
        found = [s for s in st.provider().research.studies() if s.open or not open_only]
    if want_json(ctx, json_out):
        emit_json([_json(s) for s in found])
        return
    for s in found:
        say(_line(s))
    if not found:
        say("no study is published" + (" and open" if open_only else ""))


@app.command("show")
def study_show(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """One study: its needs, service, end, participants and releases."""
    st = state(ctx)
    s = st.patient().studies.show(study) if st.is_patient() else st.provider().research.show(study)
    if want_json(ctx, json_out):
        emit_json(_json(s))
    else:
        say(_line(s))
        say(f"researcher {s.researcher}, de-identification service {s.service}")


@app.command("join")
def study_join(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """Join a study: grant its de-identification service (not the researcher) the
    categories it needs until it ends."""
    st = state(ctx)
    s = st.patient().studies.join(study, progress=None if want_json(ctx, json_out) else say)
    if want_json(ctx, json_out):
        emit_json(_json(s))
    else:
        say(f"joined study 0x{s.study_id.hex()[:12]}… as a participant key of its own")
        say("what a release gives the researcher cannot be taken back; leaving stops later ones")


@app.command("leave")
def study_leave(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """Leave a study: revoke its grants; later releases leave you out."""
    st = state(ctx)
    left = st.patient().studies.leave(study)
    if want_json(ctx, json_out):
        emit_json(
            {
                "study": "0x" + left.study_id.hex(),
                "revoked": ["0x" + bytes(p).hex() for p in left.revoked],
                "left_on_chain": left.left_on_chain,
            }
        )
        return
    say(f"revoked {len(left.revoked)} grant(s) of study 0x{left.study_id.hex()[:12]}…")
    if not left.left_on_chain:
        say("the study's service was unreachable: run `study leave` again to record it on chain")
    say("datasets already released stay with the researcher; later ones leave you out")


@app.command("points")
def study_points(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """Your incentive points in a study (a counter, no currency)."""
    points = state(ctx).patient().studies.points(study)
    if want_json(ctx, json_out):
        emit_json({"study": study, "points": points})
    else:
        say(f"{points} point(s)")


@app.command("publish")
def study_publish(
    ctx: typer.Context,
    protocol: Annotated[
        Path, typer.Argument(help="the protocol document (its SHA-256 goes on chain)")
    ],
    needs: Annotated[
        str, typer.Option(metavar="LIST", help="categories or FHIR types, comma-separated")
    ],
    service: Annotated[str, typer.Option(metavar="ADDRESS", help="the de-identification service")],
    ethics: Annotated[str, typer.Option(metavar="REF", help="the ethics approval reference")],
    ends_in: Annotated[str, typer.Option(metavar="DURATION", help="e.g. 180d")] = "180d",
    profile: Annotated[
        str, typer.Option(metavar="NAME", help="de-identification profile")
    ] = "hipaa-safe-harbor-shifted/1",
    json_out: JsonOpt = False,
) -> None:
    """Publish a study (a Researcher member)."""
    from emrshare.cli._parse import option, parse_duration

    st = state(ctx)
    span = option(parse_duration, ends_in, "--ends-in")
    try:
        document = protocol.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {protocol}: {exc.strerror}") from None
    names = [n.strip() for n in needs.split(",") if n.strip()]
    s = st.provider().research.publish(
        document,
        names,
        ends=span,
        service=st.profiles.resolve(service),
        ethics=ethics,
        profile=profile,
    )
    if want_json(ctx, json_out):
        emit_json(_json(s))
    else:
        say(f"published study 0x{s.study_id.hex()}")
        say(_line(s))


@app.command("release")
def study_release(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """Ask the study's service for a de-identified release now (its researcher)."""
    d = state(ctx).provider().research.request_release(study)
    if want_json(ctx, json_out):
        emit_json(_dataset_json(d))
    else:
        say(
            f"release {d.release}: {d.resources} resource(s) of {d.participants} "
            f"participant(s) at {d.cid}"
        )


@app.command("datasets")
def study_datasets(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """The datasets released for a study."""
    found = state(ctx).provider().research.datasets(study)
    if want_json(ctx, json_out):
        emit_json([_dataset_json(d) for d in found])
        return
    for d in found:
        say(f"release {d.release}: {d.resources} resource(s) of {d.participants}, {d.cid}")
    if not found:
        say("no dataset was released yet")


@app.command("open")
def study_open(
    ctx: typer.Context,
    study: StudyArg,
    to: Annotated[Path, typer.Option("--out", metavar="FILE", help="write NDJSON here")],
    release: Annotated[int | None, typer.Option(metavar="N", help="default: the latest")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch, verify and decrypt a released dataset to an NDJSON file (the researcher)."""
    from emrshare._files import write_atomically

    data = state(ctx).provider().research.open_dataset(study, release)
    lines = [json.dumps(r, sort_keys=True) for r in data.resources]
    write_atomically(to, "".join(line + "\n" for line in lines))
    if want_json(ctx, json_out):
        emit_json({**_dataset_json(data.info), "profile": data.profile, "out": str(to)})
        return
    say(f"wrote {len(lines)} de-identified resource(s) of release {data.info.release} to {to}")


@app.command("close")
def study_close(ctx: typer.Context, study: StudyArg, json_out: JsonOpt = False) -> None:
    """Close a study early (its researcher): no join or release after."""
    s = state(ctx).provider().research.close(study)
    if want_json(ctx, json_out):
        emit_json(_json(s))
        return
    say(f"study 0x{s.study_id.hex()[:12]}… is {s.status.value}")


@research_app.command("serve")
def research_serve(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(metavar="PORT", min=1024, max=65535, help="listen on 127.0.0.1:PORT")
    ] = 7801,
    points: Annotated[
        int, typer.Option(metavar="N", min=0, max=2**32 - 1, help="points per release")
    ] = 10,
) -> None:
    """Run this member's de-identification service for the studies naming it."""
    from emrshare.research import DeidService, serve

    st = state(ctx)
    member = st.provider()
    service = DeidService(
        st.network(),
        member.keys,
        st.profile().state_dir / "deid-service",
        points_per_release=points,
    )
    serve(service, host="127.0.0.1", port=port)
