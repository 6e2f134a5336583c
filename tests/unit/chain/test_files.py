"""The chain layer's small files: event cursor and deployment file (atomic, typed errors)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from emrshare.chain import Deployment, EventCursor
from emrshare.errors import ConfigurationError


def test_cursor_and_deployment_files_round_trip_without_temp_leftovers(tmp_path: Path) -> None:
    cursor = EventCursor(tmp_path / "state" / "cursor.json")
    cursor.advance("grants", 12)
    cursor.advance("grants", 5)  # never moves back
    assert EventCursor(tmp_path / "state" / "cursor.json").next_block("grants", 0) == 12
    dep = Deployment(31337, {"Grants": "0x" + "11" * 20}, 7, "0x" + "22" * 20)
    dep.write(tmp_path / "state" / "deployment.json")
    assert Deployment.read(tmp_path / "state" / "deployment.json") == dep
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        "cursor.json",
        "deployment.json",
    ]
    assert stat.S_ISREG((tmp_path / "state" / "cursor.json").stat().st_mode)


def test_unwritable_locations_are_configuration_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    with pytest.raises(ConfigurationError, match="event cursor"):
        EventCursor(tmp_path / "a-file" / "cursor.json").advance("k", 1)
    dep = Deployment(1, {}, 0, "0x" + "22" * 20)
    with pytest.raises(ConfigurationError, match="deployment file"):
        dep.write(tmp_path / "a-file" / "deployment.json")
