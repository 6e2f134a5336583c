"""The patient's audit timeline and access map as pictures, drawn server-side.

* :func:`timeline_svg`: who read which kind of record when, one lane per grantee, one
  mark per read (coloured by category, sized by records), a tooltip on each.
* :func:`access_map_svg`: organisations on the left, categories on the right, an edge
  for each pair: solid if a grant serves now, dashed grey if only past grants.
* :func:`timeline_png`: the timeline as a PNG file (matplotlib, the ``charts`` extra).
* :func:`timeline_html`: a standalone HTML document with the timeline and a table.
* :func:`filter_reads`: the reads of one grantee or category, for either chart.

The SVG is served by the portal under a content security policy without inline style or
script, so it uses presentation attributes only. Names (local profiles) and categories
(the chain) are treated as hostile text: sanitized and escaped everywhere. Output is
deterministic: the same input gives the same bytes.

Example::

    from emrshare.portal.charts import access_map_svg, timeline_svg

    svg = timeline_svg(patient.audit(), names={hospital_address: "hospital-b"})
    graph = access_map_svg(patient.grants())
"""

from __future__ import annotations

from emrshare.portal._accessmap import access_map_svg
from emrshare.portal._report import timeline_html
from emrshare.portal._timeline import filter_reads, timeline_png, timeline_svg

__all__ = ["access_map_svg", "filter_reads", "timeline_html", "timeline_png", "timeline_svg"]
