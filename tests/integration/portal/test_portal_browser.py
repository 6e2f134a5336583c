"""The portal in a real browser (Debian's chromium, headless, via Selenium): log in with
the printed link, see the overview, the timeline and the access map drawn from the chain,
download a record decrypted locally, approve a request and revoke a grant, each checked
afterwards through the CLI (another process reading the chain); a cross-site form on
another loopback port and a DNS-rebinding name are refused in the browser itself."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.integration.portal.conftest import LAB, PortalSite, as_json

pytestmark = pytest.mark.integration


def _by(css: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def _found(browser: Any, css: str) -> list[Any]:
    """The elements ``css`` selects once the page shows one (a navigation can still be
    replacing the last page when ``get`` or ``click`` returns), or none after 20 s."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        found: list[Any] = WebDriverWait(browser, 20).until(
            expected_conditions.presence_of_all_elements_located(_by(css))
        )
    except TimeoutException:
        return []
    return found


def _text(browser: Any, css: str) -> str:
    found = _found(browser, css)
    assert found, f"no {css} on {browser.current_url}: {browser.find_element(*_by('main')).text}"
    return str(found[0].text)


def _reason(browser: Any) -> str:
    """The refusal page's machine-readable reason."""
    found = _found(browser, "#error")
    assert found, f"no refusal on {browser.current_url}: {browser.page_source[:500]}"
    return str(found[0].get_attribute("data-reason"))


@pytest.fixture(scope="module")
def logged_in(site: PortalSite, browser: Any) -> Any:
    browser.get(site.login_url)  # the link `emrshare portal` printed first
    assert browser.current_url == site.base + "/"
    return browser


def test_overview_shows_counts_grants_requests_and_the_block(
    site: PortalSite, logged_in: Any
) -> None:
    b = logged_in
    b.get(site.base + "/")
    assert _text(b, '#categories tr[data-category="lab-results"] .count') == "1"
    assert "hospital-b" in _text(b, "#active-grants")
    assert _found(b, "#pending")[0].get_attribute("data-count") == "1"
    block = int(_found(b, "#verified")[0].get_attribute("data-block"))
    head = as_json(site.data, "devnet", "status")
    assert 0 < block <= int(head["block"])
    # The session cookie is not readable by a page (HttpOnly): the browser says so.
    cookie = b.get_cookie("emrshare_portal")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and "expiry" in cookie


def test_timeline_draws_each_read_and_filters(site: PortalSite, logged_in: Any) -> None:
    b = logged_in
    b.get(site.base + "/timeline")
    marks = _found(b, "#timeline svg .read")
    trail = as_json(site.data, "--profile", "patient", "audit")
    assert len(marks) == len(trail) >= 1
    assert {m.get_attribute("data-category") for m in marks} == {"lab-results"}
    assert "hospital-b" in _text(b, "#reads")
    b.get(site.base + "/timeline?category=imaging")
    assert _found(b, '#timeline[data-category="imaging"]')  # the filtered page is shown
    assert b.find_elements(*_by("#timeline svg .read")) == []
    assert "no reads logged" in _text(b, "#reads")


def test_access_map_shows_who_can_read_now(site: PortalSite, logged_in: Any) -> None:
    b = logged_in
    b.get(site.base + "/access")
    now = _found(b, "#access-map svg .edge.now")
    assert [e.get_attribute("data-category") for e in now] == ["lab-results"]
    assert "hospital-b" in _text(b, "#now")


def test_a_record_downloads_decrypted(site: PortalSite, logged_in: Any) -> None:
    b = logged_in
    b.get(site.base + "/records")
    rows = _found(b, "#records tr.record")
    assert [r.get_attribute("data-record") for r in rows] == [site.record_id.removeprefix("0x")]
    rows[0].find_element(*_by("a.download")).click()
    deadline = time.monotonic() + 30
    got: list[Any] = []
    while time.monotonic() < deadline and not got:
        got = [
            p
            for p in b.downloads.iterdir()
            if not p.name.startswith(".") and not p.name.endswith(".crdownload")
        ]
        time.sleep(0.2)
    assert len(got) == 1 and got[0].read_bytes() == LAB
    leftovers = list((site.data / "profiles" / "patient").rglob("portal-*"))
    assert leftovers == []  # the decrypted copy served is deleted after the download


def test_approve_a_request_with_an_expiry(site: PortalSite, logged_in: Any) -> None:
    from selenium.webdriver.support.ui import Select

    b = logged_in
    b.get(site.base + "/requests")
    row = _found(b, f'tr.request[data-request="{site.request_id}"]')[0]
    Select(row.find_element(*_by("select[name=expires]"))).select_by_value("7d")
    row.find_element(*_by("button.approve")).click()
    assert "approved request" in _text(b, "#flash") and "insurer" in _text(b, "#flash")
    listed = as_json(site.data, "--profile", "patient", "request", "list")
    mine = [r for r in listed if int(r["request_id"]) == site.request_id]
    assert mine and mine[0]["status"] == "approved"
    grants = as_json(site.data, "--profile", "patient", "grant", "list", "--active")
    insurer = as_json(site.data, "--profile", "insurer", "whoami")["address"]
    lasting = [g for g in grants if g["grantee"] == insurer]
    assert lasting, grants
    # 7 days from now, give or take the blocks mined meanwhile.
    assert all(abs(_expiry(g) - time.time() - 7 * 86400) < 3600 for g in lasting)


def _expiry(g: dict[str, Any]) -> float:
    from datetime import datetime

    value = g.get("expiry", g.get("expires"))
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another loopback port whose form posts to the portal: a test double of a
    hostile site, serving fixed HTML only."""

    target = ""
    cookies: ClassVar[list[str]] = []  # the Cookie headers the browser sent this server

    def do_GET(self) -> None:
        self.cookies.append(self.headers.get("Cookie", ""))
        body = (
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="csrf" value="guessed"><button id="go">win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_site_form_is_refused(
    site: PortalSite, logged_in: Any, attacker: http.server.HTTPServer
) -> None:
    grants = as_json(site.data, "--profile", "patient", "grant", "list", "--active")
    lab = next(g for g in grants if g["category"] == "lab-results")
    pid = str(lab["policy_id"]).removeprefix("0x")
    _Attacker.target = f"{site.base}/grants/{pid}/revoke"
    b = logged_in
    b.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
    # A browser sends 127.0.0.1's cookies to every port of it: not the portal's, which is
    # only for the portal's random path.
    assert _Attacker.cookies and not any("emrshare_portal" in c for c in _Attacker.cookies)
    b.find_element(*_by("#go")).click()
    assert _reason(b) == "cross_site"
    still = as_json(site.data, "--profile", "patient", "grant", "list", "--active")
    assert pid in {str(g["policy_id"]).removeprefix("0x") for g in still}


def test_a_rebound_name_is_refused(site: PortalSite, logged_in: Any) -> None:
    b = logged_in
    b.get(f"http://evil.test:{site.port}/")  # resolves to 127.0.0.1 (the browser's rule)
    assert _reason(b) == "bad_host"
    assert "hospital-b" not in b.page_source


def test_revoke_says_what_it_cannot_take_back(site: PortalSite, logged_in: Any) -> None:
    b = logged_in
    b.get(site.base + "/grants")
    row = next(
        r
        for r in _found(b, "#grants tr.grant")
        if "hospital-b" in r.text and r.get_attribute("data-status") == "active"
    )
    pid = row.get_attribute("data-policy")
    row.find_element(*_by("a.revoke")).click()
    warning = _text(b, "#revoke-warning")
    assert "cannot take back" in warning and "hospital-b" in warning
    b.find_element(*_by("#confirm-revoke")).click()
    assert "revoked grant" in _text(b, "#flash")
    active = as_json(site.data, "--profile", "patient", "grant", "list", "--active")
    assert pid not in {str(g["policy_id"]).removeprefix("0x") for g in active}
    b.get(site.base + "/access")
    past = _found(b, "#access-map svg .edge.past")
    assert any(e.get_attribute("data-grantee") for e in past)
