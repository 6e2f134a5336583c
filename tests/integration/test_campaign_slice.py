"""A fast slice of each campaign family of ``benchmarks/reliability_report.py`` (issue #10).

One shared anvil world (deployed contracts, three real proxy processes, M = 2, audit
flushes every 2 s) runs one pass of each family and asserts its goal: nothing lost or
duplicated after injected faults, nothing served at or after a revocation's block,
no replayed, forged, expired or foreign request honoured, every serve logged once and
nothing logged unserved, no forged audit entry or expelled writer's append accepted, no
sensitive name, hash, CID or plaintext on the raw chain, no wrong plaintext under a
flapping proxy, and the forge invariants at a reduced run count. The full figures
(ganache too, more rounds) come from the report itself (docs/reliability.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import accountability, faults, invariants, races  # noqa: E402
from benchmarks._campaign.concurrent import run_concurrent  # noqa: E402
from benchmarks._campaign.privacy import run_privacy  # noqa: E402
from benchmarks._campaign.world import World, world  # noqa: E402

from tests.integration.chain.test_forge_invariants import INVARIANTS  # noqa: E402

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("campaign"), flush_interval=2.0, flush_entries=64) as w:
        yield w


def test_campaign_faults_lose_and_duplicate_nothing(w: World, tmp_path: Path) -> None:
    tally = faults.Tally()
    faults._writer_faults(tmp_path / "writer", tally, lambda kind: 1, True)
    faults._proxy_faults(w, tally, 1)
    faults._reorgs(w, tally, 1)
    faults._killed_before_logging(w, tally, 1)
    injected, lost, dup = (sum(v[i] for v in tally.rows.values()) for i in range(3))
    assert injected >= 10, tally.rows
    assert (lost, dup) == (0, 0), tally.rows


@pytest.mark.parametrize("order", races.ORDERS)
def test_campaign_race_nothing_served_after_revoke(w: World, order: str) -> None:
    res = races._trial(w, order, f"slice-{order.replace(' ', '-')}")
    assert res["served_before"] == 1, "the read while the revoke waited was served"
    assert res["same_block"] == 1, "the audit entries were mined in the revoke's block"
    assert res["after_client"] == res["after_chain"] == res["after_journal"] == 0, res


def test_campaign_replays_forgeries_and_expelled_writers(w: World) -> None:
    counters, rows, _ = accountability._replays(w, 1)
    assert counters["replays_tried"] >= 11 and counters["replays_valid_served"] == 1
    assert counters["replays_honoured"] == 0, rows
    counters, rows, notes = accountability._audit(w, 1)
    assert counters["audit_client_serves"] >= 3
    assert counters["served_unlogged"] == counters["logged_unserved"] == 0, notes
    assert counters["forged_audit_tried"] >= 9
    assert counters["forged_audit_accepted"] == 0, rows
    assert counters["expelled_writes_tried"] == 6
    assert counters["expelled_writes_accepted"] == 0, rows


def test_campaign_privacy_raw_chain_reveals_nothing(w: World) -> None:
    counters, _rows, notes = run_privacy(w, 1)
    assert counters["privacy_needles"] >= 100 and counters["privacy_linkage_guesses"] >= 150
    assert counters["privacy_hits"] == 0, [n for n in notes if n.startswith("FINDING")]
    assert any("re-keyed tags linked" in n for n in notes)


def test_campaign_concurrent_readers_never_get_a_wrong_plaintext(w: World, tmp_path: Path) -> None:
    counters, rows, _ = run_concurrent(w, tmp_path, readers=10, reads=1, max_flaps=1)
    assert counters["concurrent_reads"] == 10
    assert counters["concurrent_wrong_plaintexts"] == 0, rows
    assert counters["concurrent_crashed_readers"] == 0, rows


# Slow (~2 min, `make test-all`): the default run holds the same forge invariants at
# >= 256 runs each in tests/integration/chain/test_forge_invariants.py; this checks the
# campaign's forge family (its counters and notes) around them.
@pytest.mark.slow
def test_campaign_forge_invariants_run() -> None:
    if not invariants.FORGE.exists():
        pytest.skip("forge is not installed: run `make setup`")
    counters, rows, notes = invariants.invariants(SimpleNamespace(quick=True))
    assert counters["invariant_failed"] == 0, notes
    assert counters["invariant_count"] == len(INVARIANTS), rows  # every suite's, DrugTrace's too
    assert counters["invariant_min_runs"] >= invariants.RUNS[1], rows
