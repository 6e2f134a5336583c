"""Section ``invariants``: the forge invariant suites (tests/forge), run offline.

Forge compiles with the pinned solc-js through ``tests/forge/solc`` (the settings of
``foundry.toml``), exactly as ``tests/integration/chain/test_forge_invariants.py`` runs
it; ``--quick`` lowers the runs per invariant with ``FOUNDRY_INVARIANT_RUNS``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FORGE = ROOT / "tools" / "node_modules" / ".bin" / "forge"
#: Runs per invariant: (full, quick). The full run is foundry.toml's 256.
RUNS = (256, 8)
PASS = re.compile(r"\[PASS\] (invariant_\w+)\(\) \(runs: (\d+), calls: (\d+), reverts: (\d+)")
FAIL = re.compile(r"\[FAIL[^\]]*\] (\w+)\(")


def invariants(opts: Any) -> tuple[dict[str, int], list[list[str]], list[str]]:
    runs = RUNS[1] if opts.quick else RUNS[0]
    if not FORGE.exists():
        return {}, [], ["skipped: forge is not installed (make setup)"]
    env = dict(os.environ, FOUNDRY_INVARIANT_RUNS=str(runs))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", "--match-test", "invariant_"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
        start_new_session=True,
    )
    out = proc.stdout + proc.stderr
    rows, total, calls = [], 0, 0
    for m in PASS.finditer(out):
        rows.append([m.group(1), m.group(2), m.group(3), m.group(4)])
        total += int(m.group(2))
        calls += int(m.group(3))
    failed = FAIL.findall(out)
    rows.append(["total", str(total), str(calls), ""])
    counters = {
        "invariant_count": len(rows) - 1,
        "invariant_runs": total,
        "invariant_min_runs": min((int(r[1]) for r in rows[:-1]), default=0),
        "invariant_failed": len(failed) + int(proc.returncode != 0 and not failed),
    }
    notes = [f"forge test --offline, FOUNDRY_INVARIANT_RUNS={runs}: "
             f"{time.perf_counter() - t0:.0f} s, exit {proc.returncode}"]  # fmt: skip
    notes += [f"FINDING invariant failed: {f}" for f in failed]
    return counters, rows, notes
