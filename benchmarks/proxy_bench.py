"""Proxy benchmark: cfrags/s of one proxy process under 50 concurrent clients, latency
percentiles and errors, and the latency of one 2-of-3 read on loopback.

    .venv/bin/python benchmarks/proxy_bench.py               # ~1 minute
    .venv/bin/python benchmarks/proxy_bench.py --seconds 5   # quicker

Starts its own anvil and three real ``emrshare proxy serve`` processes (the integration
test harness in tests/integration/proxy/support.py), so every request pays the real
checks: signature recovery, chain reads at the latest block, the SQLite journal (fsync)
and re-encryption. Requests are signed before the timed run so the clients' signing does
not compete with the proxy for the CPU.

Goals (printed, never asserted): batched cfrags/s >= 60 % of the raw umbral-pre
``reencrypt`` rate on one core, measured in the same run; error count 0; 2-of-3 read
p50 <= 30 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import umbral_pre

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.proxy.support import (  # noqa: E402
    ROLE_PROVIDER,
    ROLE_PROXY,
    Consortium,
    ProxyProcess,
    make_proxy,
    threshold_policy,
)

from emrshare.crypto.keys import MemberKeys, PatientKeys  # noqa: E402
from emrshare.devnet import DevNode, dev_private_keys  # noqa: E402
from emrshare.proxy.client import ThresholdClient  # noqa: E402
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash  # noqa: E402

CATEGORY = "lab-results"
CLIENTS = 50


def raw_reencrypt_rate(seconds: float) -> float:
    """Re-encryptions per CPU-second of umbral-pre on one core (no I/O, no checks).

    CPU time, not wall time: the machine is shared (clients, anvil, other jobs), and the
    proxy side is measured the same way.
    """
    delegating = umbral_pre.SecretKey.random()
    receiving = umbral_pre.SecretKey.random().public_key()
    signer = umbral_pre.Signer(umbral_pre.SecretKey.random())
    kfrag = umbral_pre.generate_kfrags(delegating, receiving, signer, 2, 3, True, True)[0]
    capsule, _ = umbral_pre.encrypt(delegating.public_key(), b"x" * 200)
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(50):
            umbral_pre.reencrypt(capsule, kfrag)
        n += 50
    return n / (time.process_time() - start)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def signed_bodies(
    chain: Consortium,
    grantee: MemberKeys,
    proxy: ProxyProcess,
    policy_id: bytes,
    capsules: list[bytes],
    count: int,
) -> list[dict[str, Any]]:
    chain_id = chain.deployment.chain_id
    deadline = chain.chain_time() + 3600
    hashes = [capsule_hash(c) for c in capsules]
    out = []
    for _ in range(count):
        req = ReencryptRequest.new(proxy.keys.address, policy_id, hashes, deadline)
        out.append(
            SignedRequest(
                request=req,
                chain_id=chain_id,
                verifying_contract=chain.grants_address,  # type: ignore[arg-type]
                signature=req.sign(grantee.ethereum_key, chain_id, chain.grants_address),
                capsules=tuple(capsules),
            ).to_json()
        )
    return out


async def load(url: str, bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """CLIENTS concurrent clients post pre-signed requests until time or bodies run out."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cfrags = 0
    queue = list(reversed(bodies))
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:

        async def client() -> None:
            nonlocal cfrags
            while queue and time.perf_counter() < stop_at:
                body = queue.pop()
                t0 = time.perf_counter()
                try:
                    resp = await http.post(url + "/v1/reencrypt", json=body)
                    if resp.status_code == 200:
                        cfrags += len(resp.json()["cfrags"])
                        latencies.append(time.perf_counter() - t0)
                    else:
                        key = str(resp.json().get("refused", resp.status_code))
                        errors[key] = errors.get(key, 0) + 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    return {
        "cfrags_per_s": cfrags / elapsed,
        "elapsed": elapsed,
        "requests": len(latencies),
        "p50_ms": 1000 * pct(latencies, 0.50),
        "p99_ms": 1000 * pct(latencies, 0.99),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


async def read_latency(
    chain: Consortium, grantee: MemberKeys, policy: Any, capsule: Any, reads: int
) -> dict[str, float]:
    latencies = []
    async with ThresholdClient(
        grantee.ethereum_key,
        chain_id=chain.deployment.chain_id,
        grants_contract=chain.grants_address,
    ) as client:
        for _ in range(reads):
            deadline = chain.chain_time() + 300
            t0 = time.perf_counter()
            await client.reencrypt(policy, [capsule], deadline=deadline)
            latencies.append(time.perf_counter() - t0)
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * pct(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load phase")
    parser.add_argument("--reads", type=int, default=200, help="2-of-3 reads to time")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="emrshare-proxy-bench-"))
    node = DevNode.start("anvil", log_dir=tmp)
    proxies: list[ProxyProcess] = []
    try:
        keys = dev_private_keys(10)
        chain = Consortium.on(node, keys[0])
        patient = PatientKeys(secrets.token_bytes(32), ethereum_key=keys[1])
        grantee = MemberKeys.generate(ethereum_key=keys[2])
        chain.register_patient(patient)
        chain.admit(grantee, ROLE_PROVIDER)
        for i in range(3):
            member = MemberKeys.generate(ethereum_key=keys[4 + i])
            # ProxyConfig's defaults (the test harness polls and flushes faster).
            proxy = make_proxy(
                tmp / f"proxy{i}",
                member,
                node,
                chain.deployment,
                poll_interval=0.5,
                flush_interval=2.0,
                flush_entries=64,
            )
            chain.admit(member, ROLE_PROXY, proxy.url)
            proxies.append(proxy)
        for p in proxies:
            p.start()
        entries = chain.append(patient, CATEGORY, 0, count=32)
        grant = chain.grant(
            patient,
            CATEGORY,
            0,
            grantee,
            [p.keys for p in proxies],
            2,
            chain.chain_time() + 10**7,
        )
        head = chain.w3.eth.block_number
        for p in proxies:
            p.wait_cursor(head)
        pid = bytes(grant.binding.policy_id)
        capsules = [e.capsule_bytes for e in entries]

        raw = raw_reencrypt_rate(min(args.seconds, 5.0))
        print(f"cores: {os.cpu_count()}  clients: {CLIENTS}  phase: {args.seconds:.0f}s")
        print(f"raw umbral-pre reencrypt: {raw:10.0f} cfrags per CPU-second")
        target = proxies[0]
        rows = []
        for batch in (1, 32):
            # Enough pre-signed requests for the phase (estimated from the raw rate).
            count = max(200, int(raw * args.seconds / batch))
            bodies = signed_bodies(chain, grantee, target, pid, capsules[:batch], count)
            assert target.proc is not None
            proc = psutil.Process(target.proc.pid)
            cpu0 = sum(proc.cpu_times()[:2])
            result = asyncio.run(load(target.url, bodies, args.seconds))
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            # cfrags per CPU-second of the proxy process: "per core", whatever else
            # (clients, anvil, other jobs) shares the machine.
            result["per_cpu_s"] = result["cfrags_per_s"] * result["elapsed"] / cpu
            rows.append((batch, result))
        print()
        print("batch  cfrags/s  per proxy CPU-s  % of raw  requests  p50 ms  p99 ms  errors")
        for batch, r in rows:
            print(
                f"{batch:5d}  {r['cfrags_per_s']:8.0f}  {r['per_cpu_s']:15.0f}"
                f"  {100 * r['per_cpu_s'] / raw:7.1f}%"
                f"  {r['requests']:8d}  {r['p50_ms']:6.1f}  {r['p99_ms']:6.1f}  {r['errors']:6d}"
                + (f"  {r['error_kinds']}" if r["errors"] else "")
            )
        print("(% of raw compares cfrags per CPU-second of the proxy process with raw reencrypt)")
        # Let the audit flusher catch up so the read phase measures reads, not the backlog.
        t0 = time.perf_counter()
        target.wait_audit_drained(timeout=600)
        drained = time.perf_counter() - t0
        served = sum(r["requests"] for _, r in rows)
        logged = sum(1 for e in chain.access_logs() if e["proxy"] == target.keys.address)
        print(
            f"audit: {served} served requests, {logged} AccessLogged on chain "
            f"(backlog drained {drained:.1f}s after the load)"
        )
        policy, _ = threshold_policy(grant, grantee, patient, proxies)
        read = asyncio.run(read_latency(chain, grantee, policy, entries[0].capsule, args.reads))
        print()
        print(
            f"2-of-3 read of one record on loopback ({args.reads} reads): "
            f"p50 {read['p50_ms']:.1f} ms  p99 {read['p99_ms']:.1f} ms  (goal p50 <= 30 ms)"
        )
        print("goals: batched >= 60 % of raw per core; errors 0")
    finally:
        for p in proxies:
            p.stop()
        node.stop()


if __name__ == "__main__":
    main()
