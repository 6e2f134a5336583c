"""Several real processes share one LocalStore directory while one of them runs gc."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

from emrshare.storage import LocalStore, compute_cid, read_all


def _worker(args: tuple[str, int]) -> list[str]:
    path, seed = args
    store = LocalStore(path)
    cids = []
    for i in range(6):
        rng = random.Random(seed * 100 + i)
        # Half the blobs are shared between workers: concurrent writes of the same blocks.
        data = rng.randbytes(300_000) if i % 2 else random.Random(i).randbytes(400_000)
        cids.append(store.put(data))
        if seed == 0:
            store.gc()  # one worker collects garbage while the others write
    return cids


def test_several_processes_share_one_store(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_worker, [(str(tmp_path), s) for s in range(4)])
    store = LocalStore(tmp_path)
    store.gc()
    for seed, cids in enumerate(results):
        for i, cid in enumerate(cids):
            rng = random.Random(seed * 100 + i)
            data = rng.randbytes(300_000) if i % 2 else random.Random(i).randbytes(400_000)
            assert cid == compute_cid(data)
            assert read_all(store, cid) == data
