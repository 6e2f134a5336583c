"""Typed bindings: one class per contract, reads separate from transactions.

Reads return dataclasses (:mod:`emrshare.chain.values`); transactions return a
:class:`~emrshare.chain.client.Receipt` whose ``events`` are the decoded event dataclasses
(:mod:`emrshare.chain.events`, ``receipt.event(GrantCreated)``). Every revert raises
:class:`~emrshare.errors.ContractRevert` with the custom error's name and arguments. Event
queries filter on indexed fields by their snake_case names and page over block ranges;
``poll`` resumes from an :class:`~emrshare.chain.EventCursor`. This is the one way the
code base encodes a call, sends it, waits and decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emrshare.chain.bindings._base import Binding, query_events
from emrshare.chain.bindings.audit import AuditLog
from emrshare.chain.bindings.claims import Claims
from emrshare.chain.bindings.drug_trace import DrugTrace
from emrshare.chain.bindings.emergency import Emergency
from emrshare.chain.bindings.forwarder import PatientForwarder
from emrshare.chain.bindings.grants import Grants
from emrshare.chain.bindings.index import RecordIndex
from emrshare.chain.bindings.prescriptions import Prescriptions
from emrshare.chain.bindings.profiles import PatientProfiles
from emrshare.chain.bindings.registry import ConsortiumRegistry
from emrshare.chain.bindings.studies import Studies
from emrshare.chain.client import ChainClient
from emrshare.chain.deploy import Deployment
from emrshare.chain.events import ChainEvent

__all__ = [
    "AuditLog",
    "Claims",
    "ConsortiumRegistry",
    "Contracts",
    "DrugTrace",
    "Emergency",
    "Grants",
    "PatientForwarder",
    "PatientProfiles",
    "Prescriptions",
    "Studies",
    "RecordIndex",
]


@dataclass(frozen=True, slots=True)
class Contracts:
    """All bindings of one deployment, sharing one client."""

    registry: ConsortiumRegistry
    profiles: PatientProfiles
    index: RecordIndex
    grants: Grants
    audit: AuditLog
    forwarder: PatientForwarder
    prescriptions: Prescriptions
    emergency: Emergency
    studies: Studies
    claims: Claims
    drug_trace: DrugTrace

    @classmethod
    def from_deployment(cls, client: ChainClient, deployment: Deployment) -> Contracts:
        """Bind every contract of ``deployment`` to ``client``; queries start at its start block."""
        s = deployment.start_block
        return cls(
            registry=ConsortiumRegistry(
                client, deployment.address_of("ConsortiumRegistry"), start_block=s
            ),
            profiles=PatientProfiles(
                client, deployment.address_of("PatientProfiles"), start_block=s
            ),
            index=RecordIndex(client, deployment.address_of("RecordIndex"), start_block=s),
            grants=Grants(client, deployment.address_of("Grants"), start_block=s),
            audit=AuditLog(client, deployment.address_of("AuditLog"), start_block=s),
            forwarder=PatientForwarder(
                client, deployment.address_of("PatientForwarder"), start_block=s
            ),
            prescriptions=Prescriptions(
                client, deployment.address_of("Prescriptions"), start_block=s
            ),
            emergency=Emergency(client, deployment.address_of("Emergency"), start_block=s),
            studies=Studies(client, deployment.address_of("Studies"), start_block=s),
            claims=Claims(client, deployment.address_of("Claims"), start_block=s),
            drug_trace=DrugTrace(client, deployment.address_of("DrugTrace"), start_block=s),
        )

    @property
    def client(self) -> ChainClient:
        """The client every binding sends and reads through."""
        return self.registry.client

    def events_between(
        self, from_block: int, to_block: int, kinds: Sequence[type[ChainEvent]]
    ) -> list[ChainEvent]:
        """Events of ``kinds`` (of any contracts) in ``[from_block, to_block]``, decoded
        and in chain order, from one paged ``eth_getLogs`` over the contracts that emit
        them."""
        bindings = [b for b in self._bindings() if any(k in b.EVENTS for k in kinds)]
        stray = [k.__name__ for k in kinds if not any(k in b.EVENTS for b in bindings)]
        if stray:
            raise TypeError(f"no contract of the deployment emits {', '.join(stray)}")
        topic0 = [b.topic_of(k) for b in bindings for k in kinds if k in b.EVENTS]
        return query_events(bindings, kinds, [topic0], from_block, to_block)

    def _bindings(self) -> tuple[Binding, ...]:
        return (
            self.registry,
            self.profiles,
            self.index,
            self.grants,
            self.audit,
            self.forwarder,
            self.prescriptions,
            self.emergency,
            self.studies,
            self.claims,
            self.drug_trace,
        )

    def with_client(self, client: ChainClient) -> Contracts:
        """The same contracts, used through another client (another signing key)."""
        s = self.registry.start_block
        return Contracts(
            registry=ConsortiumRegistry(client, self.registry.address, start_block=s),
            profiles=PatientProfiles(client, self.profiles.address, start_block=s),
            index=RecordIndex(client, self.index.address, start_block=s),
            grants=Grants(client, self.grants.address, start_block=s),
            audit=AuditLog(client, self.audit.address, start_block=s),
            forwarder=PatientForwarder(client, self.forwarder.address, start_block=s),
            prescriptions=Prescriptions(client, self.prescriptions.address, start_block=s),
            emergency=Emergency(client, self.emergency.address, start_block=s),
            studies=Studies(client, self.studies.address, start_block=s),
            claims=Claims(client, self.claims.address, start_block=s),
            drug_trace=DrugTrace(client, self.drug_trace.address, start_block=s),
        )
