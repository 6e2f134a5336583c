"""Flame graphs of the hot paths (docs/performance.md), sampled with py-spy.

    python benchmarks/flame.py [--bulk 2000] [--adds 50] [--reads 50] [--out DIR]

Starts a devnet (anvil, three proxy processes at 2-of-3, LocalStore), then attaches
py-spy to this very process (and its sealing workers) for each measured phase only, so
the graphs hold no start-up: a bulk add of ``--bulk`` × 2 KB records in batches of 50,
``--adds`` single adds of 10 KB and ``--reads`` reads through the proxies. Waiting is
sampled too (``--idle``): a thread blocked on a socket to anvil or a proxy shows as that
call, which is where much of an add's and a read's time goes. Writes
``flame-bulk.svg``, ``flame-add.svg`` and ``flame-read.svg`` (default:
benchmarks/results/) and ends with one JSON line naming them and each phase's rate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from _actors import devnet_actors

RESULTS = Path(__file__).resolve().parent / "results"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        sys.exit("py-spy is not installed: run `make setup` (it is in the dev extras)")
    return found


@contextlib.contextmanager
def sampled(out: Path, rate: int) -> Iterator[None]:
    """py-spy records this process (and its children) while the block runs."""
    cmd = [py_spy(), "record", "--idle", "--subprocesses", "--nonblocking"]
    cmd += ["--rate", str(rate), "--pid", str(os.getpid()), "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached before the phase starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the SVG on SIGINT
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            raise
        if not out.exists():
            sys.exit(f"py-spy wrote no {out.name}: {err.decode(errors='replace')[-300:]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk", type=int, default=2000)
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    result: dict[str, object] = {"benchmark": "flame"}
    with devnet_actors("emrshare-flame-") as world:
        a, b, patient = world.a, world.b, world.patient
        a.add_records(patient.address, "bulk", [os.urandom(2048) for _ in range(50)])  # warm
        a.add_record(patient.address, "lab", os.urandom(10_240))

        contents = [os.urandom(2048) for _ in range(args.bulk)]
        with sampled(args.out / "flame-bulk.svg", args.rate):
            t0 = time.perf_counter()
            a.add_records(patient.address, "bulk", contents, batch_size=50)
            result["bulk_rec_per_s"] = round(args.bulk / (time.perf_counter() - t0), 1)

        ids = []
        with sampled(args.out / "flame-add.svg", args.rate):
            t0 = time.perf_counter()
            for _ in range(args.adds):
                ids.append(a.add_record(patient.address, "lab", os.urandom(10_240)))
            result["add_ms"] = round((time.perf_counter() - t0) / args.adds * 1000, 2)

        patient.grant(b.address, "lab", expires=timedelta(days=1))
        b.read(patient.address, ids[0])  # the grant has reached the proxies
        with sampled(args.out / "flame-read.svg", args.rate):
            t0 = time.perf_counter()
            for i in range(args.reads):
                b.read(patient.address, ids[i % len(ids)])
            result["read_ms"] = round((time.perf_counter() - t0) / args.reads * 1000, 2)
    result["svgs"] = [f"flame-{k}.svg" for k in ("bulk", "add", "read")]
    result["load_average"] = round(os.getloadavg()[0], 2)
    print(f"flame graphs in {args.out}: {', '.join(result['svgs'])}")  # type: ignore[arg-type]
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
