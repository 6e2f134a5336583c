"""Serial numbers of a batch committed as one Merkle root (``DrugTrace.registerBatch``),
with a proof per unit that ``DrugTrace.dispenseUnit`` and ``verifyUnit`` check.

A leaf is OpenZeppelin's StandardMerkleTree leaf of ``(uint256 index, string serial)``:
``keccak256(bytes.concat(keccak256(abi.encode(index, serial))))``; an inner node hashes
its two children in sorted order (``MerkleProof``'s commutative hash). The tree is built
level by level over the leaves in serial-list order, neighbours paired, an odd last node
promoted unchanged, so a proof is at most ``ceil(log2 n)`` hashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from emrshare._files import loads_json
from emrshare.errors import InvalidInput, WireFormatError
from emrshare.trace.gs1 import validate_serial

__all__ = ["SerialList", "serial_leaf", "serial_proof_root", "verify_serial"]

_FORMAT = "emrshare-serials/1"


def serial_leaf(index: int, serial: str) -> bytes:
    """The leaf of the unit at ``index`` with serial ``serial``."""
    return keccak(keccak(encode(["uint256", "string"], [index, serial])))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def serial_proof_root(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from ``leaf`` (``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node


def verify_serial(root: bytes, index: int, serial: str, proof: Sequence[bytes]) -> bool:
    """Whether ``(index, serial)`` is a leaf of ``root`` by ``proof``."""
    return serial_proof_root(serial_leaf(index, serial), proof) == root


@dataclass(frozen=True, slots=True)
class SerialList:
    """A batch's serial numbers in unit order, with its tree (levels, leaves first)."""

    serials: tuple[str, ...]
    _levels: tuple[tuple[bytes, ...], ...] = field(repr=False, compare=False)
    _positions: dict[str, int] = field(repr=False, compare=False)

    @classmethod
    def of(cls, serials: Iterable[str]) -> SerialList:
        """The list of ``serials`` (each valid GS1 AI 21; no duplicate, ``InvalidInput``
        naming the first one repeated)."""
        items = tuple(serials)
        if not items:
            raise InvalidInput("a serialized batch needs at least one serial number")
        positions: dict[str, int] = {}
        for i, s in enumerate(items):
            validate_serial(s)
            if s in positions:
                raise InvalidInput(
                    f"serial {s!r} appears twice (units {positions[s]} and {i}); "
                    "every unit of a batch needs its own serial"
                )
            positions[s] = i
        level = tuple(serial_leaf(i, s) for i, s in enumerate(items))
        levels = [level]
        while len(level) > 1:
            nxt = [_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = tuple(nxt)
            levels.append(level)
        return cls(items, tuple(levels), positions)

    @property
    def root(self) -> bytes:
        """The Merkle root the manufacturer registers."""
        return self._levels[-1][0]

    def __len__(self) -> int:
        return len(self.serials)

    def index_of(self, serial: str) -> int | None:
        """The unit index of ``serial``, or ``None`` if it is not in the batch."""
        return self._positions.get(serial)

    def proof(self, index: int) -> list[bytes]:
        """The proof of the unit at ``index`` (``IndexError`` outside the list)."""
        if not 0 <= index < len(self.serials):
            raise IndexError(f"unit {index} is outside the batch's {len(self.serials)} units")
        out: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return out

    def to_bytes(self) -> bytes:
        """The list as a JSON file (what the manufacturer hands to pharmacies)."""
        return json.dumps(
            {"format": _FORMAT, "root": "0x" + self.root.hex(), "serials": list(self.serials)},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, root: bytes | None = None) -> SerialList:
        """A list read back; with ``root``, verified against the registered root."""
        try:
            doc = loads_json(bytes(data).decode())
            if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
                raise ValueError("not an emrshare serial list")
            listed = doc.get("serials")
            if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
                raise ValueError("its serials are not a list of strings")
            out = cls.of(listed)
        except (ValueError, TypeError, RecursionError, InvalidInput) as exc:
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
            raise WireFormatError(f"not a valid serial list: {reason}") from None
        if root is not None and out.root != root:
            raise WireFormatError(
                "the serial list does not match the batch's registered root; get the "
                "manufacturer's list again"
            )
        return out
