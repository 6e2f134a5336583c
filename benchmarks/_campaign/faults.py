"""Section ``faults``: injected faults, then every record counted and read back.

Faults: the writer process killed (SIGKILL) right after each journal step (from a path
and from bytes); the store gone mid-write; the chain node stopped mid-write (restarted
from its saved state); N−M and N−M+1 of the N proxies killed during reads; a reorg that
replaces the block holding an append (anvil's ``anvil_reorg``, the append mined again);
a proxy killed between serving a read and logging it on chain.

A *record* is a medical record a writer was told is written, or a served access a proxy
journaled. It is **lost** when it is not on chain exactly once afterwards or does not read
back byte for byte (a read that must succeed fails); **duplicated** when it is on chain
more than once. The writer's kill reuses the child-process approach of
``tests/integration/roles/test_journal_faults.py``; the stack (``make_stack``,
``entries_by_record``) is imported from ``tests.integration.roles.conftest``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.integration.roles.conftest import Stack, entries_by_record, make_stack
from tests.integration.roles.test_journal_faults import CHILD  # the same killed writer

from emrshare.chain import AccessLogged
from emrshare.devnet import DevNode, dev_private_keys
from emrshare.errors import EmrShareError, JournalError
from emrshare.journal import JobState
from emrshare.network import Network
from emrshare.roles import Provider

from .requests import capsules_of, signed_body
from .world import World, section_world

Result = tuple[dict[str, int], list[list[str]], list[str]]
STEPS = ("encrypt", "store", "seal", "send_append")
#: Rounds per fault kind: (full, quick).
ROUNDS = {
    "writer": (2, 1),
    "store": (8, 1),
    "chain": (5, 1),
    "proxies": (4, 1),
    "reorg": (8, 1),
    "proxy-log": (6, 1),
}

#: What went wrong on the way without losing a record (printed as notes).
FINDINGS: list[str] = []


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}  # kind -> [injected, lost, duplicated]

    def add(self, kind: str, lost: int = 0, dup: int = 0) -> None:
        row = self.rows.setdefault(kind, [0, 0, 0])
        row[0] += 1
        row[1] += lost
        row[2] += dup


def faults(opts: Any) -> Result:
    def n(kind: str) -> int:
        return ROUNDS[kind][1 if opts.quick else 0]

    tally = Tally()
    FINDINGS.clear()
    with tempfile.TemporaryDirectory(prefix="emrshare-faults-") as tmp:
        _writer_faults(Path(tmp) / "writer", tally, n, opts.quick)
        with section_world("emrshare-faults-", flush_interval=2.0, flush_entries=64) as w:
            _proxy_faults(w, tally, n("proxies"))
            _reorgs(w, tally, n("reorg"))
            _killed_before_logging(w, tally, n("proxy-log"))
    rows = [[k, *map(str, v)] for k, v in tally.rows.items()]
    total = [sum(v[i] for v in tally.rows.values()) for i in range(3)]
    rows.append(["total", *map(str, total)])
    counters = {
        "faults_injected": total[0],
        "records_lost": total[1],
        "records_duplicated": total[2],
    }
    return counters, rows, [f"FINDING {f}" for f in FINDINGS]


# -- the writer -------------------------------------------------------------------------


def _check(stack: Stack, expected: dict[bytes, bytes]) -> tuple[int, int]:
    counts = entries_by_record(stack)
    lost = dup = 0
    for rid, content in expected.items():
        c = counts.get(rid, 0)
        dup += max(0, c - 1)
        if c == 0:
            lost += 1
            continue
        try:
            if stack.patient.read(rid) != content:
                lost += 1
        except EmrShareError:
            lost += 1
    return lost, dup


def _writer_faults(tmp: Path, tally: Tally, n: Any, quick: bool) -> None:
    tmp.mkdir(parents=True)
    state = tmp / "anvil-state.json"
    node = DevNode.start("anvil", log_dir=tmp, state_path=state)
    stack = make_stack(node, dev_private_keys(10), tmp)
    expected: dict[bytes, bytes] = {}
    try:
        stack.hospital.close()
        modes = (True,) if quick else (True, False)
        for r in range(n("writer")):
            for step in STEPS:
                for from_path in modes:
                    content = os.urandom(5_000 + r)
                    lost, dup = _kill_writer(stack, step, from_path, content, expected)
                    tally.add(f"writer SIGKILL after {step}", lost, dup)
        net = Network.from_config(stack.config_path)  # a new process, as after a crash
        hospital = Provider(net, stack.hospital.keys, state_dir=tmp / "hosp")
        try:
            for _ in range(n("store")):
                lost, dup = _store_outage(stack, hospital, expected)
                tally.add("store gone mid-write", lost, dup)
            for _ in range(n("chain")):
                node, lost, dup = _chain_outage(stack, hospital, node, state, tmp, expected)
                tally.add("chain node down mid-write", lost, dup)
        finally:
            hospital.close()
            net.close()
        lost, dup = _check(stack, expected)  # everything written so far, once more
        if lost or dup:
            tally.add("final recount", lost, dup)
    finally:
        with contextlib.suppress(Exception):
            stack.patient.close()
        with contextlib.suppress(Exception):
            stack.net.close()
        node.stop()


def _kill_writer(
    stack: Stack, step: str, from_path: bool, content: bytes, expected: dict[bytes, bytes]
) -> tuple[int, int]:
    source = stack.tmp / ("record.path" if from_path else "record.bin")
    source.write_bytes(content)
    script = stack.tmp / "child.py"
    script.write_text(CHILD)
    argv = [sys.executable, str(script), str(stack.config_path), str(stack.tmp / "hosp")]
    argv += [stack.hospital_seed.hex(), stack.hospital_eth.hex(), stack.patient.address]
    argv += [step, str(source)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the writer child did not die at {step}: {proc.stderr[-2000:]}")
    net = Network.from_config(stack.config_path)
    hospital = Provider(net, stack.hospital.keys, state_dir=stack.tmp / "hosp")
    try:
        before = {bytes(j.record_id) for j in hospital.writer.journal.jobs()}
        report = hospital.recover()
        lost = len(report.failed)
        for job in hospital.writer.journal.jobs():
            if job.state is JobState.CONFIRMED and bytes(job.record_id) not in expected:
                expected[bytes(job.record_id)] = content
        newest = max(hospital.writer.journal.jobs(), key=lambda j: j.sequence)
        if newest.state is JobState.ROLLED_BACK and (from_path or step != "encrypt"):
            lost += 1  # only bytes that died with the process may be rolled back
        del before
    finally:
        hospital.close()
        net.close()
    more_lost, dup = _check(stack, expected)
    return lost + more_lost, dup


def _store_outage(
    stack: Stack, hospital: Provider, expected: dict[bytes, bytes]
) -> tuple[int, int]:
    store_dir = Path(str(stack.net.store.path))  # type: ignore[attr-defined]
    moved = stack.tmp / "store-away"
    real = hospital.writer.encrypt
    first, second = os.urandom(3000), os.urandom(3000)

    def encrypt_then_lose_store(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        shutil.move(store_dir, moved)
        return result

    hospital.writer.encrypt = encrypt_then_lose_store  # type: ignore[method-assign]
    try:
        hospital.add_record(stack.patient.address, "lab", first, media_type="text/plain")
    except JournalError:
        pass
    finally:
        hospital.writer.encrypt = real  # type: ignore[method-assign]
        if moved.exists():
            shutil.move(moved, store_dir)
    job = max(hospital.writer.journal.jobs(), key=lambda j: j.sequence)
    expected[bytes(job.record_id)] = first
    try:
        rid = hospital.add_record(stack.patient.address, "lab", second, media_type="text/plain")
    except JournalError as exc:  # the next write did not finish the first: recover does
        FINDINGS.append(f"store outage: the next add_record failed ({str(exc)[:160]})")
        report = hospital.recover()
        rid = max(hospital.writer.journal.jobs(), key=lambda j: j.sequence).record_id
        if report.failed:
            return _check(stack, expected)[0] + 1, 0
    expected[bytes(rid)] = second
    return _check(stack, expected)


def _chain_outage(
    stack: Stack,
    hospital: Provider,
    node: DevNode,
    state: Path,
    tmp: Path,
    expected: dict[bytes, bytes],
) -> tuple[DevNode, int, int]:
    port = node.port
    real = hospital.writer.store
    content = os.urandom(2500)

    def store_then_chain_dies(*args: Any, **kwargs: Any) -> Any:
        cid = real(*args, **kwargs)
        node.stop()  # anvil saves its state on the way down
        return cid

    hospital.writer.store = store_then_chain_dies  # type: ignore[method-assign]
    try:
        hospital.add_record(stack.patient.address, "lab", content, media_type="text/plain")
    except (JournalError, EmrShareError):
        pass
    finally:
        hospital.writer.store = real  # type: ignore[method-assign]
    job = max(hospital.writer.journal.jobs(), key=lambda j: j.sequence)
    node = DevNode.start("anvil", port=port, log_dir=tmp, state_path=state)
    report = hospital.recover()
    expected[bytes(job.record_id)] = content
    lost, dup = _check(stack, expected)
    return node, lost + len(report.failed), dup


# -- proxies, reorgs --------------------------------------------------------------------


def _read_ok(w: World, patient: str, record: Any, body: bytes) -> bool:
    try:
        return w.insurer.read(patient, record) == body
    except EmrShareError:
        return False


def _proxy_faults(w: World, tally: Tally, rounds: int) -> None:
    patient, record, body = w.patient_with_record("proxies-down")
    n, m = len(w.proxies), w.net.threshold
    for r in range(rounds):
        for down in (n - m, n - m + 1):
            victims = [w.proxies[(r + i) % n] for i in range(down)]
            for p in victims:
                p.kill()
            ok_down = _read_ok(w, patient.address, record, body)
            for p in victims:
                p.start()
            w.sync_proxies()
            ok_after = _read_ok(w, patient.address, record, body)
            # N−M down: the read must succeed; N−M+1 down: it may fail, but the record
            # must read again once the proxies are back.
            lost = int(not ok_after) + int(down == n - m and not ok_down)
            tally.add(f"{down} of {n} proxies killed (M={m})", lost)


def _reorgs(w: World, tally: Tally, rounds: int) -> None:
    if w.kind != "anvil":
        return
    patient = w.new_patient("reorg")
    patient.authorize_writer(w.hospital.address, "lab")
    expected: dict[bytes, bytes] = {}
    for _ in range(rounds):
        content = os.urandom(1200)
        rid = w.hospital.add_record(patient.address, "lab", content)
        expected[bytes(rid)] = content
        (ev,) = [e for e in w.net.contracts.index.entries(patient.address) if e.record_id == rid]
        raw = w.rpc("eth_getRawTransactionByHash", ["0x" + bytes(ev.tx_hash).hex()])
        depth = w.net.w3.eth.block_number - ev.block_number + 1
        w.rpc("anvil_reorg", [depth, [[raw, 0]]])
        w.hospital.recover()
        counts: dict[bytes, int] = {}
        for e in w.net.contracts.index.entries(patient.address):
            counts[bytes(e.record_id)] = counts.get(bytes(e.record_id), 0) + 1
        lost = dup = 0
        for r in expected:
            c = counts.get(r, 0)
            dup += max(0, c - 1)
            if c == 0:
                lost += 1
            else:
                try:
                    lost += int(patient.read(r) != expected[r])
                except EmrShareError:
                    lost += 1
        tally.add("reorg replacing the append's block", lost, dup)


def _killed_before_logging(w: World, tally: Tally, rounds: int) -> None:
    patient, _record, _body = w.patient_with_record("kill-before-log")
    (grant,) = patient.grants()
    pid = bytes(grant.policy_id)
    (capsule,) = capsules_of(w, patient.address)
    ikey = w.insurer.keys.ethereum_key
    for r in range(rounds):
        p = w.proxies[r % len(w.proxies)]
        b, req = signed_body(w, proxy=p.keys.address, policy_id=pid, capsule=capsule, key=ikey)
        status = p.post(b).status_code
        p.kill()  # flush_interval is 2 s: the serve is journaled, not yet logged
        p.start()
        p.wait_audit_drained(timeout=90.0)
        logged = sum(
            1
            for ev in w.net.contracts.audit.events(AccessLogged)
            if ev.nonce == req.nonce and ev.proxy.lower() == p.keys.address.lower()
        )
        served = int(status == 200)
        tally.add("proxy SIGKILL between serving and logging", max(0, served - logged),
                  max(0, logged - served))  # fmt: skip
