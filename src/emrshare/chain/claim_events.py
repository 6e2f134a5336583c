"""Event dataclasses of the ``Claims`` contract (beside :mod:`emrshare.chain.events`,
which holds the other contracts' events)."""

from __future__ import annotations

from dataclasses import dataclass

from emrshare.chain.events import ChainEvent
from emrshare.types import PolicyId

__all__ = ["ClaimAdjudicated", "ClaimConsented", "ClaimFiled", "ClaimSettled"]


@dataclass(frozen=True, slots=True)
class ClaimFiled(ChainEvent):
    """A hospital filed claim ``claim_id`` with ``insurer`` for ``patient``'s encounter
    ``records``, billing the prescriptions ``items`` (amount in minor units)."""

    claim_id: bytes
    patient: str
    insurer: str
    hospital: str
    commitment: bytes
    amount: int
    records: tuple[bytes, ...]
    items: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ClaimConsented(ChainEvent):
    """The patient linked grant ``policy_id`` (scoped to the claim's records) as consent."""

    claim_id: bytes
    patient: str
    policy_id: PolicyId


@dataclass(frozen=True, slots=True)
class ClaimAdjudicated(ChainEvent):
    """The insurer adjudicated the claim; ``status`` is ``Claims.Status`` (3 approved,
    4 partially approved, 5 denied), ``reason`` an administrative reason code."""

    claim_id: bytes
    patient: str
    insurer: str
    status: int
    approved_amount: int
    reason: int


@dataclass(frozen=True, slots=True)
class ClaimSettled(ChainEvent):
    """Settlement of ``amount`` (minor units) from ``insurer`` to ``hospital``, emitted with
    the approval."""

    claim_id: bytes
    hospital: str
    insurer: str
    amount: int
