"""The audit timeline and the access map (issue 18): SVG that parses, one mark per read,
hostile names and categories escaped, no inline style or script, active and past edges,
the PNG and the standalone HTML. Synthetic reads and grants only."""

from __future__ import annotations

import re
import stat
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from emrshare.chain import GrantStatus
from emrshare.errors import UnknownCategory
from emrshare.portal.charts import (
    access_map_svg,
    filter_reads,
    timeline_html,
    timeline_png,
    timeline_svg,
)
from emrshare.roles import GrantInfo, ReadEvent
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
A = Address("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65")
B = Address("0x90F79bf6EB2c4f870365E785982E1f101E93b906")
PROXY_1 = Address("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc")
PROXY_2 = Address("0x976EA74026E726554dB657fA54763abd0C3a0aa9")
T0 = 1_740_000_000  # 2025-02-19T21:20:00Z
HOSTILE = "<script>alert('x')</script> & \"co\""


def read(
    who: Address = A,
    category: str | None = "lab-results",
    count: int = 1,
    at: int = T0,
    *,
    proxies: tuple[Address, ...] = (PROXY_1, PROXY_2),
    block: int = 100,
    nonce: int = 1,
) -> ReadEvent:
    return ReadEvent(
        policy_id=PolicyId(bytes([nonce % 256]) * 32),
        requester=who,
        category=category,
        record_ids=tuple(RecordId(bytes([i + 1]) * 32) for i in range(count)),
        proxies=proxies,
        threshold=2,
        nonce=nonce,
        evaluated_at_block=block,
        evaluated_time=at,
        block_number=block,
        timestamp=at,
        accesses=(),
    )


def grant(
    who: Address, category: str | None, status: GrantStatus, expiry: int = T0 + 86400
) -> GrantInfo:
    return GrantInfo(
        policy_id=PolicyId(bytes(32)),
        patient=PROXY_1,
        grantee=who,
        category=category,
        epoch=0,
        tag=CategoryTag(bytes(32)),
        expiry=expiry,
        threshold=2,
        proxies=(PROXY_1, PROXY_2),
        status=status,
        block_number=50,
    )


TRAIL = [
    read(A, "lab-results", 1, T0, nonce=1),
    read(A, "imaging", 12, T0 + 3600, nonce=2),
    read(B, "lab-results", 3, T0 + 7200, nonce=3, proxies=(PROXY_1,)),
    read(B, None, 2, T0 + 86400 * 3, nonce=4),
    read(A, "lab-results", 1, T0 + 86400 * 3, nonce=5),
]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img" and root.get("aria-label")
    assert root.get("viewBox", "").startswith("0 0 ")
    return root


def marks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}circle") if e.get("class") == "read"]


def assert_csp_safe(root: ET.Element) -> None:
    """No ``style`` attribute, no ``<style>`` or ``<script>`` and no event handler."""
    for e in root.iter():
        assert e.tag not in (f"{SVG}style", f"{SVG}script", "style", "script"), e.tag
        assert "style" not in e.attrib, e.attrib
        assert not any(k.startswith("on") for k in e.attrib), e.attrib


def test_timeline_has_one_mark_per_read_in_its_grantees_lane() -> None:
    root = parse(timeline_svg(TRAIL, names={A: "hospital-b"}))
    shown = marks(root)
    assert len(shown) == len(TRAIL)
    assert Counter(m.get("data-grantee") for m in shown) == {A: 3, B: 2}
    assert Counter(m.get("data-category") for m in shown) == {
        "lab-results": 3,
        "imaging": 1,
        "unknown category": 1,
    }
    assert sorted(int(m.get("data-count", "")) for m in shown) == [1, 1, 2, 3, 12]
    # Bigger reads have bigger marks.
    radius = {int(m.get("data-count", "")): float(m.get("r", "")) for m in shown}
    assert radius[1] < radius[3] < radius[12]
    # Marks of one lane share its y; the two lanes differ; later reads lie further right.
    lanes = {g.get("data-grantee"): g for g in root.iter(f"{SVG}g") if g.get("class") == "lane"}
    assert set(lanes) == {A, B}
    ys = {g: {m.get("cy") for m in marks(lane)} for g, lane in lanes.items()}
    assert len(ys[A]) == len(ys[B]) == 1 and ys[A] != ys[B]
    xs = [float(m.get("cx", "")) for m in marks(lanes[A])]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    text = "".join(root.itertext())
    assert "hospital-b" in text and "0x90F7…b906" in text  # a name, else the short address
    assert_csp_safe(root)


def test_timeline_tooltip_says_who_what_when_and_which_proxies() -> None:
    root = parse(timeline_svg(TRAIL, names={A: "hospital-b", PROXY_1: "proxy-one"}))
    big = next(m for m in marks(root) if m.get("data-count") == "12")
    tip = big.findtext(f"{SVG}title") or ""
    assert "hospital-b 0x15d3…6A65" in tip and "category: imaging" in tip
    assert "12 records read" in tip and "2025-02-19T22:20:00Z" in tip
    assert "proxy-one, 0x976E…0aa9" in tip and "block 100" in tip
    # A read fewer proxies logged than the threshold says so, and is drawn dashed.
    partial = next(m for m in marks(root) if m.get("data-count") == "3")
    assert "1 of 2 needed" in (partial.findtext(f"{SVG}title") or "")
    assert partial.get("stroke-dasharray") and big.get("stroke-dasharray") is None


def test_timeline_legend_names_each_category_once() -> None:
    root = parse(timeline_svg(TRAIL))
    legend = [
        g.get("data-category") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-item"
    ]
    assert legend == ["lab-results", "imaging", "unknown category"]
    fills = {m.get("data-category"): m.get("fill") for m in marks(root)}
    assert len(set(fills.values())) == 3  # one colour per category


def test_timeline_ticks_are_readable_utc_times() -> None:
    root = parse(timeline_svg(TRAIL))
    axis = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "axis")
    labels = [t.text or "" for t in axis.iter(f"{SVG}text")]
    assert "time (UTC)" in labels
    assert any(re.fullmatch(r"2025-02-2\d", t) for t in labels), labels
    assert 3 <= len(labels) <= 20


@pytest.mark.parametrize(
    "reads",
    [[read()], [read(A, nonce=1), read(B, "imaging", 4, nonce=2), read(A, None, nonce=3)]],
    ids=["one read", "all in one second"],
)
def test_timeline_of_one_instant_has_a_window_and_ticks(reads: list[ReadEvent]) -> None:
    root = parse(timeline_svg(reads))
    xs = {float(m.get("cx", "")) for m in marks(root)}
    assert len(marks(root)) == len(reads) and len(xs) == 1
    x = xs.pop()
    width = float(root.get("width", ""))
    assert 0 < x < width  # in the middle of the window, not at an edge or NaN
    axis = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "axis")
    times = [
        t.text or ""
        for t in axis.iter(f"{SVG}text")
        if re.fullmatch(r"\d\d:\d\d(:\d\d)?", t.text or "")
    ]
    assert len(times) >= 2


def test_no_reads_says_so() -> None:
    root = parse(timeline_svg([]))
    assert marks(root) == [] and "no reads logged" in "".join(root.itertext())
    assert_csp_safe(root)


def test_hostile_names_and_categories_are_escaped() -> None:
    evil = [read(A, HOSTILE, 2, nonce=1), read(B, "x\x1b[2J\u202eevil", 1, T0 + 60, nonce=2)]
    names = {A: HOSTILE, B.lower(): "</text><script>alert(1)</script>"}
    for svg in (timeline_svg(evil, names=names), access_map_svg([], names=names)):
        root = parse(svg)
        assert_csp_safe(root)
        assert "<script" not in svg and "\x1b" not in svg and "\u202e" not in svg
    root = parse(timeline_svg(evil, names=names))
    assert {m.get("data-category") for m in marks(root)} == {HOSTILE, "x\ufffd[2J\ufffdevil"}
    text = "".join(root.itertext())
    assert "<script>alert('x')</script>" in text  # shown as text, never as markup
    graph = access_map_svg(
        [grant(A, HOSTILE, GrantStatus.ACTIVE), grant(B, "<b>", GrantStatus.REVOKED)],
        names=names,
    )
    root = parse(graph)
    assert_csp_safe(root)
    assert "<script" not in graph and {e.get("data-category") for e in edges(root)} == {
        HOSTILE,
        "<b>",
    }


def edges(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}path") if (e.get("class") or "").startswith("edge")]


def test_access_map_edges_are_now_or_past() -> None:
    grants = [
        grant(A, "lab-results", GrantStatus.REVOKED, T0),
        grant(A, "lab-results", GrantStatus.ACTIVE, T0 + 90 * 86400),  # same pair: now
        grant(A, "imaging", GrantStatus.REVOKED),  # only past grants
        grant(B, "imaging", GrantStatus.EXPIRED),
        grant(B, "imaging", GrantStatus.TAG_REVOKED),
        grant(B, None, GrantStatus.ACTIVE),
    ]
    root = parse(access_map_svg(grants, names={A: "hospital-b"}))
    assert_csp_safe(root)
    found = {(e.get("data-grantee"), e.get("data-category")): e for e in edges(root)}
    assert {k: v.get("class") for k, v in found.items()} == {
        (A, "lab-results"): "edge now",
        (A, "imaging"): "edge past",
        (B, "imaging"): "edge past",
        (B, "unknown category"): "edge now",
    }
    lab = found[(A, "lab-results")]
    assert lab.get("data-grants") == "2" and lab.get("stroke-dasharray") is None
    tip = lab.findtext(f"{SVG}title") or ""
    assert "2 grants, 1 active" in tip and "2025-05-20T21:20:00Z" in tip  # the latest expiry
    assert "can read now" in tip and "revoked" in tip
    past = found[(B, "imaging")]
    assert past.get("stroke-dasharray") and past.get("stroke") != lab.get("stroke")
    assert "expired" in (past.findtext(f"{SVG}title") or "")
    # Organisations on the left, categories on the right, each once.
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") in ("grantee", "category")]
    assert Counter(g.get("class") for g in nodes) == {"grantee": 2, "category": 3}
    assert "hospital-b" in "".join(root.itertext())


def test_no_grants_says_so() -> None:
    root = parse(access_map_svg([]))
    assert edges(root) == [] and "no grants yet" in "".join(root.itertext())


def test_filter_reads() -> None:
    assert filter_reads(TRAIL) == TRAIL
    assert filter_reads(TRAIL, grantee=B.lower()) == TRAIL[2:4]
    assert filter_reads(TRAIL, grantee=A.upper().replace("0X", "0x")) == [
        TRAIL[0],
        TRAIL[1],
        TRAIL[4],
    ]
    assert filter_reads(TRAIL, category="LAB") == [TRAIL[0], TRAIL[2], TRAIL[4]]  # an alias
    assert filter_reads(TRAIL, grantee=B, category="lab-results") == [TRAIL[2]]
    assert filter_reads(TRAIL, category="vital-signs") == []
    assert filter_reads([], grantee=A) == []
    with pytest.raises(UnknownCategory):
        filter_reads(TRAIL, category="lab-resluts")


def test_output_is_deterministic(tmp_path: Path) -> None:
    names = {A: "hospital-b"}
    assert timeline_svg(TRAIL, names=names) == timeline_svg(list(TRAIL), names=dict(names))
    grants = [grant(A, "lab-results", GrantStatus.ACTIVE), grant(B, "imaging", GrantStatus.REVOKED)]
    assert access_map_svg(grants) == access_map_svg(list(reversed(grants)))
    assert timeline_html(TRAIL, block=7) == timeline_html(TRAIL, block=7)
    timeline_png(TRAIL, tmp_path / "a.png", names=names)
    timeline_png(TRAIL, tmp_path / "b.png", names=names)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_width_scales_the_chart() -> None:
    wide, narrow = parse(timeline_svg(TRAIL, width=1200)), parse(timeline_svg(TRAIL, width=600))
    assert wide.get("width") == "1200" and narrow.get("width") == "600"
    assert max(float(m.get("cx", "")) for m in marks(narrow)) < 600


def test_png_is_a_private_png_of_plausible_size(tmp_path: Path) -> None:
    from matplotlib import image

    path = tmp_path / "audit.png"
    timeline_png(TRAIL, path, names={A: HOSTILE, B: "$\\frac{bad"})  # no mathtext parsed
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    height, width = image.imread(path).shape[:2]
    assert width == 900 and 150 <= height <= 600
    assert list(tmp_path.iterdir()) == [path]  # no temp file left beside it
    empty = tmp_path / "empty.png"
    timeline_png([], empty)
    assert empty.read_bytes().startswith(b"\x89PNG") and image.imread(empty).shape[1] == 900


def test_html_has_the_block_the_chart_and_a_row_per_read() -> None:
    doc = timeline_html(TRAIL, names={A: HOSTILE}, title="Alice & her <records>", block=4242)
    assert doc.startswith("<!DOCTYPE html>") and "verified against block 4242" in doc
    assert "<script" not in doc and "http://" not in doc.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "<title>Alice &amp; her &lt;records&gt;</title>" in doc
    assert doc.count('<tr class="read">') == len(TRAIL)
    assert doc.count('class="read"') == 2 * len(TRAIL)  # a row and a mark per read
    svg = doc[doc.index("<svg") : doc.index("</svg>") + len("</svg>")]
    assert len(marks(parse(svg))) == len(TRAIL)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in doc
    without = timeline_html([])
    assert "verified against" not in without and "no reads logged" in without
