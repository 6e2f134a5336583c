"""`Provider.add_records(progress=)` on a real anvil and LocalStore (issue 19): a bulk
import interrupted by Ctrl-C after its first batch is on chain, then re-run, imports every
file exactly once; progress(done, total) never decreases, starts the re-run at what is
already in, and ends at (total, total). The interrupted writes are finished in batches,
not in one transaction each."""

from __future__ import annotations

import os

import pytest

from tests.integration.roles.conftest import Stack, entries_by_record

N, BATCH = 120, 50


def test_ctrl_c_mid_import_then_rerun_imports_each_file_once(stack: Stack) -> None:
    folder = stack.tmp / "export"
    folder.mkdir()
    files = []
    for n in range(N):
        f = folder / f"lab-{n:04d}.txt"
        f.write_bytes(b"result %d " % n + os.urandom(16))
        files.append(f)
    hospital, patient = stack.hospital, stack.patient.address
    first: list[tuple[int, int]] = []

    def ctrl_c_after_the_first_batch(done: int, total: int) -> None:
        first.append((done, total))
        if done >= BATCH:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hospital.add_records(
            patient, "lab", files, batch_size=BATCH, progress=ctrl_c_after_the_first_batch
        )
    assert first[0] == (0, N) and first[-1] == (BATCH, N)
    assert len(entries_by_record(stack)) == BATCH, "the interrupt landed after one batch"

    seen: list[tuple[int, int]] = []
    ids = hospital.add_records(
        patient, "lab", files, batch_size=BATCH, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (BATCH, N), "the re-run starts at the records already in"
    assert seen[-1] == (N, N)
    done = [d for d, _ in seen]
    assert done == sorted(done), "never decreases"
    assert {t for _, t in seen} == {N}

    counts = entries_by_record(stack)
    assert len(ids) == len(set(ids)) == N
    assert sorted(counts) == sorted(bytes(r) for r in ids), "the chain holds these ids"
    assert set(counts.values()) == {1}, "each exactly once"
    entries = list(stack.net.contracts.index.entries(stack.patient.address))
    assert len(entries) == N
    # The 70 interrupted writes were appended in two batches, not 70 transactions.
    assert len({e.tx_hash for e in entries}) == -(-N // BATCH)

    # Once more: everything is in; nothing is written, progress is (N, N) at once.
    again: list[tuple[int, int]] = []
    assert (
        hospital.add_records(patient, "lab", files, progress=lambda d, t: again.append((d, t)))
        == ids
    )
    assert again[0] == (N, N) and len(entries_by_record(stack)) == N
