"""Issue 18's security list, each shown against the real portal process over loopback
HTTP: a wrong ``Host`` (DNS rebinding) is refused, a login link works once, a session
cookie is HttpOnly/SameSite=Strict/expiring, every answer carries the strict CSP, a POST
without the session's CSRF token or from another origin is refused, and no page holds a
script, an inline style or a secret."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli_support import cli_ok, register_personal_profile
from tests.integration.portal.conftest import PortalSite, as_json

pytestmark = pytest.mark.integration


def _client(site: PortalSite) -> httpx.Client:
    return httpx.Client(base_url=site.base, follow_redirects=False, timeout=30)


@contextlib.contextmanager
def _logged_in(site: PortalSite) -> Iterator[httpx.Client]:
    with _client(site) as c:
        r = c.get(site.fresh_login().removeprefix(site.base))
        assert r.status_code == 303, r.text
        yield c


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _reason(r: httpx.Response) -> str:
    return r.headers.get("x-emrshare-reason", "")


@pytest.mark.parametrize(
    "host",
    ["evil.test:{port}", "127.0.0.1", "127.0.0.1:1", "[::1]:{port}", "", "localhost.:{port}"],
)
def test_a_wrong_host_is_refused(site: PortalSite, host: str) -> None:
    with _client(site) as c:
        r = c.get("/login", params={"token": "x"}, headers={"Host": host.format(port=site.port)})
    assert r.status_code == 421 and _reason(r) == "bad_host"
    assert "Content-Security-Policy" in r.headers  # refusals carry the headers too


def test_a_login_link_works_once(site: PortalSite) -> None:
    link = site.fresh_login().removeprefix(site.base)
    with _client(site) as c:
        first = c.get(link)
        assert first.status_code == 303 and first.headers["location"] == site.url.removeprefix(
            site.origin
        )
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
        # Only under the portal's random path: other servers of 127.0.0.1 never get it.
        path = site.url.removeprefix(site.origin).rstrip("/")
        assert f"Path={path};" in cookie and len(path) > 20
        assert c.get("/").status_code == 200  # the session works
    with _client(site) as other:
        again = other.get(link)
        assert again.status_code == 403 and _reason(again) == "login_token_used"
        assert "set-cookie" not in again.headers
        assert other.get("/").status_code == 401
    with _client(site) as guess:
        bad = guess.get("/login", params={"token": link.split("=")[-1][:-1] + "A"})
        assert bad.status_code == 403 and _reason(bad) in ("bad_login_token", "login_token_used")
        assert _reason(guess.get("/login")) == "bad_login_token"


def test_no_page_without_a_session(site: PortalSite) -> None:
    with _client(site) as c:
        for path in ("/", "/timeline", "/access", "/records", "/requests", "/grants"):
            r = c.get(path)
            assert r.status_code == 401 and _reason(r) == "not_logged_in", path
        c.cookies.set("emrshare_portal", "forged-session-id")
        assert c.get("/").status_code == 401
        dl = c.get(f"/records/{site.record_id}/download")
        assert dl.status_code == 401 and b"Synthetic" not in dl.content


def test_every_page_has_the_csp_and_no_script_or_inline_style(site: PortalSite) -> None:
    with _logged_in(site) as c:
        for path in ("/", "/timeline", "/access", "/records", "/requests", "/grants", "/nope"):
            r = c.get(path)
            assert r.status_code == (404 if path == "/nope" else 200), (path, r.text[:300])
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src" not in csp  # none at all
            assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            body = r.text.lower()
            assert "<script" not in body and " style=" not in body and "<style" not in body
            assert not re.search(r"<[^>]+\son[a-z]+\s*=", body)  # no event handler attribute
            if path != "/nope":
                assert re.search(r"verified against block \d+", r.text), path


def test_the_requester_text_is_escaped(site: PortalSite) -> None:
    with _logged_in(site) as c:
        page = c.get("/requests").text
    assert "claim &lt;b&gt;77&lt;/b&gt;" in page and "<b>77</b>" not in page


def test_a_post_without_the_csrf_token_is_refused(site: PortalSite) -> None:
    grant = _active_grant(site)
    origin = {"Origin": site.origin}
    with _logged_in(site) as c:
        real = _csrf(c.get("/grants").text)
        url = f"/grants/{grant}/revoke"
        for form in ({"other": "1"}, {"csrf": "x" * len(real)}, {"csrf": [real, real]}):
            r = c.post(url, data=form, headers=origin)
            assert r.status_code == 403 and _reason(r) == "bad_csrf_token", form
        # The right token from another origin (another port of 127.0.0.1 is the same site:
        # the cookie is sent) or a cross-site fetch is refused as well.
        for headers in (
            {"Origin": "http://127.0.0.1:9"},
            {"Origin": "null"},
            {"Origin": site.origin, "Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            r = c.post(url, data={"csrf": real}, headers=headers)
            assert r.status_code == 403 and _reason(r) == "cross_site", headers
        r = c.post(url, content=b'{"csrf": "%s"}' % real.encode(), headers=origin)
        assert r.status_code == 415 and _reason(r) == "bad_form"
        r = c.post(url, data={"csrf": real, "pad": "x" * 9000}, headers=origin)
        assert r.status_code == 413
    assert _active_grant(site) == grant  # nothing was revoked


def test_malformed_ids_are_4xx(site: PortalSite) -> None:
    with _logged_in(site) as c:
        real = _csrf(c.get("/grants").text)
        for path in ("/records/zz/download", "/grants/0x12/revoke", "/records/%00/download"):
            r = c.get(path)
            assert 400 <= r.status_code < 500 and _reason(r), path
        r = c.post("/requests/notanumber/deny", data={"csrf": real}, headers={"Origin": site.base})
        assert r.status_code == 400 and _reason(r) == "bad_request"
        r = c.get(f"/grants/{'ab' * 32}/revoke")
        assert r.status_code == 404 and _reason(r) == "not_found"


def test_no_secret_in_any_page(site: PortalSite) -> None:
    from emrshare.roles.profiles import Profiles

    keys = Profiles(site.data).unlock("patient", "devnet")
    secrets = [
        keys.master_secret.hex(),
        keys.to_mnemonic(),
        " ".join(keys.to_mnemonic().split()[:4]),
    ]
    with _logged_in(site) as c:
        pages = [c.get(p).text for p in ("/", "/timeline", "/access", "/records", "/grants")]
        cookie = c.cookies.get("emrshare_portal")
    assert cookie and len(cookie) >= 40
    for text in pages:
        assert not any(s in text for s in secrets)
        assert cookie not in text  # the session id is never on a page (HttpOnly)


def _active_grant(site: PortalSite) -> str:
    grants = as_json(site.data, "--profile", "patient", "grant", "list", "--active")
    mine = [g for g in grants if g["category"] == "lab-results" and g["status"] == "active"]
    assert mine, grants
    return str(mine[0]["policy_id"]).removeprefix("0x")


def test_the_portal_listens_on_loopback_only(site: PortalSite) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{site.port:04X}"
    ours = [line.split() for line in listening if line.split()[1].endswith(":" + port_hex)]
    assert ours and all(f[1] == "0100007F:" + port_hex for f in ours)  # 127.0.0.1 only


def test_nothing_answers_outside_the_random_path(site: PortalSite) -> None:
    with httpx.Client(base_url=site.origin, timeout=30) as c:
        for path in ("/", "/login", "/static/portal.css", "/p/", "/timeline"):
            r = c.get(path)
            assert r.status_code == 404 and _reason(r) == "not_found", path
            assert site.url.removeprefix(site.origin) not in r.text  # the path is not told


def test_two_host_headers_are_refused(site: PortalSite) -> None:
    good = f"127.0.0.1:{site.port}"
    for hosts in ([good, "evil.test"], ["evil.test", good], [good, good]):
        raw = f"GET {site.url.removeprefix(site.origin)}login?token=x HTTP/1.1\r\n"
        raw += "".join(f"Host: {h}\r\n" for h in hosts) + "Connection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", site.port), timeout=30) as s:
            s.sendall(raw.encode())
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        head = answer.split(b"\r\n\r\n")[0].decode().lower()
        assert head.startswith("http/1.1 421") and "x-emrshare-reason: bad_host" in head, hosts


def test_another_site_may_not_even_read(site: PortalSite) -> None:
    with _logged_in(site) as c:
        for fetch_site in ("cross-site", "same-site"):
            headers = {"Sec-Fetch-Site": fetch_site}
            dl = c.get(f"/records/{site.record_id}/download", headers=headers)
            assert dl.status_code == 403 and _reason(dl) == "cross_site"
            assert b"Synthetic" not in dl.content
            page = c.get("/", headers=headers)
            assert page.status_code == 403 and _reason(page) == "cross_site"
        dl = c.get(f"/records/{site.record_id}/download", headers={"Sec-Fetch-Site": "none"})
        assert dl.status_code == 200 and dl.content.startswith(b"Synthetic")
        assert dl.headers["content-type"] == "application/octet-stream"
        assert dl.headers["content-disposition"].startswith("attachment;")
    assert list((site.data / "profiles" / "patient").rglob("portal-*")) == []


def test_an_expiry_past_the_year_9999_shows(site: PortalSite) -> None:
    cli_ok(site.data, "--profile", "patient", "grant", "add", "--to", "pharmacy",
       "--category", "lab", "--expires", "9000y")  # fmt: skip
    listed = as_json(site.data, "--profile", "patient", "grant", "list")
    assert "after 9999-12-31" in {g["expires"] for g in listed}  # the CLI shows it too
    with _logged_in(site) as c:
        for path in ("/", "/access", "/grants"):
            r = c.get(path)
            assert r.status_code == 200 and "after 9999-12-31" in r.text, (path, r.text[:300])


def test_an_approval_takes_one_offered_expiry_only(site: PortalSite) -> None:
    with _logged_in(site) as c:
        real = _csrf(c.get("/requests").text)
        url = f"/requests/{site.request_id}/approve"
        for expires in ([], ["5y"], ["7d", "1y"], ["30d\x00"]):
            r = c.post(
                url, data={"csrf": real, "expires": expires}, headers={"Origin": site.origin}
            )
            assert r.status_code == 400 and _reason(r) == "bad_form", expires
    listed = as_json(site.data, "--profile", "patient", "request", "list")
    assert [q["status"] for q in listed if q["request_id"] == site.request_id] == ["pending"]


def test_a_guardian_action_is_a_new_notification_until_marked_read(site: PortalSite) -> None:
    register_personal_profile(site.data, "mum", 8)
    cli_ok(site.data, "--profile", "patient", "guardian", "add", "mum", "--until", "1y",
           "--category", "lab")  # fmt: skip
    cli_ok(site.data, "--profile", "mum", "guardian", "act", "grant", "--for", "patient",
           "--to", "researcher", "--category", "lab", "--expires", "30d")  # fmt: skip
    with _logged_in(site) as c:
        page = c.get("/").text
        # (mum's profile is newer than the portal: she is shown by her short address)
        assert 'id="unread" data-count="1"' in page and "ran “grant”" in page
        assert 'class="notice guardian new"' in page
        upto = re.search(r'name="upto" value="(\d+)"', page)
        assert upto, page
        form = {"csrf": _csrf(page), "upto": upto.group(1)}
        r = c.post("/notifications/read", data=form, headers={"Origin": site.origin})
        assert r.status_code == 303
        again = c.get("/").text
        assert 'id="unread" data-count="0"' in again and "ran “grant”" in again
        assert "notice guardian new" not in again
        bad = c.post("/notifications/read", data={"csrf": form["csrf"], "upto": "x"},
                     headers={"Origin": site.origin})  # fmt: skip
        assert bad.status_code == 400 and _reason(bad) == "bad_form"
    markers = list((site.data / "profiles" / "patient").rglob("portal_seen.json"))
    assert markers and all((p.stat().st_mode & 0o777) == 0o600 for p in markers)
