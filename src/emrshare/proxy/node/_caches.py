"""What the service keeps between requests: parsed capsules, verified kfrags, and the
chain's answers at the newest few blocks.

Nothing here changes a decision. A kfrag is cached only after it verified, and a
revocation or a reorg drops it (:meth:`ServiceCaches.forget`). A chain answer (policy
status, scope, membership, receiving key) is an ``eth_call`` at one block, so it is the
answer for every request judged at that block, and only for those: answers are keyed by
the block's number *and* hash, and a request judged at block N+1 (or at a block N of
another fork) reads again. A revocation mined in block N+1 is therefore enforced for every
request judged at N+1 or later, however warm the cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar, cast

import umbral_pre

from emrshare.chain import scope_hash
from emrshare.crypto.grants import VerifiedProxyKeyFrag
from emrshare.errors import EmrShareError, WireFormatError
from emrshare.proxy import _crypto
from emrshare.proxy.chainview import GrantStatus, ProxyChain
from emrshare.proxy.node import _kfrags
from emrshare.proxy.node._head import Head
from emrshare.proxy.node.store import ProxyStore

__all__ = ["ServiceCaches"]

log = logging.getLogger("emrshare.proxy")

T = TypeVar("T")

#: Blocks whose answers are kept: requests in flight straddle a new block or two.
_BLOCKS_KEPT = 4


class ServiceCaches:
    """The caches of one :class:`~emrshare.proxy.node.service.ProxyService`."""

    def __init__(self, chain: ProxyChain, store: ProxyStore) -> None:
        self.chain = chain
        self.store = store
        self._lock = threading.Lock()
        self._kfrags: dict[bytes, VerifiedProxyKeyFrag] = {}
        self._capsules: OrderedDict[bytes, umbral_pre.Capsule] = OrderedDict()
        self.capsule_cache_size = 100_000
        #: Chain answers per block (number, hash), the newest few blocks.
        self._blocks: OrderedDict[tuple[int, bytes], dict[tuple[str, str | bytes], object]] = (
            OrderedDict()
        )
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
        if bytes(capsule) != data:  # another encoding of some capsule: not what was sealed
            raise WireFormatError("capsule is not in its canonical encoding")
        self.remember_capsule(capsule_hash, capsule)
        return capsule

    def scope(self, policy_id: bytes, at: Head) -> frozenset[bytes] | None:
        """The records a grant is scoped to at block ``at`` (None: its whole tag), read
        from its ``GrantScoped`` event and kept only if they hash to ``Grants.scopeOf``
        there (:class:`LookupError` if no event does yet: the watcher's node lags)."""
        pid = bytes(policy_id)
        wanted = self._at(at, ("scope", pid), lambda: self.chain.policy_scope(pid, at.number))
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

    def _at(self, at: Head, key: tuple[str, str | bytes], read: Callable[[], T]) -> T:
        """``read()``'s answer at block ``at``, read once per block and key: every
        request judged at the same block (same number *and* hash) shares it."""
        with self._lock:
            answers = self._blocks.get(at.key)
            if answers is not None and key in answers:
                return cast(T, answers[key])
        value = read()
        with self._lock:
            answers = self._blocks.get(at.key)
            if answers is None:
                answers = self._blocks[at.key] = {}
                while len(self._blocks) > _BLOCKS_KEPT:
                    self._blocks.popitem(last=False)
            answers[key] = value
        return value

    def policy_status(self, policy_id: bytes, at: Head) -> GrantStatus:
        """The policy's status at block ``at`` (one ``Grants.status`` read per policy and
        block: a revocation mined in a later block is a later block's answer)."""
        pid = bytes(policy_id)
        return self._at(at, ("status", pid), lambda: self.chain.policy_status(pid, at.number))

    def active_proxy(self, at: Head) -> bool:
        """Whether this proxy is an active Proxy member at ``at`` (one read per block)."""
        me = self.chain.proxy_address
        return self._at(at, ("proxy", ""), lambda: self.chain.is_active_proxy(me, at.number))

    def active_member(self, account: str, at: Head) -> bool:
        """Whether ``account`` is an active consortium member at ``at`` (one read per
        account and block)."""
        return self._at(
            at,
            ("member", account.lower()),
            lambda: self.chain.is_active_member(account, at.number),
        )

    def receiving_key(self, account: str, at: Head) -> bytes:
        """``account``'s registered Umbral receiving key at ``at`` (one read per account
        and block: a rotation counts from its block on)."""
        return self._at(
            at,
            ("key", account.lower()),
            lambda: bytes(self.chain.receiving_key(account, at.number)),
        )
