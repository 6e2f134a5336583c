"""``benchmarks/reliability_report.py --quick``: its last line is one JSON object of
integer counters, and the malformed campaign accepts nothing (no sockets: the proxy
family is skipped here and runs in the integration suite)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_quick_report_ends_with_integer_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location(
        "reliability_report", ROOT / "benchmarks" / "reliability_report.py"
    )
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reliability_report", report)
    spec.loader.exec_module(report)
    result = report.main(["--quick", "--seed", "3", "--only", "malformed", "--no-network"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == result
    assert all(type(v) is int for v in result.values())
    assert "| family" in "\n".join(lines)
    assert result["malformed_tried"] >= 200
    assert result["malformed_accepted"] == result["malformed_crashed"] == 0
