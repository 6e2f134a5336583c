"""The patient portal's page latency (issue 18), each page against a floor measured in the
same run: one trivial round trip to the same portal (its stylesheet) plus the same reads
made directly through a ``Patient`` facade in this process (what the page cannot avoid).

A devnet (anvil, three proxies at 2-of-3), ``--records`` records of the patient, a grant
to hospital B and ``--reads`` reads by it (each logged by the proxies), then the portal as
a real ``emrshare portal`` process, logged in over HTTP. Each page is fetched ``--samples``
times, alternately with its floor, so that the machine's load moves both alike.

    python benchmarks/portal_bench.py [--records 20] [--reads 20] [--samples 15]

Last line: one JSON object ``{"pages": {PAGE: {"p50_ms", "floor_ms", "ratio"}}, …}``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from _actors import devnet_actors

from emrshare.devnet import DEVNET_PASSWORD
from emrshare.roles import Patient

#: page -> what the page reads, made directly (the facade part of its floor).
PAGES: dict[str, Callable[[Patient], Any]] = {
    "/": lambda p: (
        p.verify(),
        p.records(),
        p.grants(),
        p.requests(pending_only=True),
        p.emergency.notifications(),
        p.drugs.recall_notices(),
        p.guardians.actions(),
    ),
    "/timeline": lambda p: (p.verify(), p.audit(), p.grants()),
    "/access": lambda p: (p.verify(), p.grants()),
    "/records": lambda p: (p.verify(), p.records()),
    "/requests": lambda p: (p.verify(), p.requests()),
    "/grants": lambda p: (p.verify(), p.grants()),
}


def _ms(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    with devnet_actors("portal-bench-") as actors:
        ids = [
            actors.a.add_record(actors.patient.address, "lab", f"Hb {i} g/dL".encode())
            for i in range(args.records)
        ]
        actors.patient.grant(actors.b.address, "lab", expires=timedelta(days=30))
        for i in range(args.reads):
            actors.b.read(actors.patient.address, ids[i % len(ids)])
        data = actors.patient.state_dir.parent / "data"
        env = dict(os.environ, EMRSHARE_DATA_DIR=str(data), EMRSHARE_PASSWORD=DEVNET_PASSWORD)
        cmd = [sys.executable, "-m", "emrshare.cli", "--profile", "patient", "--json"]
        proc = subprocess.Popen(
            [*cmd, "portal", "--port", "0"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            started = json.loads(proc.stdout.readline())
            base = started["url"].rstrip("/")
            with httpx.Client(base_url=base, timeout=60) as c:
                assert c.get(started["login_url"].removeprefix(base)).status_code == 303
                pages = _measure(c, actors.patient, args.samples)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"portal pages, {args.records} records, {args.reads} reads logged, p50 of "
          f"{args.samples} (floor: a trivial round trip to the portal + the same reads "
          "through a Patient facade in this process)")  # fmt: skip
    print(f"{'page':12} {'p50 ms':>8} {'floor ms':>9} {'ratio':>6}")
    for page, row in pages.items():
        print(f"{page:12} {row['p50_ms']:8.1f} {row['floor_ms']:9.1f} {row['ratio']:6.2f}")
    worst = max(r["ratio"] for r in pages.values())
    print(json.dumps({"pages": pages, "worst_ratio": worst, "records": args.records,
                      "reads": args.reads, "samples": args.samples}))  # fmt: skip


def _measure(c: httpx.Client, patient: Patient, samples: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for page, direct in PAGES.items():
        assert c.get(page).status_code == 200, page  # warm: the portal's caches, as in use
        direct(patient)
        got, floor = [], []
        for _ in range(samples):
            got.append(_ms(functools.partial(_get, c, page)))
            trivial = _ms(functools.partial(_get, c, "/static/portal.css"))
            floor.append(trivial + _ms(functools.partial(direct, patient)))
        p50, f50 = statistics.median(got), statistics.median(floor)
        out[page] = {
            "p50_ms": round(p50, 2),
            "floor_ms": round(f50, 2),
            "ratio": round(p50 / f50, 2),
        }
    return out


def _get(c: httpx.Client, path: str) -> None:
    c.get(path).raise_for_status()


if __name__ == "__main__":
    main()
