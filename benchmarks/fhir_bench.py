"""FHIR import and read-back on a real devnet (issue #14): anvil, LocalStore, three proxy
processes at 2-of-3, one hospital importing a synthetic population.

    python benchmarks/fhir_bench.py [--patients 100] [--observations 200] [--reads 7]

Prints, each with the floor measured in the same run on the same files:
- the raw ``fhir.resources`` parse rate of the population's resources (json.loads and
  ``model_validate`` of every resource: the floor an importer cannot beat);
- the import rate, resources/s (parse, validate, map, encrypt, store, seal, append,
  confirm; one record per resource), and its ratio to the parse floor;
- the time to read one patient's laboratory Observations back as FHIR through the proxies
  (``read_fhir``: batched re-encryption, every check ``read`` makes), p50 and p90;
- peak RSS of this process.

Goals: import ≥ 1,000 resources/s, read of 200 Observations p50 ≤ 1 s. The last line is
one JSON object: ``{"import_resources_per_s": …, "parse_resources_per_s": …,
"read_200_observations_p50_ms": …, "peak_rss_mib": …}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from _actors import devnet_actors
from fhir.resources import get_fhir_model_class as r5_model
from fhir.resources.R4B import get_fhir_model_class as r4b_model

from emrshare.chain.relayed import DirectSubmitter
from emrshare.crypto import PatientKeys
from emrshare.fhir import CategoryMapping, read_resources
from emrshare.roles import Patient

ROOT = Path(__file__).resolve().parents[1]


def synth() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synth_fhir", ROOT / "scripts" / "synth_fhir.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth_fhir"] = module
    spec.loader.exec_module(module)
    return module


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def resources_of(path: Path) -> list[dict[str, Any]]:
    bundle = json.loads(path.read_text())
    return [e["resource"] for e in bundle.get("entry", [])]


def parse_floor(files: list[Path], version: str) -> tuple[int, float]:
    """Raw fhir.resources: json.loads each file, model_validate each resource."""
    get = r5_model if version == "R5" else r4b_model
    models: dict[str, Any] = {}
    count = 0
    t0 = time.perf_counter()
    for path in files:
        for res in resources_of(path):
            rtype = res["resourceType"]
            if rtype not in models:
                models[rtype] = get(rtype)
            models[rtype].model_validate(res)
            count += 1
    return count, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--observations", type=int, default=200)
    parser.add_argument("--reads", type=int, default=7)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--version", default="R4", choices=["R4", "R5"])
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="emrshare-fhir-bench-"))
    gen = synth()
    t0 = time.perf_counter()
    summary = gen.write_population(
        tmp / "population",
        patients=args.patients,
        seed=args.seed,
        version=args.version,
        fmt="bundle",
        observations=args.observations,
    )
    files = sorted((tmp / "population").glob("patient-*.json"))
    print(f"generated {len(files)} patient bundles in {time.perf_counter() - t0:.1f} s", flush=True)
    del summary

    parsed, parse_s = parse_floor(files, args.version)
    parse_rate = parsed / parse_s
    print(f"{parsed} resources; raw fhir.resources parse: {parse_rate:,.0f}/s", flush=True)

    with devnet_actors(tmp, authorize=False) as world:
        net, hospital, reader = world.net, world.a, world.b
        a_keys = hospital.keys
        # The patients hold no ETH: the hospital's funded key carries their signed
        # operations through the forwarder (what a hospital does for its own patients).
        pays = DirectSubmitter(net.contracts_for(a_keys.ethereum_key).client,
                               net.contracts.forwarder.address)  # fmt: skip
        mapping = CategoryMapping.default()
        patients: list[Patient] = []
        t0 = time.perf_counter()
        for i, path in enumerate(files):
            patient = Patient(net, PatientKeys.generate(), state_dir=tmp / f"p{i}", relay=pays)
            patient.register()
            needed = {mapping.place(r).category for r in read_resources([path]).resources}
            for category in sorted(c for c in needed if c is not None):
                patient.authorize_writer(hospital.address, category)
            patients.append(patient)
        print(f"registered {len(patients)} patients and their writer authorizations in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip

        imported = 0
        t0 = time.perf_counter()
        for n, (patient, path) in enumerate(zip(patients, files, strict=True), 1):
            report = hospital.import_fhir(patient.address, [path], version=args.version)
            imported += report.resources
            if n % 10 == 0 or n == len(files):
                rate = imported / (time.perf_counter() - t0)
                print(f"  imported {n}/{len(files)} patients, {imported} resources, "
                      f"{rate:,.0f}/s", flush=True)  # fmt: skip
        import_s = time.perf_counter() - t0
        import_rate = imported / import_s

        first = patients[0]
        first.grant(reader.address, "lab-results", expires=timedelta(days=1))
        got = reader.read_fhir(
            first.address, category="lab-results", resource_types=["Observation"]
        )
        read_ms = []
        for _ in range(args.reads):
            t0 = time.perf_counter()
            got = reader.read_fhir(
                first.address, category="lab-results", resource_types=["Observation"]
            )
            read_ms.append((time.perf_counter() - t0) * 1000)
        n_obs = len(got)

        print()
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load}; cores: {os.cpu_count()}")
        print(f"{'measure':<52} {'value':>12} {'floor/goal':>16}")
        print(
            f"{'raw fhir.resources parse (resources/s)':<52} {parse_rate:>12,.0f} {'(floor)':>16}"
        )
        print(
            f"{f'import {imported} resources, {len(files)} patients (resources/s)':<52} "
            f"{import_rate:>12,.0f} {'goal >= 1,000':>16}"
        )
        print(f"{'  import rate / parse floor':<52} {import_rate / parse_rate:>12.1%}")
        print(
            f"{f'read_fhir {n_obs} lab Observations, p50 (ms)':<52} "
            f"{statistics.median(read_ms):>12.0f} {'goal <= 1,000':>16}"
        )
        print(f"{f'read_fhir {n_obs} lab Observations, p90 (ms)':<52} {pct(read_ms, 0.9):>12.0f}")
        print(f"{'peak RSS of this process (MiB)':<52} {peak_rss_mib():>12.1f}")
        result = {
            "import_resources_per_s": round(import_rate, 1),
            "parse_resources_per_s": round(parse_rate, 1),
            "read_200_observations_p50_ms": round(statistics.median(read_ms), 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
        for actor in patients:
            actor.close()
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
