"""What the portal's charts share: escaping, attributes, colours, labels and time ticks.

The charts are SVG markup served under a content security policy that forbids inline
style: every look is a presentation attribute (``fill``, ``stroke``, ``font-size``), never
a ``style`` attribute or element, and there is no script. Names and categories come from
local profiles and from the chain, so every piece of text is treated as hostile: unsafe
characters (controls, bidi overrides; :func:`emrshare._text.sanitize`) become U+FFFD and
``<``, ``>``, ``&`` and quotes are escaped, in text and in attribute values alike.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from emrshare._addresses import checksum
from emrshare._text import sanitize
from emrshare._time import utc_text
from emrshare.categories import CATEGORIES
from emrshare.errors import InvalidInput

__all__ = [
    "FONT",
    "PALETTE",
    "UNKNOWN",
    "UNKNOWN_COLOUR",
    "attrs",
    "canonical",
    "category_colours",
    "category_name",
    "checksummed",
    "clip",
    "empty_svg",
    "esc",
    "iso",
    "label_of",
    "legend",
    "short_address",
    "svg_open",
    "time_ticks",
]

#: Okabe & Ito's colour-blind-safe palette (yellow last: it is pale on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
#: What a category the reader cannot name is shown as, and its colour (in no palette slot).
UNKNOWN = "unknown category"
UNKNOWN_COLOUR = "#999999"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
_SVG_NS = "http://www.w3.org/2000/svg"


def esc(text: object) -> str:
    """``text`` safe inside an element and inside a double- or single-quoted attribute."""
    return html.escape(sanitize(str(text)), quote=True)


def attrs(**values: object) -> str:
    """``name="value"`` pairs, escaped, in the order given; a ``_`` in a name is a ``-``
    (``data_count`` → ``data-count``, ``class_`` → ``class``); ``None`` leaves it out."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        shown = f"{value:.1f}" if isinstance(value, float) else value
        parts.append(f' {name}="{esc(shown)}"')
    return "".join(parts)


def clip(text: str, most: int) -> str:
    """``text`` (sanitized) cut to ``most`` characters, the last one an ellipsis."""
    text = sanitize(text)
    return text if len(text) <= most else text[: most - 1] + "…"


def canonical(address: str) -> str:
    """The EIP-55 form of ``address``; a string that is no address stays as it is (a
    chart shows what it is given rather than fail)."""
    try:
        return checksum(address)
    except InvalidInput:
        return str(address)


def short_address(address: str) -> str:
    """``0x90F7…b906``."""
    a = canonical(address)
    return f"{a[:6]}…{a[-4:]}" if len(a) > 12 else a


def label_of(address: str, names: Mapping[str, str]) -> str:
    """The local name of ``address`` (``names`` is keyed by EIP-55 address), else its
    short form."""
    return names.get(canonical(address)) or short_address(address)


def checksummed(names: Mapping[str, str]) -> dict[str, str]:
    """``names`` keyed by EIP-55 address whatever case the caller used."""
    return {canonical(k): v for k, v in sorted(names.items())}


def category_name(category: str | None) -> str:
    """A category as shown: ``None`` (the reader cannot name it) is ``unknown category``."""
    return UNKNOWN if category is None else category


def category_colours(categories: Iterable[str | None]) -> dict[str | None, str]:
    """A colour for each category: the vocabulary's in its order, then custom ones by
    name, through :data:`PALETTE` (repeating past eight); ``None`` is grey."""
    order = list(CATEGORIES)
    present = {c for c in categories if c is not None}
    ranked = sorted(present, key=lambda c: (order.index(c) if c in order else len(order), c))
    colours: dict[str | None, str] = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(ranked)}
    colours[None] = UNKNOWN_COLOUR
    return colours


def iso(ts: int) -> str:
    """A unix time as ISO 8601 UTC: ``2025-03-01T14:05:09Z``."""
    return utc_text(ts, "%Y-%m-%dT%H:%M:%SZ")


_DAY = 86400
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_DAY_STEPS = (1, 2, 7, 14, 30, 61, 91, 182, 365)


def time_ticks(lo: float, hi: float, most: int = 6) -> list[tuple[int, str, str]]:
    """Round instants between ``lo`` and ``hi`` (unix seconds, ``lo < hi``), at most about
    ``most`` of them: ``(time, label, date)``, ``date`` set on the first tick and where the
    day changes when ``label`` is a time of day (``14:30``), empty otherwise."""
    span = max(hi - lo, 1.0)
    steps = (*_STEPS, *(d * _DAY for d in _DAY_STEPS))
    step = next((s for s in steps if span / s <= most), 0)
    if not step:
        step = 365 * _DAY * (int(span // (most * 365 * _DAY)) + 1)
    first = -(-int(lo) // step) * step
    out: list[tuple[int, str, str]] = []
    last_day = ""
    for t in range(first, int(hi) + 1, step):
        moment = datetime.fromtimestamp(t, UTC)
        day = moment.strftime("%Y-%m-%d")
        if step >= _DAY:
            out.append((t, day, ""))
            continue
        shown = moment.strftime("%H:%M:%S" if step < 60 else "%H:%M")
        out.append((t, shown, day if day != last_day else ""))
        last_day = day
    return out


def svg_open(kind: str, width: int, height: int, label: str, title: str) -> str:
    """The root element (``class`` ``kind``, its accessible name ``label``) and its
    ``<title>``."""
    root = attrs(
        xmlns=_SVG_NS,
        class_=kind,
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        aria_label=label,
        font_family=FONT,
        font_size=12,
        fill="#222222",
    )
    return f"<svg{root}><title>{esc(title)}</title>"


def empty_svg(kind: str, message: str, width: int) -> str:
    """A small chart that says ``message`` (no reads, no grants) instead of drawing."""
    height = 80
    return (
        svg_open(f"{kind} empty", width, height, message, message)
        + f"<text{attrs(x=width / 2, y=height / 2, text_anchor='middle', font_size=14)}>"
        + f"{esc(message)}</text></svg>"
    )


def legend(items: Sequence[tuple[str, str]], x: float, y: float, width: float) -> tuple[str, float]:
    """A legend of ``(label, colour)`` swatches from ``(x, y)``, wrapped at ``width``;
    returns the markup and the height it takes."""
    parts = ['<g class="legend">']
    cx, cy = x, y
    for name, colour in items:
        shown = clip(name, 32)
        step = 28 + 7 * len(shown)
        if cx > x and cx + step > x + width:
            cx, cy = x, cy + 20
        parts.append(
            f"<g{attrs(class_='legend-item', data_category=name)}>"
            f"<circle{attrs(cx=cx + 6.0, cy=cy, r=6, fill=colour)}/>"
            f"<text{attrs(x=cx + 16.0, y=cy + 4.0)}>{esc(shown)}</text></g>"
        )
        cx += step
    parts.append("</g>")
    return "".join(parts), cy - y + 20
