"""Section ``concurrent``: 50 concurrent readers while one proxy flaps.

Fifty reader threads, each with its own network client and grantee state, read the same
granted record repeatedly while proxy 0 is killed (SIGKILL) and restarted in a bounded
loop. Every successful read must be byte-equal to the record; failed reads are allowed
and counted apart (``concurrent_failed_reads``); latency is per successful read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from emrshare.errors import EmrShareError
from emrshare.network import Network
from emrshare.roles import Requester

from .world import World, section_world

Result = tuple[dict[str, int], list[list[str]], list[str]]
READERS = 50
#: Reads per reader and proxy restarts at most: (full, quick).
READS = (4, 1)
FLAPS = (8, 2)


def concurrent(opts: Any) -> Result:
    reads = READS[1] if opts.quick else READS[0]
    max_flaps = FLAPS[1] if opts.quick else FLAPS[0]
    with section_world("emrshare-concurrent-") as w:
        return run_concurrent(w, w.tmp / "concurrent", READERS, reads, max_flaps)


def run_concurrent(w: World, tmp: Path, readers: int, reads: int, max_flaps: int) -> Result:
    """``readers`` threads reading ``reads`` times each while proxy 0 flaps."""
    patient, record, body = w.patient_with_record("concurrent", content=b"\x5a" * 4096)
    done = threading.Event()
    flaps = [0]
    errors: list[str] = []
    victim = w.proxies[0]

    def flap() -> None:
        while not done.is_set() and flaps[0] < max_flaps:
            victim.kill()
            time.sleep(0.3)
            with contextlib.suppress(Exception):
                victim.start()
            flaps[0] += 1
            time.sleep(0.5)

    def reader(i: int) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        net = Network.from_config(w.config)
        try:
            r = Requester(net, w.insurer.keys, state_dir=tmp / f"reader-{i}")
            for _ in range(reads):
                t0 = time.perf_counter()
                try:
                    got = r.read(patient.address, record)
                    out.append(("ok" if got == body else "wrong", time.perf_counter() - t0))
                except EmrShareError as exc:
                    out.append(("failed", time.perf_counter() - t0))
                    errors.append(f"{type(exc).__name__}: {str(exc)[:400]}")
            r.close()
        finally:
            net.close()
        return out

    flapper = threading.Thread(target=flap, daemon=True)
    t0 = time.perf_counter()
    flapper.start()
    results: list[tuple[str, float]] = []
    crashed = 0
    with ThreadPoolExecutor(readers) as pool:
        for fut in [pool.submit(reader, i) for i in range(readers)]:
            try:
                results += fut.result(timeout=600)
            except Exception:
                crashed += 1
    done.set()
    flapper.join(timeout=120)
    wall = time.perf_counter() - t0
    if not victim.running:
        victim.start()
    ok = sorted(t for s, t in results if s == "ok")
    wrong = sum(1 for s, _ in results if s == "wrong")
    failed = sum(1 for s, _ in results if s == "failed") + crashed
    p50 = ok[len(ok) // 2] if ok else 0.0
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))] if ok else 0.0
    counters = {
        "concurrent_reads": len(results),
        "concurrent_wrong_plaintexts": wrong,
        "concurrent_failed_reads": failed,
        "concurrent_crashed_readers": crashed,
        "concurrent_proxy_restarts": flaps[0],
        "concurrent_read_p50_ms": round(p50 * 1000),
        "concurrent_read_p99_ms": round(p99 * 1000),
    }
    rows = [[f"{readers} readers x {reads}", str(len(results)), str(len(ok)), str(wrong),
             str(failed), str(flaps[0]), f"{p50 * 1000:.0f}", f"{p99 * 1000:.0f}",
             f"{wall:.1f}"]]  # fmt: skip
    notes = [f"failed read: {e}" for e in sorted(set(errors))[:5]]
    return counters, rows, notes
