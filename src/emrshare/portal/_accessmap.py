"""The access map: which organisations can read which categories now, and who could."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    svg_open,
)
from emrshare.roles import GrantInfo

__all__ = ["access_map_svg"]

NO_GRANTS = "no grants yet"
_ROW = 34
_TOP = 40
_SIDE = 190  # the width of each column of labels
_PAST = "#9ca3af"


@dataclass(frozen=True, slots=True)
class Pair:
    """The grants of one (grantee, category): how many, how many serve now, the latest
    expiry, and the statuses of the others."""

    grantee: str
    category: str | None
    grants: int
    active: int
    latest_expiry: int
    statuses: tuple[str, ...]
    scoped: int

    @property
    def now(self) -> bool:
        """Whether any grant of the pair is active now (on chain time)."""
        return self.active > 0

    @classmethod
    def all_of(cls, grants: Sequence[GrantInfo]) -> list[Pair]:
        """One per (grantee, category) the grants name, by grantee, then category."""
        groups: dict[tuple[str, str | None], list[GrantInfo]] = {}
        for g in grants:
            groups.setdefault((canonical(g.grantee), g.category), []).append(g)
        return [
            cls(
                grantee=who,
                category=category,
                grants=len(gs),
                active=sum(g.active for g in gs),
                latest_expiry=max(g.expiry for g in gs),
                statuses=tuple(sorted({str(g.status.value) for g in gs if not g.active})),
                scoped=sum(bool(g.records) for g in gs),
            )
            for (who, category), gs in sorted(
                groups.items(), key=lambda kv: (kv[0][0], category_name(kv[0][1]))
            )
        ]

    def title(self, names: Mapping[str, str]) -> list[str]:
        """The lines of the edge's tooltip."""
        status = "can read now" if self.now else "could read in the past"
        if self.statuses:
            status += f" ({', '.join(self.statuses)}{' too' if self.now else ''})"
        lines = [
            f"{label_of(self.grantee, names)} → {category_name(self.category)}",
            f"{self.grants} grant{'s' if self.grants != 1 else ''}, {self.active} active",
            f"latest expiry {iso(self.latest_expiry)}",
            f"status: {status}",
        ]
        if self.scoped:
            lines.append(f"{self.scoped} of them for chosen records only")
        return lines


def access_map_svg(
    grants: Sequence[GrantInfo], *, names: Mapping[str, str] = {}, width: int = 900
) -> str:
    """Which organisations can read which categories now, and who could in the past, as
    an SVG graph: grantees (``names`` or short addresses) on the left, categories on the
    right, one edge per (grantee, category), solid in the category's colour if a grant
    of the pair is active now, dashed grey if all its grants were revoked or expired.
    Each edge has a tooltip (grant count, latest expiry, status). No grants at all is a
    small chart that says so.

    Each edge is ``<path class="edge now|past" data-grantee="0x…" data-category="…"
    data-grants="N">``. No script and no inline style; text is sanitized and escaped; the
    same grants give the same markup.
    """
    width = max(int(width), 480)
    if not grants:
        return empty_svg("access-map", NO_GRANTS, width)
    names = checksummed(names)
    pairs = Pair.all_of(grants)
    who = sorted({p.grantee for p in pairs}, key=lambda a: (label_of(a, names).casefold(), a))
    colours = category_colours(p.category for p in pairs)
    cats = [c for c in colours if any(p.category == c for p in pairs)]
    rows = max(len(who), len(cats))

    def y_of(i: int, n: int) -> float:  # each column centred on the taller one
        return _TOP + _ROW * (i + 0.5 + (rows - n) / 2)

    left_x, right_x = float(_SIDE), float(width - _SIDE)
    at_left = {a: y_of(i, len(who)) for i, a in enumerate(who)}
    at_right = {c: y_of(i, len(cats)) for i, c in enumerate(cats)}
    body = [
        f"<text{attrs(x=left_x, y=_TOP - 16.0, text_anchor='end', font_weight='bold')}>"
        "organisations</text>",
        f"<text{attrs(x=right_x, y=_TOP - 16.0, font_weight='bold')}>categories</text>",
        '<g class="edges">',
    ]
    # Past edges under present ones: a solid line is never hidden by a dashed one.
    for p in sorted(pairs, key=lambda p: p.now):
        y1, y2 = at_left[p.grantee], at_right[p.category]
        mid = (left_x + right_x) / 2
        look = attrs(
            class_=f"edge {'now' if p.now else 'past'}",
            data_grantee=p.grantee,
            data_category=category_name(p.category),
            data_grants=p.grants,
            d=f"M {left_x + 7:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, "
            f"{right_x - 7:.1f} {y2:.1f}",
            fill="none",
            stroke=colours[p.category] if p.now else _PAST,
            stroke_width="3" if p.now else "1.5",
            stroke_dasharray=None if p.now else "6 4",
        )
        tip = "\n".join(esc(line) for line in p.title(names))
        body.append(f"<path{look}><title>{tip}</title></path>")
    body.append("</g>")
    for a in who:
        n = sum(p.now for p in pairs if p.grantee == a)
        body.append(
            f"<g{attrs(class_='grantee', data_grantee=a)}>"
            f"<circle{attrs(cx=left_x, cy=at_left[a], r=6, fill='#374151')}/>"
            f"<text{attrs(x=left_x - 12, y=at_left[a] + 4, text_anchor='end')}>"
            f"{esc(clip(label_of(a, names), 26))}<title>{esc(a)}: reads {n} "
            f"categor{'y' if n == 1 else 'ies'} now</title></text></g>"
        )
    for c in cats:
        body.append(
            f"<g{attrs(class_='category', data_category=category_name(c))}>"
            f"<circle{attrs(cx=right_x, cy=at_right[c], r=6, fill=colours[c])}/>"
            f"<text{attrs(x=right_x + 12, y=at_right[c] + 4)}>"
            f"{esc(clip(category_name(c), 26))}</text></g>"
        )
    bottom = _TOP + _ROW * rows + 24.0
    body.append(_key(left_x, bottom))
    height = int(bottom + 20)
    readable = sum(p.now for p in pairs)
    label = (
        f"Access map: {len(who)} organisation{'s' if len(who) != 1 else ''}, {len(cats)} "
        f"categor{'y' if len(cats) == 1 else 'ies'}; {readable} pair(s) readable now, "
        f"{len(pairs) - readable} past only"
    )
    return (
        svg_open("access-map", width, height, label, "Who can read your records")
        + "".join(body)
        + "</svg>"
    )


def _key(x: float, y: float) -> str:
    """What the two kinds of edge mean: a solid and a dashed stroke, labelled."""
    solid = attrs(x1=x, y1=y, x2=x + 28, y2=y, stroke="#374151", stroke_width="3")
    dashed = attrs(
        x1=x + 170,
        y1=y,
        x2=x + 198,
        y2=y,
        stroke=_PAST,
        stroke_width="1.5",
        stroke_dasharray="6 4",
    )
    return (
        '<g class="legend">'
        f"<line{solid}/><text{attrs(x=x + 36, y=y + 4)}>can read now</text>"
        f"<line{dashed}/><text{attrs(x=x + 206, y=y + 4)}>could in the past (revoked or "
        "expired)</text></g>"
    )
