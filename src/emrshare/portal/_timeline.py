"""The audit timeline: who read which kind of record when, as SVG and as PNG."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from emrshare._files import write_atomically
from emrshare.categories import normalize_category
from emrshare.errors import ConfigurationError
from emrshare.portal._svg import (
    attrs,
    canonical,
    category_colours,
    category_name,
    checksummed,
    clip,
    empty_svg,
    esc,
    iso,
    label_of,
    legend,
    short_address,
    svg_open,
    time_ticks,
)
from emrshare.roles import ReadEvent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["filter_reads", "timeline_png", "timeline_svg"]

NO_READS = "no reads logged"
_LEFT = 170  # the lane labels
_RIGHT = 24
_TOP = 12
_LANE = 40


def filter_reads(
    reads: Sequence[ReadEvent], *, grantee: str | None = None, category: str | None = None
) -> list[ReadEvent]:
    """The reads of ``grantee`` (an address, in any case) and of ``category`` (a name of
    the vocabulary or an alias, ``lab`` for ``lab-results``, or one of the categories the
    reads name), in their order; ``None`` keeps all.

    Raises :class:`~emrshare.errors.UnknownCategory` for a category that is neither.
    """
    who = None if grantee is None else grantee.lower()
    wanted = None
    if category is not None:
        present = sorted({r.category for r in reads if r.category is not None})
        wanted = normalize_category(category, known=present)
    return [
        r
        for r in reads
        if (who is None or r.requester.lower() == who) and (wanted is None or r.category == wanted)
    ]


def mark_radius(count: int) -> float:
    """A read's mark radius in pixels: growing with the records it served (area about
    linear in them), from 6 for one to 14 for 16 or more."""
    return min(14.0, 3.0 + 3.0 * math.sqrt(max(count, 1)))


def read_title(r: ReadEvent, names: Mapping[str, str]) -> list[str]:
    """The lines of a read's tooltip: who, category, records, when, proxies, block."""
    proxies = ", ".join(label_of(p, names) for p in r.proxies) or "none"
    logged = f"logged by {proxies} ({len(r.proxies)} of {r.threshold} needed)"
    if not r.complete:
        logged += ": a proxy has not logged it (yet)"
    return [
        f"{who_of(r.requester, names)}",
        f"category: {category_name(r.category)}",
        f"{r.count} record{'s' if r.count != 1 else ''} read",
        f"at {iso(r.evaluated_time)}",
        logged,
        f"block {r.block_number}",
    ]


def who_of(address: str, names: Mapping[str, str]) -> str:
    """``hospital-b 0x15d3…6A65``, or the short address alone."""
    name = names.get(canonical(address))
    return f"{name} {short_address(address)}" if name else short_address(address)


@dataclass(frozen=True, slots=True)
class _Lanes:
    """The grantees in lane order (by label, then address) and the time domain."""

    grantees: tuple[str, ...]
    lo: float
    hi: float

    @classmethod
    def of(cls, reads: Sequence[ReadEvent], names: Mapping[str, str]) -> _Lanes:
        who = {canonical(r.requester) for r in reads}
        order = tuple(sorted(who, key=lambda a: (label_of(a, names).casefold(), a)))
        times = [r.evaluated_time for r in reads]
        lo, hi = float(min(times)), float(max(times))
        if hi - lo < 1:  # one read, or all in one second: a two-minute window around it
            return cls(order, lo - 60, hi + 60)
        pad = max((hi - lo) * 0.04, 1.0)
        return cls(order, lo - pad, hi + pad)


def ordered(reads: Sequence[ReadEvent]) -> list[ReadEvent]:
    """``reads`` by evaluation time, then block (stable: the log's order among equals)."""
    return sorted(reads, key=lambda r: (r.evaluated_time, r.block_number))


def timeline_svg(
    reads: Sequence[ReadEvent], *, names: Mapping[str, str] = {}, width: int = 900
) -> str:
    """The audit trail as an SVG chart over time (UTC): one lane per grantee, labelled
    with ``names`` (profile names by address) or the short address, one mark per read,
    coloured by category, larger for more records, with a tooltip (``<title>``) saying
    who, what, how many, when, which proxies logged it and the block. A legend names the
    categories; no reads at all is a small chart that says so.

    Each mark is ``<circle class="read" data-grantee="0x…" data-category="…"
    data-count="N" data-time="…">``. No script and no inline style (presentation
    attributes only): the markup can be served under a strict content security policy.
    Text is sanitized and escaped. The same reads give the same markup.
    """
    width = max(int(width), 400)
    if not reads:
        return empty_svg("timeline", NO_READS, width)
    names = checksummed(names)
    lanes = _Lanes.of(reads, names)
    colours = category_colours(r.category for r in reads)
    plot_w = width - _LEFT - _RIGHT
    axis_y = _TOP + _LANE * len(lanes.grantees)

    def x_of(t: float) -> float:
        return _LEFT + (t - lanes.lo) / (lanes.hi - lanes.lo) * plot_w

    body: list[str] = []
    for i, grantee in enumerate(lanes.grantees):
        y = _TOP + _LANE * i
        mine = ordered([r for r in reads if canonical(r.requester) == grantee])
        body.append(f"<g{attrs(class_='lane', data_grantee=grantee, data_reads=len(mine))}>")
        shade = "#f3f4f6" if i % 2 == 0 else "#ffffff"
        body.append(f"<rect{attrs(x=_LEFT, y=y, width=plot_w, height=_LANE, fill=shade)}/>")
        body.append(
            f"<text{attrs(x=_LEFT - 8, y=y + _LANE / 2 + 4, text_anchor='end')}>"
            f"{esc(clip(label_of(grantee, names), 24))}"
            f"<title>{esc(who_of(grantee, names))}: {len(mine)} read(s)</title></text>"
        )
        for r in mine:
            body.append(_mark(r, x_of(r.evaluated_time), y + _LANE / 2, colours, names))
        body.append("</g>")
    body.append(_axis(lanes, axis_y, x_of))
    keys = sorted(colours, key=lambda c: list(colours).index(c))
    items = [(category_name(c), colours[c]) for c in keys if any(r.category == c for r in reads)]
    shown, legend_h = legend(items, _LEFT, axis_y + 56, plot_w)
    height = int(axis_y + 56 + legend_h + 4)
    who = len(lanes.grantees)
    label = (
        f"Audit timeline: {len(reads)} read{'s' if len(reads) != 1 else ''} by {who} "
        f"grantee{'s' if who != 1 else ''}, {iso(min(r.evaluated_time for r in reads))} "
        f"to {iso(max(r.evaluated_time for r in reads))}"
    )
    return (
        svg_open("timeline", width, height, label, "Who read your records, when")
        + "".join(body)
        + shown
        + "</svg>"
    )


def _mark(
    r: ReadEvent, x: float, y: float, colours: Mapping[str | None, str], names: Mapping[str, str]
) -> str:
    tip = "\n".join(esc(line) for line in read_title(r, names))
    look = attrs(
        class_="read",
        data_grantee=canonical(r.requester),
        data_category=category_name(r.category),
        data_count=r.count,
        data_time=iso(r.evaluated_time),
        data_block=r.block_number,
        cx=x,
        cy=y,
        r=mark_radius(r.count),
        fill=colours[r.category],
        fill_opacity="0.8",
        stroke="#222222",
        stroke_width="0.8",
        stroke_dasharray=None if r.complete else "2 2",
    )
    return f"<circle{look}><title>{tip}</title></circle>"


def _axis(lanes: _Lanes, y: float, x_of: Callable[[float], float]) -> str:
    left, right = x_of(lanes.lo), x_of(lanes.hi)
    parts = [
        '<g class="axis">',
        f"<line{attrs(x1=left, y1=y, x2=right, y2=y, stroke='#222222')}/>",
    ]
    for t, shown, day in time_ticks(lanes.lo, lanes.hi):
        x = x_of(t)
        # a label near either end is aligned to it, not cut off by the edge of the chart
        anchor = "end" if right - x < 40 else "start" if x - left < 40 else "middle"
        parts.append(f"<line{attrs(x1=x, y1=y, x2=x, y2=y + 5.0, stroke='#222222')}/>")
        parts.append(f"<line{attrs(x1=x, y1=_TOP, x2=x, y2=y, stroke='#d1d5db')}/>")
        parts.append(f"<text{attrs(x=x, y=y + 18.0, text_anchor=anchor)}>{esc(shown)}</text>")
        if day:
            parts.append(
                f"<text{attrs(x=x, y=y + 32.0, text_anchor=anchor, fill='#555555')}>"
                f"{esc(day)}</text>"
            )
    parts.append(
        f"<text{attrs(x=left - 8, y=y + 18.0, text_anchor='end', fill='#555555')}>"
        "time (UTC)</text></g>"
    )
    return "".join(parts)


def timeline_png(reads: Sequence[ReadEvent], path: Path, *, names: Mapping[str, str] = {}) -> None:
    """The timeline of :func:`timeline_svg` as a PNG at ``path`` (900 pixels wide),
    written whole then renamed into place, mode 0600; rendered by matplotlib's Agg
    backend (no display, no global pyplot state).

    Raises :class:`~emrshare.errors.ConfigurationError` if matplotlib is not installed
    (the ``charts`` extra) or ``path`` cannot be written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError(
            "drawing the timeline as PNG needs matplotlib, which is not installed; "
            "install emrshare[charts] (matplotlib) for PNG output"
        ) from exc
    names = checksummed(names)
    with warnings.catch_warnings():  # a name in a script the font lacks: boxes, no noise
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig = _figure(Figure, reads, names)
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    try:
        write_atomically(Path(path), buffer.getvalue())
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the timeline to {path} ({exc.strerror or exc}); check that its "
            "directory exists and is writable"
        ) from exc


def _figure(figure: type[Figure], reads: Sequence[ReadEvent], names: Mapping[str, str]) -> Figure:
    import matplotlib.dates as mdates
    from matplotlib.collections import PathCollection

    def days(times: Sequence[float]) -> list[float]:  # matplotlib's dates: days since 1970
        moments = [datetime.fromtimestamp(t, UTC) for t in times]
        return [float(d) for d in mdates.date2num(moments)]  # type: ignore[no-untyped-call]

    if not reads:
        fig = figure(figsize=(9, 1.2), dpi=100)
        fig.text(0.5, 0.5, NO_READS, ha="center", va="center", fontsize=14)
        return fig
    lanes = _Lanes.of(reads, names)
    colours = category_colours(r.category for r in reads)
    fig = figure(figsize=(9, 2.0 + 0.45 * len(lanes.grantees)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    row = {g: i for i, g in enumerate(lanes.grantees)}
    for category in colours:
        mine = ordered([r for r in reads if r.category == category])
        if not mine:
            continue
        ax.scatter(
            days([r.evaluated_time for r in mine]),
            [row[canonical(r.requester)] for r in mine],
            s=[(1.4 * mark_radius(r.count)) ** 2 for r in mine],
            c=colours[category],
            alpha=0.8,
            edgecolors="#222222",
            linewidths=0.6,
            label=clip(category_name(category), 32),
        )
    ax.set_yticks(range(len(lanes.grantees)))
    ax.set_yticklabels([clip(label_of(g, names), 24) for g in lanes.grantees])
    ax.set_ylim(len(lanes.grantees) - 0.5, -0.5)
    ax.set_xlim(*days([lanes.lo, lanes.hi]))
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", color="#d1d5db")
    ax.set_title("Who read your records, when")
    handles, labels = ax.get_legend_handles_labels()
    shown = fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    # Names and categories are text, never mathtext ("$x$") for matplotlib to parse.
    for text in [*ax.get_yticklabels(), *shown.get_texts()]:
        text.set_parse_math(False)
    for handle in shown.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_sizes([60.0])
    return fig
