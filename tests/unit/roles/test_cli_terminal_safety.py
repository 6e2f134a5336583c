"""What the CLI prints of chain- and peer-supplied strings: plain text, no control codes."""

from __future__ import annotations

import io

import pytest
import typer
from rich.console import Console

from emrshare.cli import _context

HOSTILE = [
    "lab\x1b[2K\rmental-health",  # erase the line and redraw it
    "\x1b]8;;https://evil.example\x1b\\lab\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x9b2K",  # C1 CSI
    "lab\u202etluser-bal",  # RIGHT-TO-LEFT OVERRIDE
    "lab\u2066x\u2069",
    "la\u200bb",
    "two\nlines",
    "bell\x07",
]


def _capture(monkeypatch: pytest.MonkeyPatch, name: str) -> io.StringIO:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="truecolor", width=200)
    monkeypatch.setattr(_context, name, console)
    return buf


def _unsafe(text: str) -> list[str]:
    # Rich's own styling (SGR after ESC[) is allowed; nothing else of C0/C1/bidi.
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return (
        [c for c in text if c not in "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]
        + [c for c in text if "\u200b" <= c <= "\u200f" or "\u202a" <= c <= "\u202e"]
        + [c for c in text if "\u2066" <= c <= "\u2069"]
    )


@pytest.mark.parametrize("bad", HOSTILE)
def test_attack_terminal_escape_in_request_reason(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requester's reason (or any chain string) in `request list` reaches the
    terminal with its control characters replaced, so it cannot rewrite the screen."""
    buf = _capture(monkeypatch, "out")
    _context.table("Access requests", ["id", "category", "reason"], [[1, "lab", bad]])
    text = buf.getvalue()
    assert _unsafe(text) == [], repr(text)
    assert "\ufffd" in text


@pytest.mark.parametrize(
    "markup",
    [
        "[link=https://evil.example]lab[/link]",
        "[white on white]mental-health[/]",
        "[bold]lab[/bold]",
        "[/]",  # unbalanced closing tag: a MarkupError on the old code
    ],
)
def test_attack_rich_markup_in_table_cell(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich markup in a cell is shown as the literal text, not obeyed: no hidden
    (white-on-white) word, no hyperlink."""
    buf = _capture(monkeypatch, "out")
    _context.table("t", ["category", "reason"], [["mental-health", markup]])
    text = buf.getvalue()
    assert markup in text.replace("\n", "") or all(part in text for part in markup.split(" ")), (
        repr(text)
    )
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink
    assert "\x1b[37;47m" not in text and "\x1b[97;107m" not in text  # no white on white
    # Headers and titles are plain text too.
    buf2 = _capture(monkeypatch, "out")
    _context.table(markup, [markup], [["x"]])
    assert "\x1b]8;" not in buf2.getvalue()


@pytest.mark.parametrize("bad", HOSTILE)
def test_refusal_message_from_a_peer_is_sanitized(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's refusal text ends up in an error message: printed without its controls."""
    buf = _capture(monkeypatch, "err")
    with pytest.raises(typer.Exit):
        _context._fail(f"proxy refused: {bad}")
    text = buf.getvalue()
    assert _unsafe(text) == [], repr(text)
    assert text.count("\n") == 1  # one line


def test_json_output_escapes_bidi_and_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = _capture(monkeypatch, "out")
    _context.emit_json({"reason": "lab\u202e\x1b[2K\u200b"})
    text = buf.getvalue()
    assert _unsafe(text) == [], repr(text)
    assert "\\u202e" in text


@pytest.mark.parametrize("hostile", HOSTILE)
def test_attack_terminal_escape_in_a_prescriptions_medication(
    hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rogue prescriber writes escapes into the medication and dosage: the pharmacist's
    ``rx show`` / ``rx list`` line prints none of them."""
    import os

    from emrshare.chain import Prescription, PrescriptionStatus
    from emrshare.cli.commands import rx
    from emrshare.fhir.prescription import PrescriptionDoc
    from emrshare.roles import VerifiedPrescription
    from emrshare.types import RecordId

    who = "0x" + "11" * 20
    doc = PrescriptionDoc(
        patient=who, prescriber=who, medication=hostile, dosage=hostile, fills=1,
        authored_on=1, valid_until=2, salt=os.urandom(32),
    )  # fmt: skip
    chain = Prescription(
        os.urandom(32), who, 1, 2, 1, 0, False, False, PrescriptionStatus.ACTIVE, who
    )
    v = VerifiedPrescription(os.urandom(32), RecordId(os.urandom(32)), who, doc, chain, 1, 1)
    buf = _capture(monkeypatch, "out")
    _context.out.print(rx._line(v), markup=False)
    assert _unsafe(buf.getvalue()) == []
