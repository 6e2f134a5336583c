"""What the service keeps between requests: parsed capsules, verified kfrags, and the
membership answers of the block it last evaluated at.

Nothing here changes a decision: a kfrag is cached only after it verified, a revocation
drops it (:meth:`ServiceCaches.forget`), and membership is re-read at every new block.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import umbral_pre

from emrshare.chain import scope_hash
from emrshare.crypto.grants import VerifiedProxyKeyFrag
from emrshare.errors import EmrShareError
from emrshare.proxy import _crypto
from emrshare.proxy.chainview import ProxyChain
from emrshare.proxy.node import _kfrags
from emrshare.proxy.node.store import ProxyStore

__all__ = ["ServiceCaches"]

log = logging.getLogger("emrshare.proxy")


class ServiceCaches:
    """The caches of one :class:`~emrshare.proxy.node.service.ProxyService`."""

    def __init__(self, chain: ProxyChain, store: ProxyStore) -> None:
        self.chain = chain
        self.store = store
        self._lock = threading.Lock()
        self._kfrags: dict[bytes, VerifiedProxyKeyFrag] = {}
        self._capsules: OrderedDict[bytes, umbral_pre.Capsule] = OrderedDict()
        self.capsule_cache_size = 100_000
        self._active_at: tuple[int, bool] | None = None
        self._members_at: tuple[int, dict[str, bool]] = (-1, {})
        self._keys_at: tuple[int, dict[str, bytes]] = (-1, {})
        self._scopes: OrderedDict[tuple[bytes, bytes], frozenset[bytes]] = OrderedDict()

    def remember_capsule(self, capsule_hash: bytes, capsule: umbral_pre.Capsule) -> None:
        """Keep a parsed index capsule (parsing costs ~0.2 ms; requests reuse it)."""
        with self._lock:
            self._capsules[capsule_hash] = capsule
            self._capsules.move_to_end(capsule_hash)
            while len(self._capsules) > self.capsule_cache_size:
                self._capsules.popitem(last=False)

    def capsule(self, capsule_hash: bytes, data: bytes) -> umbral_pre.Capsule:
        """The parsed capsule of ``data`` (whose hash is ``capsule_hash``)."""
        with self._lock:
            cached = self._capsules.get(capsule_hash)
        if cached is not None:
            return cached
        capsule = _crypto.parse_capsule(data)
        self.remember_capsule(capsule_hash, capsule)
        return capsule

    def scope(self, policy_id: bytes, block: int) -> frozenset[bytes] | None:
        """The records a grant is scoped to at ``block`` (None: its whole tag), read from
        its ``GrantScoped`` event and kept only if they hash to ``Grants.scopeOf`` there
        (:class:`LookupError` if no event does yet: the watcher's node lags)."""
        wanted = self.chain.policy_scope(policy_id, block)
        if wanted == bytes(32):
            return None
        key = (bytes(policy_id), wanted)
        with self._lock:
            cached = self._scopes.get(key)
        if cached is not None:
            return cached
        for records in self.chain.granted_records(policy_id):
            if scope_hash(records) == wanted:
                found = frozenset(records)
                with self._lock:
                    self._scopes[key] = found
                    while len(self._scopes) > 10_000:
                        self._scopes.popitem(last=False)
                return found
        raise LookupError("no GrantCreated event lists the grant's scope yet")

    def forget(self, policy_id: bytes) -> None:
        """Drop a cached kfrag (after a revocation)."""
        with self._lock:
            self._kfrags.pop(policy_id, None)

    def kfrag(self, policy: _kfrags.KfragScope) -> VerifiedProxyKeyFrag | None:
        """The policy's stored kfrag, verified again on first use; None if there is none
        or it no longer verifies."""
        policy_id = policy.policy_id
        with self._lock:
            cached = self._kfrags.get(policy_id)
        if cached is not None:
            return cached
        try:
            # Sealed at rest under a key of the box key the proxy had: after a key rotation
            # the kfrags stored before it no longer open (the patients re-issue them).
            stored = self.store.kfrag(policy_id)
            if stored is None:
                return None
            kfrag = _kfrags.load_kfrag(stored, policy)
        except EmrShareError as exc:
            log.error("stored kfrag of policy 0x%s is unusable: %s", policy_id.hex(), exc)
            return None
        with self._lock:
            self._kfrags[policy_id] = kfrag
        return kfrag

    def active_proxy(self, block: int) -> bool:
        """Whether this proxy is an active Proxy member at ``block`` (one read per block)."""
        with self._lock:
            cached = self._active_at
        if cached is not None and cached[0] == block:
            return cached[1]
        active = self.chain.is_active_proxy(self.chain.proxy_address, block)
        with self._lock:
            self._active_at = (block, active)
        return active

    def active_member(self, account: str, block: int) -> bool:
        """Whether ``account`` is an active consortium member at ``block`` (one read per
        account and block)."""
        key = account.lower()
        with self._lock:
            if self._members_at[0] != block:
                self._members_at = (block, {})
            cached = self._members_at[1].get(key)
        if cached is not None:
            return cached
        active = self.chain.is_active_member(account, block)
        with self._lock:
            if self._members_at[0] == block:
                self._members_at[1][key] = active
        return active

    def receiving_key(self, account: str, block: int) -> bytes:
        """``account``'s registered Umbral receiving key at ``block`` (one read per account
        and block: a rotation counts from its block on)."""
        key = account.lower()
        with self._lock:
            if self._keys_at[0] != block:
                self._keys_at = (block, {})
            cached = self._keys_at[1].get(key)
        if cached is not None:
            return cached
        value = bytes(self.chain.receiving_key(account, block))
        with self._lock:
            if self._keys_at[0] == block:
                self._keys_at[1][key] = value
        return value
