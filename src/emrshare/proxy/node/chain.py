"""The proxy's view of the chain over the typed bindings (:mod:`emrshare.chain`).

:class:`NodeChain` is the :class:`~emrshare.proxy.chainview.ProxyChain` of a proxy
process: every policy read goes through the bindings at the block the request is
evaluated at, and audit-log transactions are signed (not sent) by
``AuditLog.sign_log_accesses`` with the proxy's own key, so the flusher can store them
before it broadcasts them. Every failure is a :class:`~emrshare.errors.ChainError` (a
revert a :class:`~emrshare.errors.ContractRevert`), its message scrubbed of RPC URLs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from web3 import HTTPProvider, Web3

from emrshare.chain import (
    AccessEntry,
    Capability,
    ChainClient,
    Contracts,
    Deployment,
    EmergencyPolicyCreated,
    EmergencyPolicyWithdrawn,
    EmergencyStatus,
    EntryAppended,
    GrantCreated,
    GrantRevokedEvent,
    GrantStatus,
    Role,
    SignedTransaction,
    TagRevoked,
)
from emrshare.chain import scrub_url_secrets as scrub
from emrshare.errors import ChainError, ConfigurationError, EmrShareError
from emrshare.proxy.chainview import (
    EmergencyLog,
    EmergencyView,
    IndexedCapsule,
    ProxyEvent,
    audit_gas,
)
from emrshare.proxy.node._head_rpc import light_head_reader
from emrshare.types import CategoryTag, PolicyId

__all__ = ["NodeChain"]

P = ParamSpec("P")
R = TypeVar("R")

#: The chain events a proxy follows (EntryAppended becomes an IndexedCapsule).
_FOLLOWED = (
    GrantCreated,
    GrantRevokedEvent,
    TagRevoked,
    EntryAppended,
    EmergencyPolicyCreated,
    EmergencyPolicyWithdrawn,
)


def _chain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Anything but a library error becomes a scrubbed :class:`ChainError`: the service
    refuses with ``chain_unavailable`` and the watcher retries, instead of crashing."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EmrShareError:
            raise
        except Exception as exc:
            # Scrubbed: the message reaches logs and GET /healthz, and RPC URLs carry keys.
            raise ChainError(
                f"chain call {fn.__name__} failed: {type(exc).__name__}: {scrub(exc)}; "
                "check the RPC endpoint"
            ) from exc

    return wrapper


class NodeChain:
    """A :class:`~emrshare.proxy.chainview.ProxyChain` over :class:`~emrshare.chain.Contracts`.

    ``client`` signs with the proxy's Ethereum key (its registry account). The chain id
    and addresses come from ``deployment``, which the caller has checked against the
    node (:meth:`Deployment.check`).
    """

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        if client.address is None:
            raise ConfigurationError("a proxy's ChainClient needs the proxy's private key")
        self.client = client
        self.deployment = deployment
        self.contracts = Contracts.from_deployment(client, deployment)
        self._address = client.address
        provider = client.w3.provider
        url, timeout = None, 10.0
        if isinstance(provider, HTTPProvider):
            url = str(provider.endpoint_uri)
            timeout = float(provider.get_request_kwargs().get("timeout") or timeout)
        # The read on every request's path, over a bare connection (_head_rpc).
        self._latest_head = light_head_reader(url, timeout, client.latest_head)

    @classmethod
    def connect(cls, w3: Web3, deployment: Deployment, account_key: bytes) -> NodeChain:
        """The chain of ``deployment`` over ``w3``, signing with ``account_key``."""
        return cls(ChainClient(w3, account_key), deployment)

    def __repr__(self) -> str:
        return f"NodeChain(proxy={self._address}, chain_id={self.chain_id})"

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    @property
    def grants_contract(self) -> str:
        return self.contracts.grants.address

    @property
    def proxy_address(self) -> str:
        return self._address

    @_chain_errors
    def head(self) -> int:
        return self.client.latest_block()

    @_chain_errors
    def block_hash(self, number: int) -> bytes | None:
        return self.client.block_hash(number)

    @_chain_errors
    def latest(self) -> tuple[int, int]:
        return self.client.latest_header()

    @_chain_errors
    def latest_head(self) -> tuple[int, int, bytes]:
        return self._latest_head()

    @_chain_errors
    def events(self, from_block: int, to_block: int) -> list[ProxyEvent]:
        out: list[ProxyEvent] = []
        for ev in self.contracts.events_between(from_block, to_block, _FOLLOWED):
            if isinstance(ev, EntryAppended):
                indexed = IndexedCapsule.from_event(ev)
                if indexed is not None:
                    out.append(indexed)
            elif isinstance(
                ev,
                GrantCreated
                | GrantRevokedEvent
                | TagRevoked
                | EmergencyPolicyCreated
                | EmergencyPolicyWithdrawn,
            ):
                out.append(ev)
        return out

    @_chain_errors
    def policy_status(self, policy_id: bytes, block: int) -> GrantStatus:
        return self.contracts.grants.status(PolicyId(bytes(policy_id)), block=block)

    @_chain_errors
    def policy_scope(self, policy_id: bytes, block: int) -> bytes:
        return self.contracts.grants.scope(PolicyId(bytes(policy_id)), block=block)

    @_chain_errors
    def granted_records(self, policy_id: bytes) -> list[tuple[bytes, ...]]:
        grants = self.contracts.grants
        found = grants.events(GrantCreated, policy_id=PolicyId(bytes(policy_id)))
        return [tuple(bytes(r) for r in ev.records) for ev in found]

    @_chain_errors
    def patient_verifying_key(self, patient: str, block: int) -> bytes:
        return self.contracts.profiles.profile(patient, block=block).verifying_key

    @_chain_errors
    def receiving_key(self, member: str, block: int) -> bytes:
        return self.contracts.registry.member(member, block=block).umbral_key

    @_chain_errors
    def is_active_proxy(self, account: str, block: int) -> bool:
        # hasRole is false for a suspended member (ConsortiumRegistry).
        return self.contracts.registry.has_role(account, Role.PROXY, block=block)

    @_chain_errors
    def is_active_member(self, account: str, block: int) -> bool:
        # False for an unknown, removed or suspended account (ConsortiumRegistry).
        return self.contracts.registry.is_active_member(account, block=block)

    @_chain_errors
    def block_gas_limit(self) -> int:
        return self.client.block_gas_limit()

    @_chain_errors
    def sign_audit_batch(
        self,
        policy_id: bytes,
        grantee: str,
        proxies: Sequence[str],
        items: Sequence[AccessEntry],
        nonce: int,
    ) -> SignedTransaction:
        return self.contracts.audit.sign_log_accesses(
            PolicyId(bytes(policy_id)),
            grantee,
            proxies,
            items,
            nonce=nonce,
            gas=audit_gas(items),
        )

    @property
    def emergency_contract(self) -> str:
        return self.contracts.emergency.address

    @_chain_errors
    def emergency_declaration(self, declaration_id: int, block: int) -> EmergencyView:
        em = self.contracts.emergency
        status = em.status(declaration_id, block=block)
        if status is EmergencyStatus.NONE:
            return EmergencyView(status)
        d = em.declaration(declaration_id, block=block)
        return EmergencyView(status, d.patient, d.clinician, d.generation, d.ends_at)

    @_chain_errors
    def emergency_capable(self, account: str, block: int) -> bool:
        return self.contracts.registry.has_capability(account, Capability.EMERGENCY, block=block)

    @_chain_errors
    def emergency_opens_tag(self, patient: str, tag: bytes, block: int) -> bool:
        return self.contracts.emergency.opens_tag(patient, CategoryTag(bytes(tag)), block=block)

    @_chain_errors
    def emergency_umbral_key(self, block: int) -> bytes:
        return self.contracts.emergency.emergency_keys(block=block)[0]

    @_chain_errors
    def sign_emergency_log(self, log: EmergencyLog, nonce: int) -> SignedTransaction:
        return self.contracts.emergency.sign_log_access(
            log.declaration_id,
            log.proxies,
            CategoryTag(bytes(log.tag)),
            log.capsule_hashes,
            served_at=log.served_at,
            nonce=nonce,
            gas=log.gas,
        )

    @_chain_errors
    def account_nonce(self) -> int:
        return self.client.account_nonce("latest")

    @_chain_errors
    def broadcast(self, raw_tx: bytes) -> None:
        self.client.broadcast(raw_tx)

    @_chain_errors
    def receipt_block(self, tx_hash: bytes) -> int | None:
        return self.client.receipt_block(tx_hash)
