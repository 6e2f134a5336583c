"""Serial lists as Merkle roots: every unit's proof verifies, nothing else does."""

from __future__ import annotations

import json

import pytest

from emrshare.errors import InvalidInput, WireFormatError
from emrshare.trace import SerialList, serial_leaf, serial_proof_root, verify_serial


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 33])
def test_every_unit_proves_and_no_other_does(n: int) -> None:
    serials = [f"SN{i:04d}" for i in range(n)]
    lst = SerialList.of(serials)
    assert len(lst) == n
    for i, s in enumerate(serials):
        proof = lst.proof(i)
        assert len(proof) <= max(1, (n - 1).bit_length())
        assert verify_serial(lst.root, i, s, proof)
        assert lst.index_of(s) == i
        # The same serial at another index, or another serial at this one, fails.
        assert not verify_serial(lst.root, i + 1, s, proof)
        assert not verify_serial(lst.root, i, s + "X", proof)
    assert lst.index_of("FAKE") is None
    if n == 1:
        assert lst.root == serial_leaf(0, "SN0000")


def test_a_tampered_proof_fails() -> None:
    lst = SerialList.of(f"S{i}" for i in range(6))
    proof = lst.proof(2)
    bad = [bytes(32), *proof[1:]]
    assert serial_proof_root(serial_leaf(2, "S2"), bad) != lst.root
    with pytest.raises(IndexError, match="outside"):
        lst.proof(6)


def test_the_root_depends_on_order() -> None:
    assert SerialList.of(["A", "B"]).root != SerialList.of(["B", "A"]).root


def test_duplicates_and_bad_serials_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"appears twice \(units 0 and 2\)"):
        SerialList.of(["A", "B", "A"])
    with pytest.raises(InvalidInput, match="at least one"):
        SerialList.of([])
    with pytest.raises(InvalidInput, match="serial number"):
        SerialList.of(["bad serial"])


def test_file_round_trip_checks_the_registered_root() -> None:
    lst = SerialList.of(["A", "B", "C"])
    back = SerialList.from_bytes(lst.to_bytes(), root=lst.root)
    assert back.serials == lst.serials and back.root == lst.root
    with pytest.raises(WireFormatError, match="registered root"):
        SerialList.from_bytes(lst.to_bytes(), root=bytes(32))
    swapped = json.loads(lst.to_bytes())
    swapped["serials"] = ["A", "C", "B"]
    with pytest.raises(WireFormatError, match="registered root"):
        SerialList.from_bytes(json.dumps(swapped).encode(), root=lst.root)
    for junk in (
        b"",
        b"[]",
        b'{"format":"x"}',
        b'"text"',
        b"\xff",
        b"[" * 100_000,
        b'{"format":"emrshare-serials/1","serials":[1,2]}',
    ):
        with pytest.raises(WireFormatError, match="not a valid serial list"):
            SerialList.from_bytes(junk)
