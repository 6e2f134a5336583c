"""The proxy's emergency (break-glass) opt-ins: one standing opt-in per patient (its
generation, threshold, tags and proxies) and this proxy's kfrag of each tag, kept in the
``kfrags`` table (sealed at rest like a grant's) under the tag's emergency policy id.

A withdrawal, or a newer generation, deletes the older generation's kfrags.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass

from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

__all__ = [
    "EmergencyPolicyRecord",
    "EmergencyQueries",
    "EmergencyScope",
    "emergency_policy_id",
]


def emergency_policy_id(patient: str, tag: bytes) -> bytes:
    """The policy id an opt-in's kfrags of ``tag`` are bound to: ``keccak256(tag ||
    patient)`` (:meth:`emrshare.roles.Patient.emergency.opt_in` makes them so)."""
    return keccak(bytes(tag) + to_canonical_address(patient))


@dataclass(frozen=True, slots=True)
class EmergencyScope:
    """What an emergency kfrag's binding is checked against: the patient, the tag, the
    Emergency contract as grantee and the tag's emergency policy id."""

    policy_id: bytes
    patient: str
    grantee: str
    tag: bytes

    @classmethod
    def of(cls, patient: str, tag: bytes, emergency_contract: str) -> EmergencyScope:
        return cls(emergency_policy_id(patient, tag), patient, emergency_contract, bytes(tag))


@dataclass(frozen=True, slots=True)
class EmergencyPolicyRecord:
    """A patient's standing opt-in as this proxy learnt it from ``EmergencyPolicyCreated``."""

    patient: str
    generation: int
    threshold: int
    tags: tuple[bytes, ...]
    proxies: tuple[str, ...]
    created_block: int


class EmergencyQueries:
    """The opt-in queries of :class:`~emrshare.proxy.node.store.ProxyStore` (which
    provides the connection and its lock; the kfrags go in with its ``put_kfrag``, under
    :func:`emergency_policy_id`)."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def put_emergency_policy(self, tx: sqlite3.Connection, record: EmergencyPolicyRecord) -> None:
        """Store an opt-in, replacing the patient's older one and its kfrags."""
        self.drop_emergency_policy(tx, record.patient, None)
        tx.execute(
            "INSERT INTO emergency_policies VALUES (?,?,?,?,?,?)",
            (
                record.patient.lower(),
                record.generation,
                record.threshold,
                json.dumps([bytes(t).hex() for t in record.tags]),
                json.dumps(list(record.proxies)),
                record.created_block,
            ),
        )

    @staticmethod
    def drop_emergency_policy(
        tx: sqlite3.Connection, patient: str, generation: int | None
    ) -> list[bytes]:
        """Delete the patient's opt-in (only if of ``generation``, unless None) and its
        kfrags; returns the kfrags' policy ids."""
        row = tx.execute(
            "SELECT generation, tags FROM emergency_policies WHERE patient = ?",
            (patient.lower(),),
        ).fetchone()
        if row is None or (generation is not None and int(row[0]) != generation):
            return []
        ids = [emergency_policy_id(patient, bytes.fromhex(t)) for t in json.loads(row[1])]
        tx.executemany("DELETE FROM kfrags WHERE policy_id = ?", [(i,) for i in ids])
        tx.execute("DELETE FROM emergency_policies WHERE patient = ?", (patient.lower(),))
        return ids

    @staticmethod
    def drop_emergency_after(tx: sqlite3.Connection, fork: int) -> list[bytes]:
        """Undo opt-ins created after ``fork`` (a reorg orphaned them), with their kfrags;
        a withdrawal after it stays applied (the proxy fails closed)."""
        patients = [
            str(r[0])
            for r in tx.execute(
                "SELECT patient FROM emergency_policies WHERE created_block > ?", (fork,)
            ).fetchall()
        ]
        out: list[bytes] = []
        for p in patients:
            out += EmergencyQueries.drop_emergency_policy(tx, p, None)
        return out

    def emergency_policy(self, patient: str) -> EmergencyPolicyRecord | None:
        """The patient's standing opt-in as this proxy knows it, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM emergency_policies WHERE patient = ?", (patient.lower(),)
            ).fetchone()
        if row is None:
            return None
        return EmergencyPolicyRecord(
            patient,
            int(row[1]),
            int(row[2]),
            tuple(bytes.fromhex(t) for t in json.loads(row[3])),
            tuple(json.loads(row[4])),
            int(row[5]),
        )
