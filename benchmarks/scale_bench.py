"""The scale curve (issue #19): per-operation latencies as one chain grows to 100,000 records.

One devnet (anvil with no block time, LocalStore, three real proxy processes at 2-of-3) is
grown in stages, the same chain each time: 1,000 records, measured; extended to 10,000,
measured; extended to 100,000, measured (``--quick``: 1,000 / 3,000 / 10,000). At N records
the consortium holds about N / 100 patients (at most 1,000; 1 % of them heavy, up to 2,000
records each), N / 10 grants of which a fifth revoked, and 2 N audit entries.

What is real (see ``_scale_fill.py`` for the synthetic part): the measured patient (the
devnet's ``patient``) has 200 records written by ``hospital-a`` through
``Provider.add_records`` with their blobs stored, a grant of ``lab`` to ``hospital-b`` and
the audit entries of ``hospital-b``'s reads, logged by the proxies. Every other entry,
grant and audit entry is a valid protocol object made in bulk (real sealed entries, real
kfrags, grantee-signed accesses) without a stored blob.

Measured at each size:

- patient lists its own records (``Patient.records``, the whole hash chain verified), in a
  fresh process (cold, what a user opening the app waits for) and again (warm);
- grantee (``hospital-b``) lists the patient's records and reads one through the proxies
  (2-of-3, fully verified), fresh process, cold and warm;
- the patient's audit query (``Patient.audit``), cold and warm;
- proxy watcher catch-up: a fresh proxy store following the whole chain, time per 1,000
  followed events; capsule lookup in that store (``ProxyStore.entries``), p50;
- the proxy database size per record (the running proxy-1's SQLite files / records);
- peak RSS of the proxy processes (``VmHWM``) and of each client process (``ru_maxrss``).

The comparison is each measure at the largest size against the same measure at the
smallest (growth; goal ≤ 1.5 for latencies, 1.0 for bytes per record). anvil runs with no
block time and writes its state only at ``devnet down`` (not every 2 s: the state file
holds every block's state, 400 MB at 10,000 records). With ``--cache [DIR]`` each stage's
devnet is stopped, its directory (anvil's dumped ``--state``, the proxies' databases, the
profiles) copied to ``DIR`` (default ``benchmarks/results/cache/``, git-ignored) and
started again from it; ``--reuse`` then starts a later run from the largest cached stage.
Practical up to about 10,000 records (the dump grows with every block's state).

    python benchmarks/scale_bench.py [--quick] [--time-bound 1500] [--cache [DIR] [--reuse]]

Writes benchmarks/results/scale.json and scale.png; the last line is one JSON object
``{"max_latency_growth", "bytes_per_record_growth", …}``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import _scale_fill as fill
from coincurve import PrivateKey

from emrshare.chain import Role
from emrshare.crypto import MemberKeys, PatientKeys, load_member_keystore
from emrshare.devnet import DEVNET_PASSWORD, dev_private_keys, devnet_down, devnet_up
from emrshare.network import Network
from emrshare.proxy.node import ProxyParts
from emrshare.proxy.node.chain import NodeChain
from emrshare.roles import ConsortiumAdmin, Patient, Profiles, Provider, Requester
from emrshare.roles._ops import member_public_keys

RESULTS = Path(__file__).resolve().parent / "results"
MEASURED_RECORDS = 200
FILLER_KEY = 11  # development account: funds filler patients, acts as the filler proxy
HEAVY_RECORDS = 2_000
SETUP_READS = 40


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


# -- the client side, in a fresh process -----------------------------------------------------


def client_main(role: str, data: Path, record: str, repeat: int) -> dict[str, Any]:
    profiles = Profiles(data)
    net = Network.from_config(profiles.network_path)
    out: dict[str, Any] = {}
    if role == "patient":
        keys = profiles.unlock("patient", DEVNET_PASSWORD)
        assert isinstance(keys, PatientKeys)
        p = Patient(net, keys, state_dir=profiles.get("patient").state_dir)
        for name, op in (("patient_list", p.records), ("patient_audit", p.audit)):
            t0 = time.perf_counter()
            n = len(op())
            out[name + "_cold_ms"] = ms(t0)
            warm = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                op()
                warm.append(ms(t0))
            out[name + "_warm_ms"] = statistics.median(warm)
            out[name + "_items"] = n
        p.close()
    else:
        keys = profiles.unlock("hospital-b", DEVNET_PASSWORD)
        assert isinstance(keys, MemberKeys)
        b = Provider(net, keys, state_dir=profiles.get("hospital-b").state_dir)
        patient = profiles.get("patient").address
        t0 = time.perf_counter()
        out["grantee_list_items"] = len(b.records(patient))
        out["grantee_list_cold_ms"] = ms(t0)
        t0 = time.perf_counter()
        b.read(patient, record)
        out["grantee_read_cold_ms"] = ms(t0)
        lists, reads = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            b.records(patient)
            lists.append(ms(t0))
            t0 = time.perf_counter()
            b.read(patient, record)
            reads.append(ms(t0))
        out["grantee_list_warm_ms"] = statistics.median(lists)
        out["grantee_read_warm_ms"] = statistics.median(reads)
        b.close()
    net.close()
    out[f"{role}_client_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_client(role: str, data: Path, record: str, repeat: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, __file__, "--client", role, "--data", str(data), "--record", record]
    proc = subprocess.run(
        [*cmd, "--repeat", str(repeat)], capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"client {role} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# -- the consortium ----------------------------------------------------------------------------


class Consortium:
    """The devnet, its measured actors and the synthetic fill, grown stage by stage."""

    def __init__(self, data: Path, workers: int, state: dict[str, Any] | None) -> None:
        self.data = data
        self.profiles = Profiles(data)
        self.net = Network.from_config(self.profiles.network_path)
        self.w3 = self.net.w3
        keys = dev_private_keys(12)
        self.filler_key = keys[FILLER_KEY]
        self.workers = workers
        self.pool = cf.ProcessPoolExecutor(workers)
        self.sender = fill.Sender(
            json.loads(self.profiles.network_path.read_text())["rpc_url"],
            self.w3.eth.chain_id,
            2 * self.w3.eth.gas_price,
        )
        self.state: dict[str, Any] = state or {
            "seed": os.urandom(16).hex(),
            "records": {},  # filler patient index -> records appended
            "registered": 0,  # granting patients registered (indices 0..n-1)
            "grants": [],  # [patient index, policy id hex]
            "revoked": 0,
            "audit": 0,
            "measured_record": "",
        }
        self.seed = bytes.fromhex(self.state["seed"])
        #: (fork, end) of the newest filler blocks of the last stage: 20 appendBatch blocks
        #: (1,000 entries) and 200 grant blocks, which the watcher measure re-applies.
        self.windows: dict[str, tuple[int, int]] = dict(self.state.get("windows", {}))
        self.index = self.net.deployment.addresses["RecordIndex"]
        self.grants_addr = self.net.deployment.addresses["Grants"]
        self.audit_addr = self.net.deployment.addresses["AuditLog"]
        insurer = self.profiles.unlock("insurer", DEVNET_PASSWORD)
        assert isinstance(insurer, MemberKeys)
        self.grantee = insurer
        self.grantee_sk = PrivateKey(insurer.ethereum_key)

    # the real part, once
    def setup(self) -> None:
        if self.state["measured_record"]:
            return
        pw = DEVNET_PASSWORD
        a_keys, b_keys = (
            self.profiles.unlock("hospital-a", pw),
            self.profiles.unlock("hospital-b", pw),
        )
        p_keys = self.profiles.unlock("patient", pw)
        assert isinstance(a_keys, MemberKeys) and isinstance(b_keys, MemberKeys)
        assert isinstance(p_keys, PatientKeys)
        a = Provider(self.net, a_keys, state_dir=self.profiles.get("hospital-a").state_dir)
        patient = Patient(self.net, p_keys, state_dir=self.profiles.get("patient").state_dir)
        patient.authorize_writer(a.address, "lab")
        ids = a.add_records(patient.address, "lab", [os.urandom(2048) for _ in range(200)])
        real_proxies = [m.account for m in self.net.proxies()]
        patient.grant(b_keys.address, "lab", expires=timedelta(days=30), proxies=real_proxies)
        # The patient's audit trail starts with SETUP_READS reads by hospital-b (each logged
        # by two proxies); every stage's measure adds its own few, a small drift.
        b = Provider(self.net, b_keys, state_dir=self.profiles.get("hospital-b").state_dir)
        for rid in ids[:SETUP_READS]:
            b.read(patient.address, rid)
        b.close()
        self.state["measured_record"] = "0x" + bytes(ids[len(ids) // 2]).hex()
        self.state["real_proxies"] = real_proxies
        # The filler proxy: a fourth Proxy member (not running) that logs the filler audit.
        fkeys = MemberKeys(os.urandom(32), ethereum_key=self.filler_key)
        admin = ConsortiumAdmin(self.net, dev_private_keys(1)[0])
        Requester(self.net, fkeys, state_dir=self.data / "filler-proxy").apply(
            endpoint="http://127.0.0.1:9"
        )
        registry = self.net.contracts.registry
        if registry.role_of(fkeys.address) is not Role.PROXY:
            admin.admit(fkeys.address, Role.PROXY)
        role = registry.role_of(fkeys.address)
        assert role is Role.PROXY, f"the filler proxy was not admitted ({role})"
        self.state["filler_proxy"] = fkeys.address
        for x in (a, patient):
            x.close()

    def _targets(self, n: int) -> dict[int, int]:
        """Filler records per filler patient at ``n`` records in all (skewed)."""
        filler = n - MEASURED_RECORDS
        patients = max(4, min(1000, n // 100))
        heavy = max(1, patients // 100)
        per_heavy = min(HEAVY_RECORDS, filler // (5 * heavy))
        rest = filler - heavy * per_heavy
        out = {i: per_heavy for i in range(heavy)}
        base, extra = divmod(rest, patients - heavy)
        for j, i in enumerate(range(heavy, patients)):
            out[i] = base + (1 if j < extra else 0)
        return out

    def grow(self, n: int, log: Any) -> dict[str, float]:
        """Extend the chain to ``n`` records, n / 10 grants (a fifth revoked), 2 n audit
        entries; returns the build's timings."""
        t_all = time.perf_counter()
        times: dict[str, float] = {}
        have: dict[str, int] = self.state["records"]
        targets = self._targets(n)
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        new_patients = [i for i in targets if str(i) not in have]
        grants_target = n // 10
        granting = max(2, -(-grants_target // 100))
        # 1. fund the new patients (and the granting ones), one batch
        t0 = time.perf_counter()
        raws = [
            self.sender.sign(
                self.filler_key, fill.patient_keys(self.seed, i).address, b"", 21_000, 10**18
            )
            for i in new_patients
        ]
        if raws:
            self.sender.send(raws)
        for i in range(self.state["registered"], granting):
            keys = fill.patient_keys(self.seed, i)
            Patient(self.net, keys, state_dir=self.data / "filler" / str(i)).register()
            self.sender.nonces.pop(keys.address, None)  # it may have sent the registration
        self.state["registered"] = max(self.state["registered"], granting)
        times["fund_register_s"] = time.perf_counter() - t0
        # 2. the records: sealed in the pool, appendBatch of 50, sent in groups
        t0 = time.perf_counter()
        jobs = []
        for i, target in targets.items():
            done = have.get(str(i), 0)
            for start, count in fill.chunks(target - done, fill.BATCH):
                jobs.append((i, done + start, count))
        futures = [self.pool.submit(fill.seal_chunk, self.seed, i, f, c, now) for i, f, c in jobs]
        raws, blocks = [], []
        for (i, first, _), fut in zip(jobs, futures, strict=True):
            keys = fill.patient_keys(self.seed, i)
            tag = bytes(keys.tag("lab", 0))
            entries = fut.result()
            data = fill.encode("RecordIndex", "appendBatch", [keys.address, tag, first, entries])
            # Generous and per batch (a patient's first append also creates its head, count
            # and sequence slots): calldata, log data and hashing of every entry.
            gas = 200_000 + len(entries) * (40 * max(len(e) for e in entries) + 20_000)
            raws.append(self.sender.sign(keys.ethereum_key, self.index, data, gas))
            if len(raws) >= 200:
                blocks += [int(r["blockNumber"], 16) for r in self.sender.send(raws)]
                raws = []
        if raws:
            blocks += [int(r["blockNumber"], 16) for r in self.sender.send(raws)]
        self.windows["entries"] = (blocks[-min(20, len(blocks))] - 1, blocks[-1])
        for i, target in targets.items():
            have[str(i)] = target
        times["records_s"] = time.perf_counter() - t0
        # 3. the grants, from the granting patients, to the filler grantee via 2-of-4 proxies
        t0 = time.perf_counter()
        proxies = [*self.state["real_proxies"], self.state["filler_proxy"]]
        p_pubs = [member_public_keys(self.net.member(p)) for p in proxies]
        g_pub = member_public_keys(self.net.member(self.grantee.address))
        new = grants_target - len(self.state["grants"])
        per = [new // granting + (1 if i < new % granting else 0) for i in range(granting)]
        gfut = [
            (
                i,
                self.pool.submit(
                    fill.grant_chunk, self.seed, i, k, g_pub, p_pubs, now + 30 * 86400
                ),
            )
            for i, k in enumerate(per)
            if k
        ]
        raws, made = [], []
        for i, fut in gfut:
            keys = fill.patient_keys(self.seed, i)
            for pid, data in fut.result():
                raws.append(self.sender.sign(keys.ethereum_key, self.grants_addr, data, 900_000))
                made.append((i, pid))
        receipts = []
        for s, c in fill.chunks(len(raws), 200):
            receipts += self.sender.send(raws[s : s + c])
        grant_blocks = [int(r["blockNumber"], 16) for r in receipts]
        self.windows["grants"] = (grant_blocks[-min(200, len(grant_blocks))] - 1, grant_blocks[-1])
        times["grants_s"] = time.perf_counter() - t0
        # 4. the audit: per new grant, accesses logged by the filler proxy
        t0 = time.perf_counter()
        head = self.w3.eth.get_block("latest")
        domain = self.net.contracts.audit.domain_separator()
        fp = self.state["filler_proxy"]
        audit_new = 2 * n - self.state["audit"]
        k_each = [
            audit_new // max(1, new) + (1 if j < audit_new % max(1, new) else 0) for j in range(new)
        ]
        raws = []
        for (_, pid), receipt, k in zip(made, receipts, k_each, strict=True):
            if not k:
                continue
            acc = fill.accesses(
                self.grantee_sk,
                domain,
                fp,
                pid,
                k,
                int(receipt["blockNumber"], 16),
                int(head["timestamp"]),
                int(head["timestamp"]) + 3600,
            )
            data = fill.encode("AuditLog", "logAccesses", [pid, self.grantee.address, proxies, acc])
            raws.append(
                self.sender.sign(self.filler_key, self.audit_addr, data, 80_000 + 40_000 * k)
            )
            self.state["audit"] += k
            if len(raws) >= 200:
                self.sender.send(raws)
                raws = []
        if raws:
            self.sender.send(raws)
        times["audit_s"] = time.perf_counter() - t0
        # 5. revoke a fifth of the new grants
        t0 = time.perf_counter()
        raws = []
        for j, (i, pid) in enumerate(made):
            if j % 5 == 0:
                keys = fill.patient_keys(self.seed, i)
                data = fill.encode("Grants", "revoke", [pid])
                raws.append(self.sender.sign(keys.ethereum_key, self.grants_addr, data, 120_000))
        for s, c in fill.chunks(len(raws), 200):
            self.sender.send(raws[s : s + c])
        self.state["revoked"] += len(raws)
        self.state["grants"] += [[i, pid.hex()] for i, pid in made]
        times["revoke_s"] = time.perf_counter() - t0
        times["build_s"] = time.perf_counter() - t_all
        self.state["windows"] = self.windows
        # check the build against the contracts (every receipt was already checked)
        index = self.net.contracts.index
        for i in (0, len(targets) - 1):
            count = index.head(fill.patient_keys(self.seed, i).address).count
            assert count == targets[i], (i, count, targets[i])
        log(f"built {n} records: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
        return times

    def totals(self) -> dict[str, int]:
        return {
            "records": MEASURED_RECORDS + sum(self.state["records"].values()),
            "patients": len(self.state["records"]) + 1,
            "grants": len(self.state["grants"]) + 1,
            "revoked": self.state["revoked"],
            "audit_entries": self.state["audit"],
            "blocks": self.w3.eth.block_number,
        }

    def close(self) -> None:
        self.pool.shutdown()
        self.net.close()


# -- the proxy side ----------------------------------------------------------------------------


def proxy_measures(con: Consortium, tmp: Path, records: int) -> dict[str, float]:
    """On a copy of the running proxy-1's database (full size): the watcher re-applying the
    newest 1,000 filler entries and 200 filler grants of the chain (rolled back, then
    caught up), and capsule lookups; the real database's size per record; the proxies'
    peak RSS."""
    dev = con.data / "devnet" / "proxies"
    out: dict[str, float] = {}
    keys = load_member_keystore(dev / "proxy-1" / "keystore.json", DEVNET_PASSWORD)
    real = dev / "proxy-1" / "data"
    out["proxy_db_bytes_per_record"] = (
        sum(p.stat().st_size for p in real.glob("proxy.sqlite3*")) / records
    )
    chain = NodeChain.connect(con.w3, con.net.deployment, keys.ethereum_key)
    for kind, (fork, end) in sorted(con.windows.items()):
        db = tmp / f"copy-{records}-{kind}.sqlite3"
        src = sqlite3.connect(f"file:{real / 'proxy.sqlite3'}?mode=ro", uri=True)
        dst = sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
        parts = ProxyParts.assemble(chain, keys, db, start_block=con.net.deployment.start_block)
        dropped = parts.store.rollback(fork)
        n = dropped.dropped_entries if kind == "entries" else len(dropped.dropped_policies)
        parts.watcher.max_range = end - fork
        t0 = time.perf_counter()
        prof = None
        if os.environ.get("SCALE_PROFILE"):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        while (parts.store.cursor() or 0) < end:
            parts.watcher.step()
        if prof is not None:
            prof.disable()
            prof.dump_stats(f"{os.environ['SCALE_PROFILE']}-{kind}-{records}.prof")
        out[f"watcher_ms_per_1k_{kind}"] = (time.perf_counter() - t0) * 1000 / (n / 1000)
        if kind == "entries":
            with parts.store.transaction() as tx:
                hashes = [
                    r[0]
                    for r in tx.execute(
                        "SELECT capsule_hash FROM entries ORDER BY RANDOM() LIMIT 300"
                    )
                ]
            lookups = []
            for h in hashes:
                t1 = time.perf_counter()
                parts.store.entries([h])
                lookups.append((time.perf_counter() - t1) * 1e6)
            out["capsule_lookup_us"] = statistics.median(lookups)
        parts.store.close()
        for p in tmp.glob(f"copy-{records}-{kind}.sqlite3*"):
            p.unlink()
    pids = json.loads((con.data / "devnet" / "pids.json").read_text())
    rss = []
    for name, info in pids.items():
        if name.startswith("proxy-"):
            status = Path(f"/proc/{info['pid']}/status").read_text()
            hwm = [ln for ln in status.splitlines() if ln.startswith("VmHWM")]
            rss.append(int(hwm[0].split()[1]) / 1024)
    out["proxy_rss_mib"] = max(rss)
    return out


def wait_proxies_synced(con: Consortium, timeout: float = 300) -> None:
    """Until every running proxy's watcher reached the head (its /healthz cursor)."""
    import httpx

    head = con.w3.eth.block_number
    end = time.monotonic() + timeout
    for m in con.net.proxies():
        if m.account not in con.state["real_proxies"]:
            continue
        while time.monotonic() < end:
            cursor = httpx.get(m.endpoint.rstrip("/") + "/healthz", timeout=10).json()["cursor"]
            if int(cursor or 0) >= head - 2:
                break
            time.sleep(0.5)


# -- the run -------------------------------------------------------------------------------------

#: The latencies of the curve (ms unless named otherwise), each compared across sizes.
LATENCIES = (
    "patient_list_cold_ms",
    "patient_list_warm_ms",
    "grantee_list_cold_ms",
    "grantee_list_warm_ms",
    "grantee_read_cold_ms",
    "grantee_read_warm_ms",
    "patient_audit_cold_ms",
    "patient_audit_warm_ms",
    "watcher_ms_per_1k_entries",
    "watcher_ms_per_1k_grants",
    "capsule_lookup_us",
)
SIZES_PER_RECORD = ("proxy_db_bytes_per_record",)
MEMORY = ("proxy_rss_mib", "patient_client_rss_mib", "grantee_client_rss_mib")
FLOORS = ("floor_eth_call_ms", "floor_cpu_ms", "load_average")


def floors(con: Consortium) -> dict[str, float]:
    """The same run's floors at this size: one ``eth_call`` (``chainOf``) at the newest
    confirmed block, as every verified read makes, and a fixed piece of CPU work (an Umbral
    encrypt + decrypt of 1 KB): what the node and the machine cost right now."""
    import umbral_pre

    patient = con.profiles.get("patient").address
    data = fill.encode("RecordIndex", "chainOf", [patient])
    call = {"to": con.index, "data": "0x" + data.hex()}
    rpc, cpu = [], []
    sk = umbral_pre.SecretKey.random()
    for _ in range(30):
        block = hex(con.w3.eth.block_number - 1)
        t0 = time.perf_counter()
        con.sender.rpc("eth_call", [call, block])
        rpc.append(ms(t0))
        t0 = time.perf_counter()
        capsule, ct = umbral_pre.encrypt(sk.public_key(), b"x" * 1024)
        umbral_pre.decrypt_original(sk, capsule, ct)
        cpu.append(ms(t0))
    return {"floor_eth_call_ms": statistics.median(rpc), "floor_cpu_ms": statistics.median(cpu)}


def measure(con: Consortium, tmp: Path, repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    wait_proxies_synced(con)
    records = con.totals()["records"]
    out: dict[str, float] = {"proxy_sync_wait_s": time.perf_counter() - t0, **floors(con)}
    rid = con.state["measured_record"]
    out.update(run_client("patient", con.data, rid, repeat))
    out.update(run_client("grantee", con.data, rid, repeat))
    out.update(proxy_measures(con, tmp, records))
    return out


def cache_dir(root: Path, quick: bool, n: int) -> Path:
    return root / f"{'quick' if quick else 'full'}-{n}"


def save_stage(con: Consortium, root: Path, quick: bool, n: int, log: Any) -> Consortium:
    """Stop the devnet (anvil writes its state), copy its directory into the cache, and
    start it again from that state."""
    t0 = time.perf_counter()
    data, workers, state = con.data, con.workers, con.state
    con.close()
    devnet_down(data)
    dest = cache_dir(root, quick, n)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(data, dest / "data", symlinks=True)
    (dest / "state.json").write_text(json.dumps(state))
    devnet_up(data, password=DEVNET_PASSWORD, state_interval=None)
    log(f"stage {n} cached in {dest} ({time.perf_counter() - t0:.1f} s, devnet restarted)")
    return Consortium(data, workers, state)


def growth(rows: list[dict[str, Any]], key: str) -> float | None:
    first, last = rows[0].get(key), rows[-1].get(key)
    if not first or last is None:
        return None
    return float(last) / float(first)


def table(rows: list[dict[str, Any]]) -> None:
    sizes = [r["records"] for r in rows]
    head = f"{'measure':<32}" + "".join(f"{n:>11,}" for n in sizes) + f"{'growth':>9}"
    print(head)
    print("-" * len(head))
    for key in (*LATENCIES, *SIZES_PER_RECORD, *MEMORY, *FLOORS):
        vals = "".join(f"{r.get(key, float('nan')):>11.2f}" for r in rows)
        g = growth(rows, key)
        print(f"{key:<32}{vals}{(f'{g:.2f}' if g else '-'):>9}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["records"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=80)
    for key in LATENCIES:
        ys = [r.get(key) for r in rows]
        if all(y for y in ys):
            unit = "µs" if key.endswith("_us") else "ms"
            name = key.replace("_ms", "").replace("_us", "")
            ax.plot(sizes, ys, marker="o", label=f"{name} ({unit})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records on chain")
    ax.set_ylabel("latency")
    ax.set_title("emrshare scale curve (anvil, 3 proxies at 2-of-3)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 / 3,000 / 10,000 records")
    parser.add_argument("--sizes", help="comma-separated record counts (overrides --quick)")
    parser.add_argument(
        "--time-bound", type=float, default=1500, help="seconds; no new stage after"
    )
    parser.add_argument("--repeat", type=int, default=3, help="warm repetitions per client op")
    parser.add_argument("--workers", type=int, default=2, help="sealing processes")
    parser.add_argument(
        "--cache",
        type=Path,
        nargs="?",
        const=RESULTS / "cache",
        help="keep each stage's devnet (anvil state dumped at down) in this directory",
    )
    parser.add_argument("--reuse", action="store_true", help="start from the largest cached stage")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client_main(args.client, args.data, args.record, args.repeat)))
        return 0
    sizes = (
        [int(x) for x in args.sizes.split(",")]
        if args.sizes
        else ([1_000, 3_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    )
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {line}", flush=True)

    # A hard stop: the run ends by itself (the devnet is stopped in ``finally``).
    def _timeout(*_: Any) -> None:
        raise TimeoutError(f"stopped at the hard bound of {args.time_bound + 300:.0f} s")

    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(int(args.time_bound + 300))
    tmp = Path(tempfile.mkdtemp(prefix="emrshare-scale-"))
    data = tmp / "data"
    state = None
    todo = list(sizes)
    if args.reuse and args.cache is not None:
        cached = [
            n for n in sizes if (cache_dir(args.cache, args.quick, n) / "state.json").exists()
        ]
        if cached:
            src = cache_dir(args.cache, args.quick, max(cached))
            shutil.copytree(src / "data", data, symlinks=True)
            state = json.loads((src / "state.json").read_text())
            todo = [n for n in sizes if n >= max(cached)]
            log(f"reusing the cached chain of {max(cached)} records ({src})")
    log("starting devnet (anvil, 3 proxies at 2-of-3, LocalStore)")
    devnet_up(data, password=DEVNET_PASSWORD, state_interval=None)
    rows: list[dict[str, Any]] = []
    stopped = ""
    try:
        con = Consortium(data, args.workers, state)
        con.setup()
        stopped, con = run_stages(con, todo, rows, args, tmp, started, log)
        con.close()
    finally:
        devnet_down(data)
        signal.alarm(0)
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args, stopped)
    return 0


def run_stages(
    con: Consortium,
    todo: list[int],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    tmp: Path,
    started: float,
    log: Any,
) -> tuple[str, Consortium]:
    """Build and measure each size in turn; a stage the time bound (or the hard alarm)
    cuts short is reported, and the sizes measured so far are kept."""
    stopped = ""
    try:
        for n in todo:
            if rows and time.monotonic() - started > args.time_bound:
                stopped = f"time bound {args.time_bound:.0f} s reached before the {n:,} stage"
                log(stopped)
                break
            built = con.grow(n, log) if con.totals()["records"] < n else {}
            if built and args.cache is not None:
                con = save_stage(con, args.cache, args.quick, n, log)
            t0 = time.perf_counter()
            row: dict[str, Any] = {**con.totals(), **built}
            row.update(measure(con, tmp, args.repeat))
            row["measure_s"] = time.perf_counter() - t0
            row["load_average"] = os.getloadavg()[0]
            rows.append(row)
            log(f"measured {n:,} records in {row['measure_s']:.1f} s")
    except TimeoutError as exc:
        stopped = str(exc)
        log(stopped)
    return stopped, con


def report(rows: list[dict[str, Any]], args: argparse.Namespace, stopped: str) -> None:
    if not rows:
        print(json.dumps({"benchmark": "scale_bench", "sizes": [], "stopped": stopped}))
        return
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load}; cores: {os.cpu_count()}")
    print(
        "each measure at every size and its growth (largest / smallest size); the floors "
        "(one eth_call at the confirmed block, a fixed Umbral round trip, the load) show "
        "what the node and the machine cost at each size"
    )
    table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    lat = {k: growth(rows, k) for k in LATENCIES}
    per = {k: growth(rows, k) for k in SIZES_PER_RECORD}
    mem = {k: growth(rows, k) for k in MEMORY}
    real = (
        f"real: the measured patient's {MEASURED_RECORDS} records (hospital-a, blobs stored), "
        "its grant to hospital-b and the audit of hospital-b's reads; synthetic (valid, "
        "bulk-made, no blobs): every other patient's entries, grants and audit entries"
    )
    (args.out / "scale.json").write_text(
        json.dumps({"sizes": rows, "stopped": stopped, "what_is_real": real}, indent=1) + "\n"
    )
    plot(rows, args.out / "scale.png")
    print(f"wrote {args.out / 'scale.json'} and {args.out / 'scale.png'}")
    worst_lat = max((g for g in lat.values() if g), default=None)
    worst_per = max((g for g in per.values() if g), default=None)
    result = {
        "benchmark": "scale_bench",
        "sizes": [r["records"] for r in rows],
        "max_latency_growth": round(worst_lat, 3) if worst_lat else None,
        "worst_latency": max(lat, key=lambda k: lat[k] or 0),
        "bytes_per_record_growth": round(worst_per, 3) if worst_per else None,
        "rss_growth": {k: round(v, 3) for k, v in mem.items() if v},
        "floor_growth": {k: round(v, 3) for k in FLOORS if (v := growth(rows, k))},
        "latency_growth": {k: round(v, 3) for k, v in lat.items() if v},
        "stopped": stopped,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
