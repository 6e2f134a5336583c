"""Every goal of issue #19 in one table: runs each of its benchmarks with parameters small
enough for all of them to finish in under 10 minutes, reads each one's last JSON line and
prints, per goal, the measured value, its floor, their ratio, the goal and pass or miss.

    .venv/bin/python benchmarks/summary.py            # what `make bench` runs
    .venv/bin/python benchmarks/summary.py --only gas_report,storage_bench

A benchmark that fails, times out or prints no JSON line shows as ``error`` (with its
last stderr line) or ``n/a`` (with the reason) and the summary goes on; so does a goal
whose key a benchmark's JSON lacks (another branch may rename it). The parameters here
are smaller than each benchmark's defaults (see benchmarks/README.md): the figures are a
quick check, the benchmarks themselves give the goal figures. The last line is one JSON
object (``{"goals": [...], "passed", "missed", "unavailable", ...}``). Exit status 0
unless the summary itself breaks: a missed goal is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The whole run stays under this (each benchmark gets at most what is left).
TOTAL_BUDGET_S = 580.0


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    timeout_s: float


#: In this order: the quick ones first, so a slow one that times out costs only itself;
#: scale_bench last, with what is left (``--time-bound``: no new stage after 60 s).
BENCHES = (
    Bench("gas_report", ("--json",), 120),
    Bench("storage_bench", ("--size", "1G", "--repeat", "1"), 210),
    Bench("proxy_bench", ("--seconds", "3", "--reads", "50"), 100),
    Bench("e2e_bench", ("--adds", "20", "--reads", "20", "--bulk", "2000"), 150),
    Bench("scale_bench", ("--quick", "--time-bound", "60"), 240),
)


@dataclass(frozen=True)
class Goal:
    """One goal: where its figures are in a benchmark's JSON line and how it is judged."""

    label: str
    bench: str
    measured: Sequence[str]  # first key present counts (names differ between branches)
    floor: Sequence[str] = ()
    ratio: Sequence[str] = ()
    limit: float | None = None  # an absolute goal: the ratio is measured / limit
    target: str = ""
    ok: Callable[[float], bool] = lambda r: r <= 1.0
    unit: str = ""


GOALS = (
    Goal(
        "add one 10 KB record, p50",
        "e2e_bench",
        ("add_p50_ms",),
        ("add_floor_ms",),
        ("add_ratio",),
        target="ratio <= 2.0",
        ok=lambda r: r <= 2.0,
        unit="ms",
    ),
    Goal(
        "read via 2-of-3 proxies, p50",
        "e2e_bench",
        ("read_p50_ms",),
        ("read_floor_ms",),
        ("read_ratio",),
        target="ratio <= 2.0",
        ok=lambda r: r <= 2.0,
        unit="ms",
    ),
    Goal(
        "bulk add, records/s",
        "e2e_bench",
        ("bulk_rec_per_s",),
        limit=1000.0,
        target=">= 1,000 rec/s",
        ok=lambda r: r >= 1.0,
        unit="rec/s",
    ),
    Goal(
        "bulk add vs pre-built batches",
        "e2e_bench",
        ("bulk_rec_per_s",),
        ("bulk_floor_rec_per_s",),
        ("bulk_ratio",),
        target="ratio >= 0.30",
        ok=lambda r: r >= 0.30,
        unit="rec/s",
    ),
    Goal(
        "proxy cfrags/CPU-s, batch 32",
        "proxy_bench",
        ("batch32_per_cpu_s", "batch32_cfrags_per_cpu_s", "batch32_cfrags_per_s"),
        ("raw_per_cpu_s", "raw_cfrags_per_cpu_s", "raw_reencrypt_per_cpu_s", "raw"),
        ("batch32_ratio",),
        target="ratio >= 0.75",
        ok=lambda r: r >= 0.75,
        unit="cfrags/s",
    ),
    Goal(
        "proxy cfrags/CPU-s, batch 1",
        "proxy_bench",
        ("batch1_per_cpu_s", "batch1_cfrags_per_cpu_s", "batch1_cfrags_per_s"),
        ("raw_per_cpu_s", "raw_cfrags_per_cpu_s", "raw_reencrypt_per_cpu_s", "raw"),
        ("batch1_ratio",),
        target="ratio >= 0.25",
        ok=lambda r: r >= 0.25,
        unit="cfrags/s",
    ),
    Goal(
        "durable put 1 GiB, 1 MiB records",
        "storage_bench",
        ("durable_put_mib_per_s",),
        ("disk_floor_mib_per_s",),
        ("durable_put_ratio",),
        target="ratio >= 0.80",
        ok=lambda r: r >= 0.80,
        unit="MiB/s",
    ),
    Goal(
        "durable put, one 1 GiB blob",
        "storage_bench",
        ("durable_blob_mib_per_s",),
        ("disk_floor_mib_per_s",),
        ("durable_blob_ratio",),
        target="ratio >= 0.80",
        ok=lambda r: r >= 0.80,
        unit="MiB/s",
    ),
    Goal("sealed index entry", "gas_report", ("entry_bytes",), limit=350, target="<= 350 B"),
    Goal("gas, single append", "gas_report", ("single_append",), limit=55_000, target="<= 55,000"),
    Goal("gas, first append", "gas_report", ("first_append",), limit=65_000, target="<= 65,000"),
    Goal(
        "gas, batch of 50 per record",
        "gas_report",
        ("batch50_per_record",),
        limit=14_000,
        target="<= 14,000",
    ),
    Goal(
        "scale: max latency growth",
        "scale_bench",
        ("max_latency_growth",),
        limit=1.5,
        target="<= 1.5",
    ),
    Goal(
        "scale: bytes per record growth",
        "scale_bench",
        ("bytes_per_record_growth",),
        limit=1.1,
        target="~ 1 (<= 1.1)",
    ),
)


@dataclass
class Outcome:
    """What running one benchmark gave: its JSON line, or why there is none."""

    status: str  # ok | error | n/a
    seconds: float = 0.0
    doc: dict[str, Any] | None = None
    reason: str = ""


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                return None
            return doc if isinstance(doc, dict) else None
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(nothing on stderr)"


def run(bench: Bench, budget: float) -> Outcome:
    """Run one benchmark in its own process group (a timeout stops its devnet too)."""
    script = HERE / f"{bench.name}.py"
    if not script.exists():
        return Outcome("n/a", reason=f"benchmarks/{script.name} is not in this tree")
    timeout = min(bench.timeout_s, budget)
    if timeout < 10:
        return Outcome("error", reason="no time left in the 10-minute budget")
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(script), *bench.args],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        stdout, stderr = proc.communicate()
        return Outcome(
            "error",
            time.monotonic() - start,
            reason=f"timed out after {timeout:.0f} s; last stderr: {_last_line(stderr)}",
        )
    seconds = time.monotonic() - start
    doc = _last_json(stdout)
    if doc is not None:  # gas_report exits 1 when over budget: still its figures
        return Outcome("ok", seconds, doc)
    if proc.returncode != 0:
        return Outcome("error", seconds, reason=f"exit {proc.returncode}: {_last_line(stderr)}")
    return Outcome("n/a", seconds, reason=f"{bench.name} printed no JSON line")


def _stop(proc: subprocess.Popen[str]) -> None:
    # SIGINT first, as Ctrl-C: the benchmark's own cleanup runs (its devnet goes down,
    # its temp files, up to 2 GiB for storage_bench, are deleted).
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _pick(doc: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, float | None]:
    for k in keys:
        v = doc.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return k, float(v)
    return None, None


def judge(goal: Goal, outcome: Outcome | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "goal": goal.label,
        "bench": goal.bench,
        "target": goal.target,
        "measured": None,
        "floor": None,
        "limit": goal.limit,
        "ratio": None,
        "status": "n/a",
        "reason": "",
    }
    if outcome is None:
        row["reason"] = f"{goal.bench} was not run (--only)"
        return row
    if outcome.doc is None:
        row["status"] = "error" if outcome.status == "error" else "n/a"
        row["reason"] = outcome.reason
        return row
    doc = outcome.doc
    key, measured = _pick(doc, goal.measured)
    _, floor = _pick(doc, goal.floor)
    _, ratio = _pick(doc, goal.ratio)
    if ratio is None and measured is not None:
        if goal.limit is not None:
            ratio = measured / goal.limit
        elif floor:
            ratio = measured / floor
    row.update(measured=measured, floor=floor, limit=goal.limit, key=key)
    row["ratio"] = round(ratio, 3) if ratio is not None else None
    if ratio is None:
        wanted = [*goal.ratio, *goal.measured] if goal.ratio else list(goal.measured)
        row["reason"] = (
            f"{goal.bench}'s JSON has none of {', '.join(wanted)} "
            f"(its keys: {', '.join(sorted(doc))[:160]})"
        )
        return row
    row["status"] = "pass" if goal.ok(ratio) else "miss"
    return row


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="comma-separated benchmark names (default: all)")
    args = ap.parse_args()
    wanted = set(args.only.split(",")) if args.only else {b.name for b in BENCHES}
    start = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    for bench in BENCHES:
        if bench.name not in wanted:
            continue
        left = TOTAL_BUDGET_S - (time.monotonic() - start)
        print(f"== {bench.name} {' '.join(bench.args)}", flush=True)
        out = run(bench, left)
        outcomes[bench.name] = out
        told = f"{out.status} in {out.seconds:.0f} s" + (f": {out.reason}" if out.reason else "")
        print(f"   {told}", flush=True)
    rows = [judge(g, outcomes.get(g.bench)) for g in GOALS]

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(f"issue #19 goals (load average {load}; cores {os.cpu_count()})")
    head = f"{'goal':<34} {'bench':<14} {'measured':>10} {'floor|limit':>11} {'ratio':>7} "
    print(head + f"{'goal':<15} result")
    for r in rows:
        result = r["status"] if r["status"] in ("pass", "miss") else f"{r['status']}: {r['reason']}"
        print(
            f"{r['goal']:<34} {r['bench']:<14} {_num(r['measured']):>10} "
            f"{_num(r['floor'] if r['floor'] is not None else r['limit']):>11} "
            f"{_num(r['ratio']):>7} {r['target']:<15} {result}"
        )
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "miss", "n/a", "error")}
    total = time.monotonic() - start
    print(
        f"{counts['pass']} passed, {counts['miss']} missed, "
        f"{counts['n/a'] + counts['error']} without a figure; {total:.0f} s"
    )
    print(
        json.dumps(
            {
                "benchmark": "summary",
                "goals": rows,
                "passed": counts["pass"],
                "missed": counts["miss"],
                "unavailable": counts["n/a"] + counts["error"],
                "benches": {
                    n: {"status": o.status, "seconds": round(o.seconds, 1), "reason": o.reason}
                    for n, o in outcomes.items()
                },
                "seconds": round(total, 1),
                "load_average": os.getloadavg()[0],
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
