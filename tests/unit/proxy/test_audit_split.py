"""The flusher cuts one policy's journal entries into batches within a gas budget."""

from __future__ import annotations

import itertools

from emrshare.chain import AccessEntry
from emrshare.proxy.chainview import audit_gas
from emrshare.proxy.node.audit import split_by_gas
from emrshare.proxy.node.store import JournalEntry


def _entry(i: int, capsules: int) -> JournalEntry:
    hashes = tuple(bytes([i % 256, c % 256]) * 16 for c in range(capsules))
    return JournalEntry(i, b"\x02" * 32, "0xA", (), 7, hashes, i, 100, b"\x01" * 65, 5)


def _gas(batch: list[JournalEntry]) -> int:
    return audit_gas(
        [
            AccessEntry(e.capsule_hashes, e.nonce, e.deadline, e.block, e.block_time, e.signature)
            for e in batch
        ]
    )


def test_split_keeps_every_batch_within_budget_and_every_entry_once_in_order() -> None:
    # 64 entries × 256 capsules: the reviewed attack, 35.4M gas in one batch.
    entries = [_entry(i, 256) for i in range(64)]
    assert _gas(entries) > 30_000_000
    budget = 30_000_000 // 2
    batches = split_by_gas(entries, budget)
    assert len(batches) == 3
    assert all(_gas(b) <= budget for b in batches)
    assert [e.id for b in batches for e in b] == list(range(64))
    # Greedy: no batch could have taken the next batch's first entry.
    for b, nxt in itertools.pairwise(batches):
        assert _gas([*b, nxt[0]]) > budget


def test_split_mixed_sizes_and_edges() -> None:
    entries = [_entry(i, n) for i, n in enumerate([1, 200, 3, 256, 256, 0, 17])]
    budget = _gas(entries[:2])  # exactly the first two
    batches = split_by_gas(entries, budget)
    assert [[e.id for e in b] for b in batches] == [[0, 1], [2], [3], [4], [5, 6]]
    # (a 256-capsule entry alone is over this budget: it is a batch of its own)
    assert all(_gas(b) <= budget or len(b) == 1 for b in batches)
    assert [e.id for b in batches for e in b] == list(range(7))
    # Everything fits: one batch; nothing: no batch.
    assert split_by_gas(entries, 10**9) == [entries]
    assert split_by_gas([], 1) == []
    # An entry over the budget on its own still gets a batch (alone), never dropped.
    big = [_entry(0, 256), _entry(1, 256)]
    assert split_by_gas(big, 1) == [[big[0]], [big[1]]]
