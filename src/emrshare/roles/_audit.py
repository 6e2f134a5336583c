"""The patient's audit trail: logged accesses checked against the patient's own grants,
tags and verified index entries, and grouped into reads (split from the patient facade).

The contract checks the grantee's signature, not that a logged ``evaluated_time`` is
block ``evaluated_at``'s real time. So an entry is shown (``Patient.audit_by_proxy``,
grouped by ``Patient.audit``) only when its policy is the patient's, its requester the
policy's grantee, its ``evaluated_time`` that block's timestamp and every capsule hash
one of the patient's entries under the policy's tag; repeats of one (proxy, requester,
nonce) are dropped. The rest is in ``Patient.audit_anomalies``, with the failed check.

What the trail shows and what it cannot: proxies log only what they *served*. A refused
request (revoked, expired, not the grantee, …) is answered with a signed refusal to the
requester and counted per reason in the proxy's ``/healthz``, but it is journaled nowhere
a patient can read (not on chain, not per patient through any proxy API): refusals are
not part of the trail (see docs/threat-model.md, "The audit trail").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from emrshare.chain import AccessLogged, EntryAppended, GrantCreated
from emrshare.crypto import SealedEntry
from emrshare.errors import ChainError, EmrShareError
from emrshare.network import Network
from emrshare.roles._common import AccessEvent, ReadEvent, checksum
from emrshare.types import Address, PolicyId, RecordId

__all__ = ["AuditTrail", "audit_trail", "group_reads"]


class AuditTrail:
    """The accesses logged for one patient, followed: the confirmed ``AccessLogged``
    events and the block times they name are read once and kept, so each audit reads only
    the blocks confirmed since the last one (its cost follows the new entries, not the
    chain's history). Confirmed blocks are final here as for the index (a reorg deeper
    than the confirmations is not followed)."""

    def __init__(self, patient: _HasNetwork) -> None:
        self.network = patient.network
        self.address = patient.address
        self._logs: list[AccessLogged] = []
        self._through: int | None = None  # the last block whose logs are in _logs
        self._times: dict[int, int] = {}

    def logs(self) -> list[AccessLogged]:
        """Every access logged for the patient up to the newest confirmed block."""
        audit = self.network.contracts.audit
        end = self.network.chain.safe_block()
        start = audit.start_block if self._through is None else self._through + 1
        if end >= start:
            new = audit.events(AccessLogged, patient=self.address, from_block=start, to_block=end)
            self._logs.extend(new)
            self._through = end
        return self._logs

    def time_of(self, block: int) -> int | None:
        """Block ``block``'s timestamp (``None``: the node has no such block)."""
        if block not in self._times:
            try:
                self._times[block] = self.network.chain.block_time(block)
            except ChainError:
                return None  # a block the node does not have: the check fails
        return self._times[block]

    def accesses(
        self,
        grants: Mapping[bytes, GrantCreated],
        tags: Mapping[bytes, tuple[str, int]],
        entries: Sequence[EntryAppended],
    ) -> list[AccessEvent]:
        """Every logged access, each with ``anomaly`` set when a check fails."""
        return audit_trail(self.logs(), self.time_of, grants, tags, entries)


class _HasNetwork(Protocol):
    network: Network
    address: Address


def audit_trail(
    logs: Iterable[AccessLogged],
    time_of: Callable[[int], int | None],
    grants: Mapping[bytes, GrantCreated],
    tags: Mapping[bytes, tuple[str, int]],
    entries: Sequence[EntryAppended],
) -> list[AccessEvent]:
    """Every access of ``logs`` (a patient's), each with ``anomaly`` set when a check
    fails (see :meth:`Patient.audit`); ``time_of`` gives a block's timestamp."""
    # capsule hash -> (tag, record id) of this patient's own, verified entries.
    capsules: dict[bytes, list[tuple[bytes, RecordId]]] = {}
    for ev in entries:
        try:
            h = SealedEntry.from_bytes(bytes(ev.entry)).capsule_hash
        except EmrShareError:
            continue  # an entry that does not parse names no capsule
        capsules.setdefault(bytes(h), []).append((bytes(ev.tag), RecordId(bytes(ev.record_id))))
    out: list[AccessEvent] = []
    seen: set[tuple[str, str, int]] = set()
    for log in logs:
        g = grants.get(bytes(log.policy_id))
        hashes = tuple(bytes(h) for h in log.capsule_hashes)
        rids: list[RecordId] = []
        anomaly = ""
        if g is None:
            anomaly = "the policy is not a grant of this patient"
        elif checksum(log.requester) != checksum(g.grantee):
            anomaly = "the requester is not the grantee of the policy"
        elif time_of(log.evaluated_at) != log.evaluated_time:
            anomaly = (
                f"the logged evaluation time {log.evaluated_time} is not the time of "
                f"block {log.evaluated_at}"
            )
        else:
            for h in hashes:
                match = [rid for tag, rid in capsules.get(h, []) if tag == bytes(g.tag)]
                if not match:
                    anomaly = (
                        f"capsule 0x{h.hex()} is not one of this patient's records "
                        "under the policy's category"
                    )
                    break
                rids.append(match[0])
        key = (checksum(log.proxy), checksum(log.requester), int(log.nonce))
        if not anomaly and key in seen:
            anomaly = "a repeat of an access this proxy already logged (same nonce)"
        if not anomaly:
            seen.add(key)
        out.append(
            AccessEvent(
                policy_id=PolicyId(bytes(log.policy_id)),
                requester=checksum(log.requester),
                proxy=checksum(log.proxy),
                capsule_hashes=hashes,
                nonce=int(log.nonce),
                evaluated_at_block=int(log.evaluated_at),
                evaluated_time=int(log.evaluated_time),
                block_number=log.block_number,
                timestamp=time_of(log.block_number) or 0,
                category=tags.get(bytes(g.tag), (None, 0))[0] if g is not None else None,
                record_ids=tuple(rids) if not anomaly else None,
                anomaly=anomaly,
            )
        )
    return out


def group_reads(
    accesses: Sequence[AccessEvent], grants: Mapping[bytes, GrantCreated]
) -> list[ReadEvent]:
    """The reads ``accesses`` (checked, without anomaly) make up, in order of their first
    log entry: one per (policy, requester, nonce, capsules), as the grantee signs one
    nonce per read for every proxy it asks (a proxy cannot join another's read: the nonce
    is signed and names the proxy's own request). The capsules are in the key because a
    grantee chooses its nonces: one reused for a read of other records through other
    proxies must stay a read of its own, not vanish into the first one's row."""
    groups: dict[tuple[bytes, str, int, tuple[bytes, ...]], list[AccessEvent]] = {}
    for e in accesses:
        if not e.anomaly:
            key = (bytes(e.policy_id), e.requester, e.nonce, e.capsule_hashes)
            groups.setdefault(key, []).append(e)
    out = []
    for (pid, _, _, _), entries in groups.items():
        first = entries[0]
        g = grants.get(pid)
        out.append(
            ReadEvent(
                policy_id=first.policy_id,
                requester=first.requester,
                category=first.category,
                record_ids=first.record_ids or (),
                proxies=tuple(e.proxy for e in entries),
                threshold=int(g.threshold) if g is not None else 0,
                nonce=first.nonce,
                evaluated_at_block=min(e.evaluated_at_block for e in entries),
                evaluated_time=min(e.evaluated_time for e in entries),
                block_number=first.block_number,
                timestamp=first.timestamp,
                accesses=tuple(entries),
            )
        )
    return out
