"""The portal's web app (FastAPI, pages rendered on the server with Jinja2, plain forms,
no script) and :func:`serve`, which runs it on 127.0.0.1 only.

Every request passes the ``Host`` check first (DNS rebinding); every page but ``/login``
needs a session (the cookie a one-time login link sets); every POST must come from the
portal's own page (``Origin``/``Sec-Fetch-Site``) and carry the session's CSRF token. A
refusal is a 4xx page whose ``X-Emrshare-Reason`` header (and ``data-reason``) names it;
an error a user can cause (an expired request, a grant already revoked) is a 4xx with the
error's message; an unexpected fault is a 503, logged by type and place only.

All the patient's work runs on one thread (:class:`PatientWorker`): the facade's journal
and caches are not shared between threads, and one patient does one thing at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from emrshare import __version__
from emrshare._http import fault_place, read_limited
from emrshare.errors import ChainError, ConfigurationError, EmrShareError, InvalidInput, NotFound
from emrshare.portal import charts
from emrshare.portal._security import (
    COOKIE,
    SECURITY_HEADERS,
    LoginTokens,
    Session,
    Sessions,
    allowed_hosts,
    cookie_header,
    same_origin,
)
from emrshare.portal._views import (
    EXPIRY_CHOICES,
    Names,
    grantees,
    mark_seen,
    overview,
    when,
)
from emrshare.roles import Patient

__all__ = ["Portal", "PatientWorker", "create_app", "serve"]

log = logging.getLogger("emrshare.portal")
T = TypeVar("T")

_HERE = Path(__file__).parent
_MAX_FORM = 8192
_HEX32 = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class Refused(Exception):
    """A request the portal refuses: ``status``, a machine-readable ``reason``, a message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


#: The prefix of the folders a download is decrypted into (in the profile's state dir).
_SPOOL = "portal-"


class PatientWorker:
    """Runs every call on the patient's facade on one thread, which also builds it.

    Downloads are decrypted into ``spool`` (a folder of the profile's state dir, 0700),
    and a file there is unlinked as soon as it is opened to be served; what a killed
    portal left there is removed when the next one starts."""

    def __init__(self, build: Callable[[], Patient]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-patient")
        self.patient: Patient = self._pool.submit(build).result()
        self.spool: Path = self.patient.state_dir
        for left in self.spool.glob(_SPOOL + "*"):
            shutil.rmtree(left, ignore_errors=True)

    async def run(self, fn: Callable[[Patient], T]) -> T:
        """``fn(patient)`` on the patient's thread (no event-loop thread waits for it)."""
        return await asyncio.wrap_future(self._pool.submit(fn, self.patient))

    def close(self) -> None:
        self._pool.submit(self.patient.close).result()
        self._pool.shutdown()


class Portal:
    """The portal's state: the patient's worker, its names, the tokens and sessions."""

    def __init__(
        self,
        worker: PatientWorker,
        port: int,
        *,
        names: Mapping[str, str] | None = None,
        sessions: Sessions | None = None,
        tokens: LoginTokens | None = None,
        patient_name: str = "",
    ) -> None:
        self.worker = worker
        self.port = port
        self.names = Names(names or {})
        self.sessions = sessions or Sessions()
        self.tokens = tokens or LoginTokens()
        self.patient_name = patient_name
        self.hosts = allowed_hosts(port)
        #: Every page is under this random path, and so is the session cookie: a browser
        #: sends a 127.0.0.1 cookie to every port of 127.0.0.1, but only for its path.
        self.prefix = "/p/" + secrets.token_urlsafe(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}/"

    def login_url(self) -> str:
        """A fresh one-time login link."""
        return f"{self.url}login?{urlencode({'token': self.tokens.issue()})}"


def _reason_of(exc: EmrShareError) -> str:
    """``GrantRevoked`` → ``grant_revoked``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def create_app(portal: Portal) -> FastAPI:
    """The ASGI app of ``portal``."""
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    base = portal.prefix
    env.globals.update(when=when, name=portal.names, version=__version__, base=base)
    app = FastAPI(title="emrshare portal", version=__version__, docs_url=None, redoc_url=None)
    app.openapi_url = None
    site = APIRouter(prefix=base)

    def page(template: str, status: int = 200, inside: bool = True, **ctx: Any) -> HTMLResponse:
        """A page; ``inside``: asked for under the random path, so it may name that path
        (else it is a bare page: a DNS-rebinding page can read what it is sent)."""
        html = env.get_template(template).render(
            patient_name=portal.patient_name if inside else "", inside=inside, **ctx
        )
        return HTMLResponse(html, status_code=status)

    def refusal(status: int, reason: str, message: str, inside: bool = True) -> HTMLResponse:
        answer = page("error.html", status, inside, reason=reason, message=message, session=None)
        answer.headers["X-Emrshare-Reason"] = reason
        return answer

    def is_inside(request: Request) -> bool:
        return request.url.path.startswith(base + "/")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        hosts = request.headers.getlist("host")
        fetch_site = request.headers.get("sec-fetch-site")
        if len(hosts) != 1 or hosts[0] not in portal.hosts:
            answer: Response = refusal(
                421,
                "bad_host",
                "this portal answers only at 127.0.0.1 or localhost on its port",
                inside=False,
            )
        elif fetch_site not in (None, "same-origin", "none"):
            # Another page (another port of 127.0.0.1 too) may not even make the portal
            # read: no download, no page, no work queued on the patient's thread.
            answer = refusal(
                403, "cross_site", "a page of another site may not use the portal", inside=False
            )
        else:
            try:
                answer = await call_next(request)
            except Refused as exc:
                answer = refusal(exc.status, exc.reason, exc.message)
            except Exception as exc:  # never a 500, never request data in the log
                log.error("internal error: %s at %s", type(exc).__name__, fault_place(exc))
                answer = refusal(503, "internal_error", "the portal failed internally; see its log")
        answer.headers.update(SECURITY_HEADERS)
        return answer

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return refusal(exc.status_code, reason, str(exc.detail), is_inside(request))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return refusal(400, "bad_request", "a value in the address or form is malformed")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return refusal(exc.status, exc.reason, exc.message)

    @app.exception_handler(EmrShareError)
    async def user_error(request: Request, exc: EmrShareError) -> Response:
        if isinstance(exc, ChainError):
            return refusal(503, "chain_unavailable", f"{exc}; reload the page when it is back")
        status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, InvalidInput) else 409
        return refusal(status, _reason_of(exc), str(exc))

    def session_of(request: Request) -> Session:
        s = portal.sessions.get(request.cookies.get(COOKIE))
        if s is None:
            raise Refused(
                401,
                "not_logged_in",
                "open the login link `emrshare portal` printed (press Enter in its terminal "
                "for a new one)",
            )
        return s

    async def form_of(request: Request) -> tuple[Session, dict[str, list[str]]]:
        """The session and the fields of a POST from the portal's own page."""
        s = session_of(request)
        if not same_origin(
            request.headers.get("origin"), request.headers.get("sec-fetch-site"), portal.port
        ):
            raise Refused(403, "cross_site", "a form from another site may not act here")
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            raise Refused(415, "bad_form", "the portal takes its own forms only")
        try:
            body = await read_limited(request, _MAX_FORM)
        except ClientDisconnect:
            raise Refused(400, "bad_form", "the browser left mid-form") from None
        if body is None:
            raise Refused(413, "bad_form", f"a form is at most {_MAX_FORM} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "bad_form", "the form is not valid UTF-8") from None
        try:
            fields = parse_qs(text, max_num_fields=20)
        except ValueError:
            raise Refused(400, "bad_form", "the form has more fields than the portal's") from None
        if not s.csrf_ok(fields.get("csrf", [])):
            raise Refused(403, "bad_csrf_token", "the form's token is stale; reload the page")
        return s, fields

    def done(s: Session, where: str, message: str) -> RedirectResponse:
        s.flash = message
        return RedirectResponse(base + where, status_code=303)

    async def checked(fn: Callable[[Patient], T]) -> tuple[int, T]:
        """``fn(patient)`` after the index was verified whole at the newest confirmed block
        (the page's "verified against block N")."""
        return await portal.worker.run(lambda p: (p.verify(), fn(p)))

    def shown(s: Session, block: int) -> dict[str, Any]:
        flash, s.flash = s.flash, ""
        return {"session": s, "flash": flash, "block": block}

    def hex32(value: str, what: str) -> str:
        if not _HEX32.fullmatch(value):
            raise Refused(400, "bad_request", f"{what} is 32 bytes of hex")
        return value.removeprefix("0x").lower()

    @site.get("/static/portal.css")
    async def css() -> Response:
        return FileResponse(_HERE / "static" / "portal.css", media_type="text/css")

    @site.get("/login")
    async def login(token: str = "") -> Response:
        state = portal.tokens.redeem(token)
        if state != "ok":
            reason, message = {
                "used": ("login_token_used", "this login link was used already"),
                "expired": ("login_token_expired", "this login link has expired"),
            }.get(state, ("bad_login_token", "this login link is not valid"))
            raise Refused(
                403, reason, f"{message}; press Enter where `emrshare portal` runs for a new one"
            )
        s = portal.sessions.start()
        answer = RedirectResponse(base + "/", status_code=303)
        answer.headers["Set-Cookie"] = cookie_header(s.session_id, int(portal.sessions.limit), base)
        return answer

    @site.post("/logout")
    async def logout(request: Request) -> Response:
        s, _ = await form_of(request)
        portal.sessions.end(s)
        answer = page("error.html", 200, reason="logged_out", message="logged out", session=None)
        answer.headers["Set-Cookie"] = cookie_header("", 0, base)
        return answer

    @site.get("/")
    async def home(request: Request) -> Response:
        s = session_of(request)
        block, view = await checked(lambda p: overview(p, portal.names))
        return page("overview.html", view=view, **shown(s, block))

    @site.post("/notifications/read")
    async def notifications_read(request: Request) -> Response:
        s, fields = await form_of(request)
        upto = fields.get("upto", [])
        if len(upto) != 1 or not upto[0].isdigit() or len(upto[0]) > 20:
            raise Refused(400, "bad_form", "the form names no block")
        block = int(upto[0])
        await portal.worker.run(lambda p: mark_seen(p.state_dir, block))
        return done(s, "/", "notifications marked as read")

    @site.get("/timeline")
    async def timeline(request: Request, grantee: str = "", category: str = "") -> Response:
        s = session_of(request)

        def read(p: Patient) -> tuple[Any, Any]:
            return p.audit(), p.grants()

        block, (reads, grants) = await checked(read)
        picked = charts.filter_reads(reads, grantee=grantee or None, category=category or None)
        svg = charts.timeline_svg(picked, names=portal.names.by_checksum)
        cats = sorted({r.category for r in reads if r.category})
        return page(
            "timeline.html",
            svg=Markup(svg),  # noqa: S704 - drawn by charts, which escapes every text
            reads=picked,
            grantees=grantees(grants),
            categories=cats,
            grantee=grantee,
            category=category,
            **shown(s, block),
        )

    @site.get("/access")
    async def access(request: Request) -> Response:
        s = session_of(request)
        block, grants = await checked(lambda p: p.grants())
        svg = charts.access_map_svg(grants, names=portal.names.by_checksum)
        return page(
            "access.html",
            svg=Markup(svg),  # noqa: S704 - drawn by charts, which escapes every text
            now=[g for g in grants if g.active],
            past=[g for g in grants if not g.active],
            **shown(s, block),
        )

    @site.get("/records")
    async def records(request: Request, category: str = "") -> Response:
        s = session_of(request)
        block, rows = await checked(lambda p: p.records(category or None))
        return page("records.html", records=rows, category=category, **shown(s, block))

    @site.get("/records/{record}/download")
    async def download(request: Request, record: str) -> Response:
        session_of(request)
        rid = hex32(record, "a record id")
        where = Path(tempfile.mkdtemp(prefix=_SPOOL, dir=portal.worker.spool))
        out = where / "record"

        def fetch(p: Patient) -> int:
            return p.read_to(rid, out)  # written once verified (CID, AEAD, digest, size)

        try:
            await portal.worker.run(fetch)
            opened = out.open("rb")
        finally:  # the plaintext lives on only as the open file, gone when it is closed
            shutil.rmtree(where, ignore_errors=True)

        def chunks() -> Any:
            with opened:
                while piece := opened.read(1 << 20):
                    yield piece

        return StreamingResponse(
            chunks(),
            media_type="application/octet-stream",  # never rendered by the browser
            headers={
                "Content-Disposition": f'attachment; filename="record-{rid[:12]}.bin"',
                "Content-Length": str(os.fstat(opened.fileno()).st_size),
            },
        )

    @site.get("/requests")
    async def requests(request: Request) -> Response:
        s = session_of(request)
        block, rows = await checked(lambda p: p.requests())
        return page("requests.html", requests=rows, expiries=EXPIRY_CHOICES, **shown(s, block))

    @site.post("/requests/{request_id}/approve")
    async def approve(request: Request, request_id: int) -> Response:
        s, fields = await form_of(request)
        choice = fields.get("expires", [])
        if len(choice) != 1 or choice[0] not in EXPIRY_CHOICES:
            raise Refused(400, "bad_form", "pick one of the offered expiries")
        expires = EXPIRY_CHOICES[choice[0]][1]
        grant = await portal.worker.run(lambda p: p.approve(request_id, expires=expires))
        return done(
            s,
            "/requests",
            f"approved request {request_id}: {portal.names(grant.grantee)} may read "
            f"{grant.category} until {when(grant.expiry)}",
        )

    @site.post("/requests/{request_id}/deny")
    async def deny(request: Request, request_id: int) -> Response:
        s, _ = await form_of(request)
        await portal.worker.run(lambda p: p.deny(request_id))
        return done(s, "/requests", f"denied request {request_id}")

    @site.get("/grants")
    async def grants(request: Request) -> Response:
        s = session_of(request)
        block, rows = await checked(lambda p: p.grants())
        return page("grants.html", grants=rows, **shown(s, block))

    @site.get("/grants/{policy}/revoke")
    async def confirm_revoke(request: Request, policy: str) -> Response:
        s = session_of(request)
        pid = hex32(policy, "a grant id")
        block, rows = await checked(lambda p: p.grants())
        grant = next((g for g in rows if bytes(g.policy_id).hex() == pid), None)
        if grant is None:
            raise Refused(404, "not_found", "no grant of yours has that id")
        return page("revoke.html", grant=grant, **shown(s, block))

    @site.post("/grants/{policy}/revoke")
    async def revoke(request: Request, policy: str) -> Response:
        s, _ = await form_of(request)
        pid = hex32(policy, "a grant id")
        await portal.worker.run(lambda p: p.revoke(pid))
        return done(s, "/grants", f"revoked grant 0x{pid[:12]}…; the category moved to a new key")

    app.include_router(site)
    return app


def listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` (0: any free port); never another address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port"
        ) from None
    sock.listen(64)
    return sock


def serve(portal: Portal, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Run the portal on ``sock`` until SIGINT/SIGTERM (no access log: URLs carry tokens)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(portal),
        log_level=log_level,
        access_log=False,
        proxy_headers=False,  # every client is 127.0.0.1: no X-Forwarded-* is believed
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
