"""``portal``: the patient's local web portal (:mod:`emrshare.portal`)."""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli._context import JsonOpt, err, known_names, out, state, want_json

if TYPE_CHECKING:
    from emrshare.portal.app import Portal


def portal(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")
    ] = 8700,
    session_minutes: Annotated[
        int, typer.Option(min=1, max=24 * 60, help="a session ends after this many idle minutes")
    ] = 30,
    json_out: JsonOpt = False,
) -> None:
    """Start the patient's portal on 127.0.0.1 (never another address), until Ctrl-C.

    It opens the profile's keystore (password prompt, or EMRSHARE_PASSWORD) and prints
    the portal's address with a one-time login link; press Enter in this terminal for a
    new link. The pages show what the chain says, verified: categories and record counts,
    who read what and when (a timeline), who can read what (an access map), your records
    (downloads decrypted here), requests to answer and grants to revoke. ``--json``: one
    line ``{"url", "login_url", "port"}``.
    """
    from emrshare.portal._security import Sessions
    from emrshare.portal.app import PatientWorker, Portal, listen, serve

    st = state(ctx)
    st.keys()  # a wrong password fails here, before anything listens
    worker = PatientWorker(st.new_patient)  # built on, and used from, one thread
    sock = None
    try:
        sock = listen(port)
        site = Portal(
            worker,
            sock.getsockname()[1],
            names=known_names(),
            sessions=Sessions(idle=session_minutes * 60.0),
            patient_name=st.profile_name,
        )
        if want_json(ctx, json_out):
            _line({"url": site.url, "login_url": site.login_url(), "port": site.port})
        else:
            out.print(f"emrshare portal for {st.profile_name} at {site.url}", markup=False)
            out.print(f"open this one-time login link: {site.login_url()}", markup=False)
            err.print("press Enter for a new login link, Ctrl-C to stop", markup=False)
        sys.stdout.flush()
        links = threading.Thread(target=_new_links, args=(site, want_json(ctx, json_out)))
        links.daemon = True
        links.start()
        serve(site, sock)
    finally:
        if sock is not None:
            sock.close()
        worker.close()


def _line(value: dict[str, object]) -> None:
    """One JSON object on one line (a caller reads the portal's output line by line)."""
    print(json.dumps(value), flush=True)


def _new_links(site: Portal, as_json: bool) -> None:
    """Print a fresh login link for each line read (Enter pressed) until stdin ends."""
    for _ in sys.stdin:
        if as_json:
            _line({"login_url": site.login_url()})
        else:
            out.print(f"new one-time login link: {site.login_url()}", markup=False)
        sys.stdout.flush()
