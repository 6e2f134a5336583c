"""The portal's defences: single-use login tokens, expiring sessions with a CSRF token
each, the ``Host`` check against DNS rebinding, and the response headers (a strict
Content-Security-Policy: no script at all, styles from the portal's own file only).

Everything here is in memory: restarting ``emrshare portal`` ends every session.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "COOKIE",
    "CSP",
    "SECURITY_HEADERS",
    "LoginTokens",
    "Session",
    "Sessions",
    "allowed_hosts",
    "cookie_header",
    "same_origin",
]

#: The session cookie's name.
COOKIE = "emrshare_portal"

#: No script, no plugin, no frame, no inline style; styles and images from the portal only;
#: forms post back to the portal only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

#: Headers on every answer (pages, errors, downloads).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on
    # the portal's own form posts, which the origin check must refuse.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def allowed_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values the portal answers: its loopback address and ``localhost`` on
    its port. A DNS-rebinding page reaches 127.0.0.1 under its own name, so its requests
    carry that name and are refused."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})


def same_origin(origin: str | None, fetch_site: str | None, port: int) -> bool:
    """Whether a state-changing request comes from the portal's own pages: its ``Origin``
    (sent by browsers on every POST) names the portal, and ``Sec-Fetch-Site`` (when sent)
    is ``same-origin``. A cookie alone proves nothing: another port of 127.0.0.1 is the
    same *site*, so ``SameSite=Strict`` still sends it."""
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    if origin is None:  # no browser omits it on a POST; a script that does has no cookie
        return fetch_site == "same-origin"
    return origin in {f"http://{h}" for h in allowed_hosts(port)}


def cookie_header(session_id: str, max_age: int, path: str) -> str:
    """The ``Set-Cookie`` value of a session: not readable by script, never sent by a
    request another site starts, gone after ``max_age`` seconds, and sent only under the
    portal's random ``path`` (a 127.0.0.1 cookie goes to every port of 127.0.0.1)."""
    return f"{COOKIE}={session_id}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict"


def _eq(a: str, b: str) -> bool:
    """Constant-time equality of two strings (any text a client sends)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


class LoginTokens:
    """One-time login tokens: :meth:`issue` a token (printed in the portal's URL),
    :meth:`redeem` it once. A token redeemed, expired or never issued is refused; each
    refusal says which, without telling a guesser anything it could use."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, float] = {}  # token -> expiry
        self._used: set[str] = set()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            for old in [t for t, expiry in self._live.items() if expiry <= now]:
                del self._live[old]  # refused as unknown from now on: as good as expired
            self._live[token] = now + self._ttl
        return token

    def redeem(self, token: str) -> str:
        """``"ok"`` (the token is now spent), ``"used"``, ``"expired"`` or ``"unknown"``."""
        with self._lock:
            for known in list(self._live) + list(self._used):
                if _eq(known, token):
                    token = known
                    break
            else:
                return "unknown"
            if token in self._used:
                return "used"
            expiry = self._live.pop(token)
            self._used.add(token)
            return "ok" if self._clock() < expiry else "expired"


@dataclass(slots=True)
class Session:
    """One logged-in browser: its id (the cookie), its CSRF token (in every form) and
    when it ends (idle timeout, and an absolute limit)."""

    session_id: str = field(repr=False)
    csrf: str = field(repr=False)
    idle_until: float
    ends_at: float
    #: A message for the next page shown (what the last form did).
    flash: str = ""

    def csrf_ok(self, sent: Iterable[str]) -> bool:
        """Whether a form carried exactly this session's CSRF token."""
        got = list(sent)
        return len(got) == 1 and _eq(got[0], self.csrf)


class Sessions:
    """The logged-in sessions: ``idle`` seconds without a request end one, and none lasts
    more than ``limit`` seconds."""

    def __init__(
        self,
        idle: float = 1800.0,
        limit: float = 12 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def start(self) -> Session:
        now = self._clock()
        s = Session(
            session_id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            idle_until=now + self.idle,
            ends_at=now + self.limit,
        )
        with self._lock:
            self._by_id[s.session_id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie (its idle time restarts), or ``None``."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            for sid in [k for k, v in self._by_id.items() if min(v.idle_until, v.ends_at) <= now]:
                del self._by_id[sid]
            found = next((v for k, v in self._by_id.items() if _eq(k, session_id)), None)
            if found is not None:
                found.idle_until = now + self.idle
            return found

    def end(self, session: Session) -> None:
        with self._lock:
            self._by_id.pop(session.session_id, None)
