"""The audit timeline as a standalone HTML document, to keep, share or print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emrshare.portal._svg import category_name, checksummed, esc, iso, label_of
from emrshare.portal._timeline import ordered, timeline_svg, who_of
from emrshare.roles import ReadEvent

__all__ = ["timeline_html"]

#: A file, not a page the portal serves: an inline style element is fine here.
_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #222;
       margin: 2rem auto; max-width: 960px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
p.verified { color: #555; margin-top: 0; }
figure { margin: 1.5rem 0; }
svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { background: #f3f4f6; }
td.count { text-align: right; }
code { font-size: .85em; }
@media print { body { margin: 0; max-width: none; } tr { break-inside: avoid; } }
"""


def timeline_html(
    reads: Sequence[ReadEvent],
    *,
    names: Mapping[str, str] = {},
    title: str = "Who read your records",
    block: int | None = None,
) -> str:
    """A standalone HTML5 document of the audit trail: ``title``, "verified against block
    ``block``" when given (the chain block the reads were checked at), the timeline of
    :func:`timeline_svg` inline, and a table of the reads (when, who, category, records,
    proxies), oldest first.

    No script and no external resource: it opens offline and prints as it shows. Text is
    sanitized and escaped; the same reads give the same document.
    """
    names = checksummed(names)
    rows = []
    for r in ordered(reads):
        proxies = ", ".join(label_of(p, names) for p in r.proxies)
        if not r.complete:
            proxies += f" ({len(r.proxies)} of {r.threshold} logged)"
        rows.append(
            '<tr class="read">'
            f"<td><time>{esc(iso(r.evaluated_time))}</time></td>"
            f"<td>{esc(who_of(r.requester, names))}<br><code>{esc(r.requester)}</code></td>"
            f"<td>{esc(category_name(r.category))}</td>"
            f'<td class="count">{r.count}</td>'
            f"<td>{esc(proxies)}</td>"
            f"<td>{r.block_number}</td></tr>"
        )
    verified = (
        f'<p class="verified">verified against block {int(block)}</p>' if block is not None else ""
    )
    table = (
        "<table><thead><tr><th>when (UTC)</th><th>who</th><th>category</th>"
        "<th>records</th><th>proxies</th><th>block</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No reads are logged.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{verified}\n"
        f"<figure>{timeline_svg(reads, names=names)}</figure>\n"
        f"<h2>{len(reads)} read{'s' if len(reads) != 1 else ''}</h2>\n{table}\n"
        "</body>\n</html>\n"
    )
