"""The Grants binding: grants, revocation, tag-wide revocation and sealed access
requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import (
    AccessRequestAnswered,
    AccessRequested,
    ChainEvent,
    GrantCreated,
    GrantRevokedEvent,
    GrantScoped,
    TagRevoked,
)
from emrshare.chain.values import (
    AccessRequest,
    ActiveWindow,
    GrantParams,
    GrantStatus,
    Policy,
    RequestStatus,
)
from emrshare.types import CategoryTag, PolicyId

__all__ = ["Grants"]

E = TypeVar("E", bound=ChainEvent)


class Grants(Binding):
    """Grants, revocation, tag-wide revocation and sealed access requests."""

    NAME = "Grants"
    EVENTS = (
        GrantCreated,
        GrantScoped,
        GrantRevokedEvent,
        TagRevoked,
        AccessRequested,
        AccessRequestAnswered,
    )

    def events(
        self,
        cls: type[E],
        *,
        from_block: int | None = None,
        to_block: int | None = None,
        page_size: int = 2_000,
        **filters: Any,
    ) -> Iterator[E]:
        """As :meth:`Binding.events`; a ``GrantCreated`` of a grant scoped to records
        carries them (``records``), from the ``GrantScoped`` of the same transaction."""
        end = self.client.safe_block() if to_block is None else to_block
        found = super().events(
            cls, from_block=from_block, to_block=end, page_size=page_size, **filters
        )
        if cls is not GrantCreated:
            yield from found
            return
        created = list(found)
        if not created:
            return
        scopes = {
            (bytes(s.policy_id), bytes(s.tx_hash)): tuple(bytes(r) for r in s.records)
            for s in super().events(
                GrantScoped, from_block=from_block, to_block=end, page_size=page_size, **filters
            )
        }
        for ev in created:
            grant = cast(GrantCreated, ev)
            records = scopes.get((bytes(grant.policy_id), bytes(grant.tx_hash)))
            yield cast(E, dataclasses.replace(grant, records=records)) if records else ev

    # reads (each at ``block``, default latest)
    def is_active(self, policy_id: PolicyId, *, block: int | None = None) -> bool:
        """Whether the grant is active on chain time (of ``block``)."""
        return bool(self._call("isActive", policy_id, block=block)[0])

    def status(self, policy_id: PolicyId, *, block: int | None = None) -> GrantStatus:
        """The grant's :class:`GrantStatus` on chain time (of ``block``)."""
        return GrantStatus.from_code(self._call("statusOf", policy_id, block=block)[0])

    def policy(self, policy_id: PolicyId, *, block: int | None = None) -> Policy:
        """The stored grant (reverts with ``Grants_UnknownPolicy`` if there is none)."""
        (p,) = self._call("policyOf", policy_id, block=block)
        return Policy(
            policy_id, normalize_abi_value(p[0]), p[1], p[2], p[3], p[4], p[5], bytes(p[6])
        )

    def scope(self, policy_id: PolicyId, *, block: int | None = None) -> bytes:
        """``keccak256`` of the records the grant is scoped to (:func:`~emrshare.chain.scope_hash`),
        or 32 zero bytes if it covers its whole tag."""
        return bytes(self._call("scopeOf", policy_id, block=block)[0])

    def active_window(self, policy_id: PolicyId, *, block: int | None = None) -> ActiveWindow:
        """When the grant could be served (``Grants_UnknownPolicy`` if there is none)."""
        patient, created, end, expiry, binding = self._call("activeWindow", policy_id, block=block)
        return ActiveWindow(
            normalize_abi_value(patient), int(created), int(end), int(expiry), bytes(binding)
        )

    def binding(self, policy_id: PolicyId, *, block: int | None = None) -> bytes:
        """The grant's stored 27-byte binding (zero if there is no grant)."""
        return bytes(self._call("bindingOf", policy_id, block=block)[0])

    def binding_for(
        self, grantee: str, proxies: Sequence[str], *, block: int | None = None
    ) -> bytes:
        """The binding the contract computes for (grantee, proxies); equals ids.binding_for."""
        return bytes(self._call("bindingFor", grantee, list(proxies), block=block)[0])

    def generation(self, patient: str, tag: CategoryTag, *, block: int | None = None) -> int:
        """The current generation of a patient's tag (bumped by ``revoke_tag``)."""
        return int(self._call("generationOf", patient, tag, block=block)[0])

    def generation_ended_at(
        self, patient: str, tag: CategoryTag, generation: int, *, block: int | None = None
    ) -> int:
        """The block at which that generation of the tag ended, 0 while it is current."""
        return int(self._call("generationEndedAt", patient, tag, generation, block=block)[0])

    def policy_count(self, patient: str, *, block: int | None = None) -> int:
        """Number of grants the patient ever created."""
        return int(self._call("policyCount", patient, block=block)[0])

    def policies(
        self, patient: str, offset: int = 0, limit: int = 100, *, block: int | None = None
    ) -> list[PolicyId]:
        """One page of the patient's policy ids, oldest first."""
        page = self._call("policiesOf", patient, offset, limit, block=block)[0]
        return [PolicyId(bytes(p)) for p in page]

    def request(self, request_id: int, *, block: int | None = None) -> AccessRequest:
        """An access request by id (``Grants_UnknownRequest`` if there is none)."""
        (r,) = self._call("requestOf", request_id, block=block)
        return AccessRequest(
            request_id, normalize_abi_value(r[0]), RequestStatus(r[1]), normalize_abi_value(r[2])
        )

    def request_count(self, *, block: int | None = None) -> int:
        """Number of access requests ever made (ids 1 .. count)."""
        return int(self._call("requestCount", block=block)[0])

    def hash_proxy_request(
        self,
        proxy: str,
        policy_id: PolicyId,
        capsule_hashes: Sequence[bytes],
        nonce: int,
        deadline: int,
        *,
        block: int | None = None,
    ) -> bytes:
        """The EIP-712 digest a grantee signs for a proxy request (computed on chain)."""
        return bytes(
            self._call(
                "hashProxyRequest",
                proxy,
                policy_id,
                list(capsule_hashes),
                nonce,
                deadline,
                block=block,
            )[0]
        )

    # transactions
    def grant(self, params: GrantParams) -> Receipt:
        """Create a grant; ``receipt.event(GrantCreated).policy_id`` is its id."""
        return self._send("grant", params.as_abi())

    def revoke(self, policy_id: PolicyId) -> Receipt:
        """Revoke one of the sender's grants; ``GrantRevokedEvent.revoked_at`` is the block."""
        return self._send("revoke", policy_id)

    def revoke_tag(self, tag: CategoryTag) -> Receipt:
        """Revoke every grant of the sender's ``tag`` at once (generation bump)."""
        return self._send("revokeTag", tag)

    def request_access(self, patient: str, sealed_request: bytes) -> Receipt:
        """Send a patient a sealed request; ``receipt.event(AccessRequested).request_id``."""
        return self._send("requestAccess", patient, sealed_request)

    def answer_request(self, request_id: int, sealed_answer: bytes) -> Receipt:
        """Answer a pending request addressed to the sender with a sealed answer."""
        return self._send("answerRequest", request_id, sealed_answer)
