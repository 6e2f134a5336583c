"""What the CLI reads from ``--expires`` and ``--purpose`` (issue 12, items 6 and 9), and
how a bad value fails: a usage error, one line, exit 2, before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emrshare.cli import app
from emrshare.cli._parse import parse_duration, parse_expires
from emrshare.errors import InvalidInput

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1y", 365 * DAY),
        ("2y", 730 * DAY),
        ("18mo", 540 * DAY),
        ("30 days", 30 * DAY),
        ("30days", 30 * DAY),
        ("2 weeks", 14 * DAY),
        ("1 week", 7 * DAY),
        ("1d12h", DAY + 12 * 3600),
        ("1 day 12 hours", DAY + 12 * 3600),
        ("2 weeks, 3 days", 17 * DAY),
        ("1 year and 2 months", 425 * DAY),
        ("90 min", 5400),
        ("1Y", 365 * DAY),
    ],
)
def test_durations_in_words_and_years(text: str, seconds: int) -> None:
    assert parse_expires(text, now=NOW) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0", "0d", "0y", "0 days", "0h0m"])
def test_zero_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="positive"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1 fortnight", "1.5d", "-1d", "d30", "30 d x", "soon"])
def test_unreadable_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        parse_expires(text, now=NOW)


def test_a_date_means_the_end_of_that_day_utc() -> None:
    assert parse_expires("2027-01-01", now=NOW) == datetime(2027, 1, 1, 23, 59, 59, tzinfo=UTC)
    # Today (UTC) is still a valid expiry until its last second.
    assert parse_expires("2026-06-01", now=NOW) == datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-01T12:00Z", datetime(2027, 1, 1, 12, 0, tzinfo=UTC)),
        ("2027-01-01T12:00:30+00:00", datetime(2027, 1, 1, 12, 0, 30, tzinfo=UTC)),
        ("2027-01-01 12:00", datetime(2027, 1, 1, 12, 0, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_iso_datetimes(text: str, expected: datetime) -> None:
    assert parse_expires(text, now=NOW) == expected


def test_an_offset_is_kept() -> None:
    at = parse_expires("2027-01-01T12:00+02:00", now=NOW)
    assert isinstance(at, datetime)
    assert at.astimezone(UTC) == datetime(2027, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2020-01-01", "2026-05-31", "2026-06-01T11:59Z"])
def test_past_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="in the past"):
        parse_expires(text, now=NOW)


@pytest.mark.parametrize("text", ["2027-13-01", "2027-02-30", "2027-01-01T25:00"])
def test_impossible_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="not"):
        parse_expires(text, now=NOW)


@pytest.mark.parametrize(
    "argv",
    [
        ["grant", "add", "--to", "x", "--category", "lab", "--expires", "0"],
        ["grant", "add", "--to", "x", "--category", "lab", "--expires", "0d"],
        ["grant", "add", "--to", "x", "--category", "lab", "--expires", "2020-01-01"],
        ["grant", "add", "--to", "x", "--category", "lab", "--expires", "soon"],
        ["request", "approve", "1", "--expires", "1.5d"],
        ["request", "add", "--patient", "p", "--category", "lab", "--purpose", "tret"],
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    """Exit 2, one line naming the option, and no profile or network touched (the data dir
    stays empty)."""
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), *argv])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for --")
    assert list(tmp_path.iterdir()) == []


def test_purpose_usage_error_suggests_the_code(tmp_path: Path) -> None:
    argv = ["request", "add", "--patient", "p", "--category", "lab", "--purpose", "tret"]
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), *argv])
    assert "did you mean TREAT" in result.stderr


def test_parse_capabilities_reads_names_and_none() -> None:
    from emrshare.chain import Capability
    from emrshare.cli._parse import parse_capabilities

    assert parse_capabilities("emergency") is Capability.EMERGENCY
    assert parse_capabilities(" Emergency ,emergency") is Capability.EMERGENCY
    assert parse_capabilities("none") is Capability.NONE
    with pytest.raises(InvalidInput, match="use one of emergency"):
        parse_capabilities("telepathy")
