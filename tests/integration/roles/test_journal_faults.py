"""Exactly-once writes against real anvil and a real LocalStore.

The writer process is killed (SIGKILL) right after each journal step; the chain node or
the store goes away mid-write. After recovery there is exactly one index entry per record
and every record reads back byte for byte; rolled-back writes leave nothing pinned.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from emrshare.chain import ChainClient
from emrshare.devnet import DevNode
from emrshare.errors import JournalError
from emrshare.journal import JobState
from emrshare.network import Network
from emrshare.roles import Provider, _sealing_pool
from tests.integration.roles.conftest import Stack, entries_by_record, make_stack

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from emrshare.crypto import MemberKeys
    from emrshare.network import Network
    from emrshare.roles import Provider

    config, state, seed, eth, patient, step, source = sys.argv[1:8]
    net = Network.from_config(Path(config))
    hospital = Provider(
        net, MemberKeys(bytes.fromhex(seed), ethereum_key=bytes.fromhex(eth)),
        state_dir=Path(state),
    )
    writer = hospital.writer
    real = getattr(writer, step)

    def die_after(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies: no cleanup runs
        return result

    setattr(writer, step, die_after)
    content = Path(source) if source.endswith(".path") else Path(source).read_bytes()
    hospital.add_record(patient, "lab", content, media_type="text/plain")
    sys.exit(3)  # not reached
    """
)


def _run_child(stack: Stack, step: str, source: Path) -> None:
    script = stack.tmp / "child.py"
    script.write_text(CHILD)
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(stack.config_path),
            str(stack.tmp / "hosp"),
            stack.hospital_seed.hex(),
            stack.hospital_eth.hex(),
            stack.patient.address,
            step,
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


# encrypt → (state encrypted) → store → (stored) → seal → send_append (mined, the journal
# not yet told: recovery must find it on chain and not append again) → (confirmed). The
# provider's send waits for the receipt, so no separate receipt step runs.
STEPS = ["encrypt", "store", "seal", "send_append"]


@pytest.mark.parametrize("from_path", [True, False], ids=["path", "bytes"])
@pytest.mark.parametrize("step", STEPS)
def test_writer_killed_after_each_step(stack: Stack, step: str, from_path: bool) -> None:
    content = os.urandom(40_000)
    source = stack.tmp / ("record.path" if from_path else "record.bin")
    source.write_bytes(content)
    stack.hospital.close()  # the child process is the writer now
    _run_child(stack, step, source)

    # A new process (here: a fresh network client and Provider on the same state dir)
    # recovers.
    net = Network.from_config(stack.config_path)
    hospital = Provider(net, stack.hospital.keys, state_dir=stack.tmp / "hosp")
    try:
        report = hospital.recover()
        assert report.ok, report.failed
        jobs = hospital.writer.journal.jobs()
        assert len(jobs) == 1
        job = jobs[0]
        counts = entries_by_record(stack)
        if step == "encrypt" and not from_path:
            # Died before the ciphertext was journaled and the caller's bytes are gone with
            # the process: the write never happened, and nothing is left behind.
            assert job.state is JobState.ROLLED_BACK
            assert counts == {}
            assert stack.net.store.pins() == []
        else:
            assert job.state is JobState.CONFIRMED
            assert counts == {bytes(job.record_id): 1}, "exactly one index entry"
            assert stack.patient.read(job.record_id) == content, "nothing lost"
        # The stream continues at the next slot.
        rid = hospital.add_record(stack.patient.address, "lab", b"next", media_type="text/plain")
        assert entries_by_record(stack)[bytes(rid)] == 1
        assert all(n == 1 for n in entries_by_record(stack).values())
    finally:
        hospital.close()
        net.close()


def test_store_outage_mid_write_is_finished_by_the_next_call(stack: Stack) -> None:
    hospital = stack.hospital
    store_dir = Path(str(stack.net.store.path))  # type: ignore[attr-defined]
    real_encrypt = hospital.writer.encrypt
    moved = stack.tmp / "store-away"

    def encrypt_then_lose_store(*args: object, **kwargs: object) -> bytes:
        result = real_encrypt(*args, **kwargs)  # type: ignore[arg-type]
        shutil.move(store_dir, moved)  # the store disappears mid-write
        return result

    hospital.writer.encrypt = encrypt_then_lose_store  # type: ignore[method-assign]
    with pytest.raises(JournalError, match=r"recover\(\)"):
        hospital.add_record(stack.patient.address, "lab", b"first", media_type="text/plain")
    hospital.writer.encrypt = real_encrypt  # type: ignore[method-assign]
    (job,) = hospital.writer.journal.jobs()
    assert job.state is JobState.ENCRYPTED
    assert entries_by_record(stack) == {}

    shutil.move(moved, store_dir)  # the store is back
    second = hospital.add_record(stack.patient.address, "lab", b"second", media_type="text/plain")
    assert hospital.writer.journal.get(job.record_id).state is JobState.CONFIRMED
    assert entries_by_record(stack) == {bytes(job.record_id): 1, bytes(second): 1}
    assert stack.patient.read(job.record_id) == b"first"
    assert stack.patient.read(second) == b"second"


def test_chain_node_down_mid_write_then_recover(dev_keys: list[bytes], tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = DevNode.start("anvil", log_dir=tmp_path, state_path=state)
    port = node.port
    stack = make_stack(node, dev_keys, tmp_path)
    try:
        hospital = stack.hospital
        real_store = hospital.writer.store

        def store_then_chain_dies(*args: object, **kwargs: object) -> object:
            cid = real_store(*args, **kwargs)  # type: ignore[arg-type]
            node.stop()  # anvil saves its state on the way down
            return cid

        hospital.writer.store = store_then_chain_dies  # type: ignore[method-assign]
        with pytest.raises(JournalError):
            hospital.add_record(stack.patient.address, "lab", b"lab v1", media_type="text/plain")
        hospital.writer.store = real_store  # type: ignore[method-assign]
        (job,) = hospital.writer.journal.jobs()
        assert job.state is JobState.STORED

        node = DevNode.start("anvil", port=port, log_dir=tmp_path, state_path=state)
        report = hospital.recover()
        assert report.confirmed == [job.record_id]
        assert entries_by_record(stack) == {bytes(job.record_id): 1}
        assert stack.patient.read(job.record_id) == b"lab v1"
        # A second recovery finds nothing to do and never appends again.
        assert hospital.recover().confirmed == []
        assert entries_by_record(stack) == {bytes(job.record_id): 1}
    finally:
        stack.hospital.close()
        stack.net.close()
        node.stop()


def test_rollback_unpins_the_orphan(stack: Stack) -> None:
    hospital = stack.hospital
    real_seal = hospital.writer.seal

    def seal_then_fail(*args: object, **kwargs: object) -> bytes:
        raise TimeoutError("simulated outage before the append")

    hospital.writer.seal = seal_then_fail  # type: ignore[method-assign]
    with pytest.raises(JournalError):
        hospital.add_record(stack.patient.address, "lab", b"never", media_type="text/plain")
    hospital.writer.seal = real_seal  # type: ignore[method-assign]
    (job,) = hospital.writer.journal.jobs()
    assert job.cid is not None and job.cid in stack.net.store.pins()
    report = hospital.recover(rollback=True)
    assert report.rolled_back == [job.record_id]
    assert job.cid not in stack.net.store.pins()
    assert entries_by_record(stack) == {}


def test_bulk_add_is_batched_and_exactly_once(stack: Stack) -> None:
    contents = [os.urandom(2048) for _ in range(120)]
    ids = stack.hospital.add_records(stack.patient.address, "lab", contents, batch_size=50)
    counts = entries_by_record(stack)
    assert counts == {bytes(r): 1 for r in ids}
    blocks = {ev.block_number for ev in stack.net.contracts.index.entries(stack.patient.address)}
    assert len(blocks) == 3, "120 records in 3 batched appends"
    for i in (0, 57, 119):
        assert stack.patient.read(ids[i]) == contents[i]


def test_write_and_read_back_on_ganache_too(
    ganache: DevNode, dev_keys: list[bytes], tmp_path: Path
) -> None:
    stack = make_stack(ganache, dev_keys, tmp_path)
    try:
        one = stack.hospital.add_record(stack.patient.address, "lab", b"single")
        many = stack.hospital.add_records(stack.patient.address, "lab", [b"a", b"b", b"c"])
        assert entries_by_record(stack) == {bytes(r): 1 for r in [one, *many]}
        assert [stack.patient.read(r) for r in many] == [b"a", b"b", b"c"]
        assert stack.hospital.recover().confirmed == []
    finally:
        stack.hospital.close()
        stack.net.close()


def test_bulk_add_sealed_by_worker_processes(stack: Stack) -> None:
    # Bulk writes seal their entries on worker processes (from a threshold the test
    # lowers); the entries must be exactly what the sequential path writes: readable by
    # the patient, author-verified, once each.
    writer = stack.hospital.writer
    writer.sealer.min_batch = 10
    in_process: list[bytes] = []
    real_seal = writer.seal

    def counting_seal(job: Any, cid: Any, secret: bytes) -> bytes:
        in_process.append(bytes(job.record_id))
        return real_seal(job, cid, secret)

    writer.seal = counting_seal  # type: ignore[method-assign]
    contents = [os.urandom(300) for _ in range(110)]
    ids = stack.hospital.add_records(stack.patient.address, "lab", contents, batch_size=25)
    assert in_process == [], "every entry was sealed by a worker process"
    assert entries_by_record(stack) == {bytes(r): 1 for r in ids}
    for i in (0, 24, 25, 109):
        assert stack.patient.read(ids[i]) == contents[i]
    assert all(j.state is JobState.CONFIRMED for j in writer.journal.jobs())


def test_batch_sent_without_estimate_still_reports_the_revert(stack: Stack) -> None:
    # Later batches of a bulk write reuse the first batch's gas instead of estimating;
    # a batch the contract refuses must still fail with the decoded revert.
    from emrshare.errors import TransactionFailed

    writer = stack.hospital.writer
    contents = [os.urandom(200) for _ in range(50)]
    stack.hospital.add_records(stack.patient.address, "lab", contents, batch_size=25)
    assert writer._batch_gas, "the batch gas was recorded"
    first_batch = sorted(writer.journal.jobs(), key=lambda j: j.sequence)[:25]
    sealed = [b"\x00" * 100] * 25  # shorter than real entries: the recorded gas is used
    with pytest.raises(TransactionFailed, match="is not the index's next slot"):
        writer.send_append(first_batch, sealed)  # slots already taken: WrongSequence
    assert entries_by_record(stack) == {bytes(j.record_id): 1 for j in writer.journal.jobs()}


def test_reused_batch_gas_too_low_is_retried_with_a_fresh_estimate(stack: Stack) -> None:
    # A reused gas figure can fall short of a later batch (the first batch was cheaper):
    # the transaction is mined and fails out of gas. The writer must estimate afresh and
    # finish the bulk add, not abort it; every record lands exactly once and the nonce
    # manager stays in step (the failed transaction consumed its nonce).
    writer = stack.hospital.writer
    stack.hospital.add_records(
        stack.patient.address, "lab", [os.urandom(200) for _ in range(50)], batch_size=25
    )
    ((shape, (size, gas)),) = writer._batch_gas.items()
    used = int((gas - 5_000) / stack.hospital.writer._contracts.index.client.gas_multiplier)
    writer._batch_gas[shape] = (size, int(used * 0.85))  # above intrinsic, below need
    ids = stack.hospital.add_records(
        stack.patient.address, "lab", [os.urandom(200) for _ in range(50)], batch_size=25
    )
    assert len(ids) == 50
    assert all(j.state is JobState.CONFIRMED for j in writer.journal.jobs())
    assert entries_by_record(stack) == {bytes(j.record_id): 1 for j in writer.journal.jobs()}
    more = stack.hospital.add_records(stack.patient.address, "lab", [b"after"], batch_size=25)
    assert stack.patient.read(more[0]) == b"after"


def test_misbound_worker_results_are_not_appended(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker whose answers come back out of order (a bug, a mixed-up chunk) must not
    # put one record's entry in another's slot: every worker result is checked against
    # the job it is for, and a mismatch is sealed in-process instead.
    monkeypatch.setattr(_sealing_pool, "_seal_chunk", _rotated_seal_chunk)
    writer = stack.hospital.writer
    writer.sealer.min_batch = 10
    in_process: list[bytes] = []
    real_seal = writer.seal

    def counting_seal(job: Any, cid: Any, secret: bytes) -> bytes:
        in_process.append(bytes(job.record_id))
        return real_seal(job, cid, secret)

    writer.seal = counting_seal  # type: ignore[method-assign]
    contents = [os.urandom(300) for _ in range(60)]
    ids = stack.hospital.add_records(stack.patient.address, "lab", contents, batch_size=25)
    assert entries_by_record(stack) == {bytes(r): 1 for r in ids}
    for i, rid in enumerate(ids):
        assert stack.patient.read(rid) == contents[i]
    assert len(in_process) == len(ids), "every misbound result was sealed again in-process"


_real_seal_chunk = _sealing_pool._seal_chunk


def _rotated_seal_chunk(*args: Any) -> list[Any]:
    # Module level: the worker pool pickles the function it runs by name.
    out = _real_seal_chunk(*args)
    return out[1:] + out[:1]


BULK_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from emrshare.crypto import MemberKeys
    from emrshare.network import Network
    from emrshare.roles import Provider

    config, state, seed, eth, patient, step, nth, source = sys.argv[1:9]
    net = Network.from_config(Path(config))
    hospital = Provider(
        net, MemberKeys(bytes.fromhex(seed), ethereum_key=bytes.fromhex(eth)),
        state_dir=Path(state),
    )
    writer = hospital.writer
    writer.sealer.min_batch = 10  # worker processes are running when it dies
    target = net.store if step == "put_many" else writer
    real = getattr(target, step)
    calls = []

    def die_after(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies: no cleanup runs
        return result

    setattr(target, step, die_after)
    blob = Path(source).read_bytes()
    contents = [blob[i * 500 : (i + 1) * 500] for i in range(80)]
    hospital.add_records(patient, "lab", contents, batch_size=20)
    sys.exit(3)  # not reached
    """
)


@pytest.mark.parametrize(("step", "nth"), [("put_many", 1), ("send_append", 2)])
def test_bulk_writer_killed_mid_add_then_recovered(stack: Stack, step: str, nth: int) -> None:
    # A bulk add (grouped stores, entries sealed on worker processes, reused batch gas)
    # killed mid-way: after recovery every record has exactly one index entry and reads
    # back, and the killed writer's worker processes did not outlive it.
    blob = os.urandom(80 * 500)
    source = stack.tmp / "bulk.bin"
    source.write_bytes(blob)
    stack.hospital.close()
    script = stack.tmp / "bulk_child.py"
    script.write_text(BULK_CHILD)
    args = [str(stack.config_path), str(stack.tmp / "hosp"), stack.hospital_seed.hex()]
    args += [stack.hospital_eth.hex(), stack.patient.address, step, str(nth), str(source)]
    # The output goes to a file: orphaned workers holding a pipe would hang a capture.
    with (stack.tmp / "bulk_child.log").open("w") as log:
        proc = subprocess.run(
            [sys.executable, str(script), *args], stdout=log, stderr=log, timeout=300
        )
    assert proc.returncode == -signal.SIGKILL, (stack.tmp / "bulk_child.log").read_text()
    # Worker processes are forks of the child (same command line) and hold its keys.
    left = _processes_running(str(script))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the killed writer's sealing workers outlived it"

    net = Network.from_config(stack.config_path)
    hospital = Provider(net, stack.hospital.keys, state_dir=stack.tmp / "hosp")
    try:
        report = hospital.recover()
        assert report.ok, report.failed
        jobs = hospital.writer.journal.jobs()
        assert len(jobs) == 80
        assert all(j.state is JobState.CONFIRMED for j in jobs)
        assert entries_by_record(stack) == {bytes(j.record_id): 1 for j in jobs}
        for j in sorted(jobs, key=lambda j: j.sequence)[::13]:
            want = blob[j.sequence * 500 : (j.sequence + 1) * 500]
            assert stack.patient.read(j.record_id) == want
    finally:
        hospital.close()
        net.close()


def _processes_running(needle: str, settle: float = 5.0) -> list[int]:
    """Pids whose command line contains ``needle``, after giving dying ones ``settle``
    seconds to go (a parent-death signal is delivered asynchronously)."""
    import time

    deadline = time.monotonic() + settle
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in cmd and state != "Z":
                found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_stuck_sealing_workers_do_not_hang_the_bulk_add(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A forked worker can deadlock (a lock another thread held at fork time): the bulk
    # add must give the workers up, end them, and seal in-process.
    monkeypatch.setattr(_sealing_pool, "_seal_chunk", _stuck_seal_chunk)
    monkeypatch.setattr(_sealing_pool, "_SEAL_WAIT", 1.0)
    writer = stack.hospital.writer
    writer.sealer.min_batch = 10
    contents = [os.urandom(300) for _ in range(30)]
    ids = stack.hospital.add_records(stack.patient.address, "lab", contents, batch_size=15)
    assert entries_by_record(stack) == {bytes(r): 1 for r in ids}
    assert stack.patient.read(ids[-1]) == contents[-1]
    import multiprocessing

    assert multiprocessing.active_children() == [], "the stuck workers were ended"


def _stuck_seal_chunk(*args: Any) -> list[Any]:
    import time

    time.sleep(3600)
    return []


def test_write_after_another_process_used_the_key_is_not_refused(stack: Stack) -> None:
    """Another process (the CLI, a crashed writer's successor) sends with the hospital's
    key between two writes: the writer's cached nonce is stale. The next write re-reads it
    and goes through at once (it used to fail once with a JournalError)."""
    first = stack.hospital.add_record(stack.patient.address, "lab", b"one", media_type="text/plain")
    other = ChainClient(stack.net.w3, stack.hospital_eth)  # its own nonce manager
    other.send(stack.hospital.address, value=1, with_logs=False)
    second = stack.hospital.add_record(
        stack.patient.address, "lab", b"two", media_type="text/plain"
    )
    assert entries_by_record(stack) == {bytes(first): 1, bytes(second): 1}
    assert not stack.hospital.writer.journal.jobs(open_only=True)  # nothing left to recover
