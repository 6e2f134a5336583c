"""Where a bulk add's CPU goes, process by process (docs/performance.md).

    python benchmarks/bulk_cpu.py [--bulk 3000] [--batch 50]

Starts a devnet (anvil, three proxy processes at 2-of-3, LocalStore), warms up, then
adds ``--bulk`` × 2 KB records with ``Provider.add_records`` and reads the CPU time
(user + system, from ``/proc/<pid>/stat`` and ``os.times``) each process spent on it:
this process (the writer), its sealing workers, anvil and the proxies, which follow every
appended entry. On the 2-core development VM they all share two cores, so the records/s
of a bulk add is bounded by their sum: the figure says which process to make cheaper.
The proxies are given 1.5 s after the add to finish following it. Ends with one JSON
line ``{"bulk_rec_per_s", "cpu_ms_per_record": {"writer", "sealers", "anvil",
"proxies", "total"}, "cores", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _actors import devnet_actors

TICK = os.sysconf("SC_CLK_TCK")


def devnet_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every anvil and proxy process on this machine, by pid."""
    out: dict[int, tuple[str, float]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "anvil" if "anvil" in cmd else "proxies" if "proxy serve" in cmd else None
        if kind is not None:
            out[int(pid)] = (kind, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    with devnet_actors("emrshare-bulk-cpu-") as world:
        a, patient = world.a, world.patient
        a.add_records(patient.address, "bulk", [os.urandom(2048) for _ in range(50)])  # warm
        contents = [os.urandom(2048) for _ in range(args.bulk)]
        time.sleep(1.0)  # the proxies have followed the warm-up
        before, t0, own0 = devnet_cpu(), time.perf_counter(), os.times()
        a.add_records(patient.address, "bulk", contents, batch_size=args.batch)
        wall, own1 = time.perf_counter() - t0, os.times()
        time.sleep(1.5)
        after = devnet_cpu()
    per: dict[str, float] = {
        "writer": own1.user - own0.user + own1.system - own0.system,
        "sealers": (
            own1.children_user - own0.children_user + own1.children_system - own0.children_system
        ),
        "anvil": 0.0,
        "proxies": 0.0,
    }
    for pid, (kind, seconds) in after.items():
        per[kind] += seconds - before.get(pid, (kind, seconds))[1]
    per["total"] = sum(per.values())
    ms = {k: round(v / args.bulk * 1000, 3) for k, v in per.items()}
    cores = os.cpu_count() or 1
    rate = args.bulk / wall
    print(f"bulk add of {args.bulk} x 2 KB in batches of {args.batch}: {rate:.0f} records/s")
    print("CPU per record (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()))
    print(
        f"on {cores} cores the CPU alone allows {cores / per['total'] * args.bulk:.0f} "
        "records/s at most"
    )
    result = {
        "benchmark": "bulk_cpu",
        "bulk_rec_per_s": round(rate, 1),
        "cpu_ms_per_record": ms,
        "cpu_bound_rec_per_s": round(cores / per["total"] * args.bulk, 1),
        "cores": cores,
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
