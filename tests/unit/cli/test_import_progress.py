"""The bar of `record import` (issue 19): records done of total, their rate and the time
left, on a terminal only; a resumed import's records already in are not a rate sample."""

from __future__ import annotations

import io
import time

from rich.console import Console

from emrshare.cli import _context


def _screen() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=140)


def _shown(screen: Console) -> str:
    text: str = screen.file.getvalue()  # type: ignore[attr-defined]
    return text


def _last_frame(screen: Console) -> str:
    """The bar as last drawn (it is transient: cleared at the end, but each frame drawn
    while it ran is in the terminal's byte stream), without colours."""
    frames = [f for f in _shown(screen).split("\x1b[2K") if "importing" in f]
    return Console().render_str(frames[-1]).plain if frames else ""


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_the_bar_counts_records_with_rate_and_time_left() -> None:
    screen = _screen()
    with _context.count_bar("importing lab", "rec", True, console=screen) as update:
        update(0, 10_000)
        for done in range(50, 251, 50):
            time.sleep(0.02)  # the rate needs samples over time
            update(done, 10_000)
    last = _plain(_last_frame(screen))
    assert "250/10000" in last, last
    assert "rec/s" in last and "- rec/s" not in last, last
    assert "eta" in last and "-:--:--" not in last.split("eta", 1)[1], last


def test_a_resumed_import_starts_at_its_records_in_without_a_rate_spike() -> None:
    screen = _screen()
    with _context.count_bar("importing lab", "rec", True, console=screen) as update:
        update(9_000, 10_000)  # 9,000 were imported before the Ctrl-C
        for done in (9_050, 9_100):
            time.sleep(0.02)
            update(done, 10_000)
        time.sleep(0.2)
    drawn = _plain(_shown(screen))
    assert "9100/10000" in drawn, drawn
    # 50 records per 0.02 s or more: a few thousand per second at most; counting the
    # 9,000 already in would show hundreds of thousands.
    rates = [
        float(w.replace(",", ""))
        for w, nxt in zip(drawn.split(), drawn.split()[1:], strict=False)
        if nxt.startswith("rec/s") and w.replace(",", "").replace(".", "").isdigit()
    ]
    assert rates and max(rates) < 9_000 / 0.02, drawn


def test_no_bar_when_disabled_or_not_a_terminal() -> None:
    plain = Console(file=io.StringIO(), force_terminal=False)
    for enabled, console in ((False, _screen()), (True, plain)):
        with _context.count_bar("importing", "rec", enabled, console=console) as update:
            update(1, 2)
            update(2, 2)
        assert _shown(console) == ""
