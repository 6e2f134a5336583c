"""The progress bar of `record add` shows the file's name (issue 12, item 9): a name is
the user's or a sender's text, never Rich markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from emrshare.cli import _context


def test_attack_markup_in_a_file_name_crashes_or_links_the_progress_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr(_context, "err", screen)
    name = "adding [link=https://evil.example]scan[/b]\x1b[2J.bin"
    with _context.progress_bar(name, 10, True) as bar:  # raised MarkupError ([/b])
        bar(5)
        bar.stage("store")
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "[link=https://evil.example]scan[/b]" in shown
    assert "evil.example\x1b" not in shown and "\x1b]8;" not in shown  # no OSC 8 link
    assert "\x1b[2J" not in shown
