"""The fast slice of the malformed-input campaign: every family, seeded, through its real
consumer. The full campaign is ``benchmarks/reliability_report.py``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from .families import FAMILIES, Counts, Family, build, run_family

#: Mutants per family in the unit suite (the campaign runs about 1,000 per family).
SLICE = 30


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Family]:
    return {f.name: f for f in build(7, tmp_path_factory.mktemp("fuzz"))}


def test_every_family_is_built(families: dict[str, Family]) -> None:
    assert tuple(families) == FAMILIES


@pytest.mark.parametrize("name", FAMILIES)
def test_attack_mutated_inputs_are_refused(families: dict[str, Family], name: str) -> None:
    counts = run_family(families[name], random.Random(f"unit-{name}"), SLICE)
    assert counts.findings == []
    assert counts.accepted == counts.crashed == 0
    assert counts.tried + sum(counts.excluded.values()) == SLICE
    assert counts.tried >= SLICE // 2


def test_the_classifier_counts_acceptances_and_crashes(tmp_path: Path) -> None:
    """A consumer that ignores its input is reported, and so is one that crashes."""

    def boom(data: bytes) -> bytes:
        if data == b"original":
            return data
        raise KeyError("not in the error tree")

    lax = run_family(Family("lax", b"original", lambda d: b"ok"), random.Random(1), 20)
    assert lax.accepted == lax.tried > 0 and lax.crashed == 0
    crashing = run_family(Family("boom", b"original", boom), random.Random(1), 20)
    assert crashing.crashed == crashing.accepted == crashing.tried > 0
    total = Counts()
    total.add(lax)
    total.add(crashing)
    assert total.tried == lax.tried + crashing.tried
