"""The AuditLog binding: accesses served by proxies, logged per grant with the
grantees' signed requests."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt, SignedTransaction
from emrshare.chain.events import AccessLogged
from emrshare.chain.values import AccessEntry
from emrshare.types import PolicyId

__all__ = ["AuditLog"]


class AuditLog(Binding):
    """Accesses served by proxies, logged per grant with the grantees' signed requests."""

    NAME = "AuditLog"
    EVENTS = (AccessLogged,)

    def domain_separator(self, *, block: int | None = None) -> bytes:
        """The EIP-712 domain separator the log checks signatures under (Grants')."""
        return bytes(self._call("domainSeparator", block=block)[0])

    def log_accesses(
        self,
        policy_id: PolicyId,
        grantee: str,
        proxies: Sequence[str],
        accesses: Sequence[AccessEntry],
    ) -> Receipt:
        """Log served accesses; ``grantee`` and ``proxies`` (in grant order) are the grant's."""
        return self._send(
            "logAccesses",
            policy_id,
            grantee,
            list(proxies),
            [a.as_abi() for a in accesses],
        )

    def sign_log_accesses(
        self,
        policy_id: PolicyId,
        grantee: str,
        proxies: Sequence[str],
        accesses: Sequence[AccessEntry],
        *,
        nonce: int,
        gas: int,
    ) -> SignedTransaction:
        """:meth:`log_accesses`, signed with ``nonce`` and ``gas`` but not sent: a proxy
        stores it and broadcasts it (again, after a restart) with ``client.broadcast``."""
        data = self._encode(
            "logAccesses", (policy_id, grantee, list(proxies), [a.as_abi() for a in accesses])
        )
        return self.client.sign(self.address, data, gas=gas, nonce=nonce)
