"""The proxy's decision and re-encryption logic, free of HTTP.

:meth:`ProxyService.handle` runs every check of a re-encryption request in a fixed order
and either refuses with a :class:`~emrshare.proxy.request.RefusalReason` or re-encrypts,
journals the serve for the audit log, and returns the cfrags with the block it evaluated at.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account import Account

from emrshare.crypto.grants import VerifiedProxyKeyFrag
from emrshare.errors import EmrShareError, WireFormatError
from emrshare.proxy import response
from emrshare.proxy._envelope import SignedEnvelope, recover_signer
from emrshare.proxy.chainview import GrantStatus, ProxyChain
from emrshare.proxy.node import _kfrags
from emrshare.proxy.node._caches import ServiceCaches
from emrshare.proxy.node._head import Head, HeadReader
from emrshare.proxy.node.audit_journal import GroupCommit
from emrshare.proxy.node.store import PolicyRecord, ProxyStore, Serve, StoredKfrag
from emrshare.proxy.request import MAX_BATCH, Refusal, RefusalReason, SignedRequest, capsule_hash

__all__ = [
    "KfragOpener",
    "ProxyService",
    "Served",
    "check_envelope",
    "indexed_records",
    "reencrypt_capsules",
]

#: Unseal and verify this proxy's kfrag of a grant:
#: (sealed kfrag, grant event or emergency scope, patient verifying key, grantee receiving
#: key) → StoredKfrag. Raises :class:`~emrshare.errors.CryptoError` or
#: :class:`WireFormatError` when it fails.
KfragOpener = Callable[[bytes, _kfrags.KfragScope, bytes, bytes], StoredKfrag]


@dataclass(frozen=True, slots=True)
class Served:
    """A successful answer: one cfrag per capsule, the block the checks ran at, the
    delegating public key of the kfrag binding used, and the proxy's signature over all
    of it bound to the request (:mod:`emrshare.proxy.response`)."""

    cfrags: tuple[bytes, ...]
    block: int
    delegating_pk: bytes = b""
    signature: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "cfrags": ["0x" + c.hex() for c in self.cfrags],
            "block": self.block,
            "delegating_pk": "0x" + self.delegating_pk.hex(),
            "signature": "0x" + self.signature.hex(),
        }


def _receiving_key(kfrag: VerifiedProxyKeyFrag) -> bytes:
    return kfrag.binding.grantee_receiving_key_bytes


def _rotated(policy: PolicyRecord, block: int) -> str:
    # The kfrags target the receiving key the grantee had at the grant: from the block of
    # its rotation on, the registry holds another key and the old one opens nothing new.
    return (
        f"the grantee {policy.grantee} rotated its keys after this grant (registry, block "
        f"{block}); the old keys open nothing new: ask the patient to re-issue the grant"
    )


class NonceGate:
    """One request per (signer, nonce) in flight: a repeat waits (up to ``wait`` seconds)
    for the first."""

    def __init__(self, wait: float = 10.0) -> None:
        self._cv = threading.Condition()
        self._inflight: set[tuple[str, int]] = set()
        self._wait = wait

    def hold(self, key: tuple[str, int]) -> bool:
        """Wait until no other request of ``key`` is in flight and hold it; False if it
        stayed busy. :meth:`release` gives it back."""
        with self._cv:
            free = self._cv.wait_for(lambda: key not in self._inflight, self._wait)
            if free:
                self._inflight.add(key)
        return free

    def release(self, key: tuple[str, int]) -> None:
        with self._cv:
            self._inflight.discard(key)
            self._cv.notify_all()


class ProxyService:
    """Checks requests against the chain and the proxy's own indexes, then re-encrypts."""

    def __init__(
        self,
        chain: ProxyChain,
        store: ProxyStore,
        open_kfrag: KfragOpener,
        *,
        response_key: bytes,
    ) -> None:
        """``response_key`` is the proxy's Ethereum key (its registry account, the same
        account as ``chain.proxy_address``): every answer is signed with it."""
        if str(Account.from_key(response_key).address).lower() != chain.proxy_address.lower():
            raise ValueError("the response key is not the key of the proxy's chain account")
        self.chain = chain
        self.store = store
        self.open_kfrag = open_kfrag
        self._signer = response.DigestSigner(response_key)
        self.caches = ServiceCaches(chain, store)
        #: The latest block, one shared read per round of waiting requests (_head).
        self.head = HeadReader(chain.latest_head)
        self._lock = threading.Lock()
        self.nonces = NonceGate()
        self.journal = GroupCommit(store)
        self.served = 0
        #: Repeats of an identical request answered again without journaling.
        self.repeats = 0
        self.refused: dict[str, int] = {}

    def forget(self, policy_id: bytes) -> None:
        """Drop a cached kfrag (after a revocation)."""
        self.caches.forget(policy_id)

    def refuse(self, reason: RefusalReason, message: str, block: int | None = None) -> Refusal:
        """A refusal, counted in ``refused`` (GET /healthz)."""
        with self._lock:
            self.refused[reason.value] = self.refused.get(reason.value, 0) + 1
        return Refusal(reason, message, block)

    def handle(self, signed: SignedRequest) -> Served | Refusal:
        """Evaluate one request and sign the answer; never raises for a bad request, only
        for internal faults."""
        # The request's EIP-712 digest, once: recovery, the nonce record and the answer's
        # signature all bind to it.
        digest = signed.request.digest(signed.chain_id, signed.verifying_contract)
        return self.sign(signed, self._decide(signed, digest), digest)

    def sign(
        self,
        signed: SignedEnvelope[Any],
        result: Served | Refusal,
        request_digest: bytes | None = None,
    ) -> Served | Refusal:
        """``result`` with the proxy's signature, bound to ``signed``'s request digest
        (``request_digest``, when the caller computed it already)."""
        if request_digest is None:
            request_digest = signed.request.digest(signed.chain_id, signed.verifying_contract)
        common = response.Bound(
            self.chain.chain_id,
            self.chain.grants_contract,
            self.chain.proxy_address,
            request_digest,
        )
        if isinstance(result, Served):
            digest = response.served_digest(
                common,
                cfrag_hashes=[capsule_hash(c) for c in result.cfrags],
                block=result.block,
                delegating_pk=result.delegating_pk,
            )
        else:
            digest = response.refused_digest(common, reason=result.reason.value, block=result.block)
        return replace(result, signature=self.sign_answer(digest))

    def sign_answer(self, digest: bytes) -> bytes:
        """The proxy's signature of an answer's digest (:mod:`emrshare.proxy.response`)."""
        return self._signer.sign(digest)

    def _decide(self, signed: SignedRequest, digest: bytes) -> Served | Refusal:
        req = signed.request
        bad = check_envelope(self, signed, self.chain.grants_contract, "grants")
        if bad is not None:
            return bad
        try:
            signer = recover_signer(digest, signed.signature)
        except WireFormatError as exc:
            return self.refuse(RefusalReason.BAD_SIGNATURE, str(exc))
        try:
            head = self.head.latest()
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        block, now = head.number, head.time
        if req.deadline < now:
            return self.refuse(
                RefusalReason.DEADLINE_PASSED,
                f"the request deadline {req.deadline} passed (chain time {now}); sign a new one",
                block,
            )
        pid = bytes(req.policy_id)
        policy = self.store.policy(pid)
        if policy is None:
            return self._unknown_policy(pid, head)
        if signer.lower() != policy.grantee.lower():
            return self.refuse(
                RefusalReason.NOT_GRANTEE,
                f"the request was signed by {signer}, who is not the grantee of this policy",
                block,
            )
        # One request per (signer, nonce) is evaluated at a time: a repeat of a request
        # in flight waits for it, and then is a repeat of a served one.
        nonce_key = (signer.lower(), req.nonce)
        if not self.nonces.hold(nonce_key):  # (refused outside the lock: _refuse takes it)
            return self.refuse(
                RefusalReason.REQUEST_IN_FLIGHT,
                "the same request is still being served; retry shortly",
                block,
            )
        try:
            used = self.store.nonce_digest(signer, req.nonce)
            if used is not None and used != digest:
                return self.refuse(
                    RefusalReason.REPLAYED_NONCE,
                    "another request already used this nonce; sign a new request",
                    block,
                )
            # A repeat of the identical request (same signer, nonce and digest, deadline
            # not passed) is evaluated again and answered again, but journaled once: the
            # audit trail records what was served, once per request.
            return self._serve(signed, signer, policy, head, digest, first=used is None)
        finally:
            self.nonces.release(nonce_key)

    def count_served(self, cfrags: int, *, repeat: bool) -> None:
        with self._lock:
            self.served += cfrags
            if repeat:
                self.repeats += 1

    def _serve(
        self,
        signed: SignedRequest,
        signer: str,
        policy: PolicyRecord,
        head: Head,
        digest: bytes,
        *,
        first: bool,
    ) -> Served | Refusal:
        req = signed.request
        pid = policy.policy_id
        me = self.chain.proxy_address
        block, now = head.number, head.time
        try:
            status = self.caches.policy_status(pid, head)
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if status in (GrantStatus.REVOKED, GrantStatus.TAG_REVOKED):
            return self.refuse(
                RefusalReason.POLICY_REVOKED,
                f"the policy is revoked at block {block}; ask the patient for a new grant",
                block,
            )
        if status is GrantStatus.EXPIRED:
            return self.refuse(
                RefusalReason.POLICY_EXPIRED,
                f"the policy expired (chain time {now}); ask the patient to renew it",
                block,
            )
        if status is GrantStatus.NONE:
            return self.refuse(RefusalReason.POLICY_UNKNOWN, "no such policy on chain", block)
        if me.lower() not in (p.lower() for p in policy.proxies):
            return self.refuse(
                RefusalReason.NOT_A_PROXY_OF_POLICY,
                f"{me} is not one of the proxies of this policy",
                block,
            )
        try:
            active = self.caches.active_proxy(head)
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if not active:
            return self.refuse(
                RefusalReason.PROXY_SUSPENDED,
                f"{me} is not an active Proxy member at block {block} "
                "(suspended or removed by the consortium); ask another proxy of the policy",
                block,
            )
        try:
            member = self.caches.active_member(policy.grantee, head)
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if not member:
            return self.refuse(
                RefusalReason.GRANTEE_NOT_MEMBER,
                f"the grantee {policy.grantee} is not an active consortium member at block "
                f"{block} (removed or suspended); access ends with membership",
                block,
            )
        record_ids = indexed_records(
            self, req.capsule_hashes, policy.patient, policy.tag, block, "or epoch than the policy"
        )
        if isinstance(record_ids, Refusal):
            return record_ids
        try:
            scope = self.caches.scope(pid, head)
        except (EmrShareError, LookupError) as exc:
            return self.refuse(
                RefusalReason.SCOPE_UNAVAILABLE,
                f"cannot read the records this grant is scoped to ({exc}); retry shortly",
                block,
            )
        outside = [r for r in record_ids if scope is not None and bytes(r) not in scope]
        if outside:
            return self.refuse(
                RefusalReason.RECORD_NOT_IN_SCOPE,
                f"record 0x{bytes(outside[0]).hex()} is not one of the records this grant is "
                "scoped to; ask the patient to grant it",
                block,
            )
        kfrag = self.caches.kfrag(policy)
        if kfrag is None:
            return self.refuse(
                RefusalReason.KFRAG_UNAVAILABLE,
                "this proxy holds no valid key fragment for the policy",
                block,
            )
        try:
            rotated = self.caches.receiving_key(policy.grantee, head) != _receiving_key(kfrag)
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if rotated:
            return self.refuse(RefusalReason.GRANTEE_KEYS_ROTATED, _rotated(policy, block), block)
        cfrags = reencrypt_capsules(self, signed, kfrag, block)
        if isinstance(cfrags, Refusal):
            return cfrags
        # Journal (with the nonce and the request digest) before the response leaves: a
        # crash now cannot lose the audit record, and the nonce is spent only by a serve.
        if first:
            self.journal.record(
                Serve(
                    pid,
                    signer,
                    tuple(record_ids),
                    block,
                    req.nonce,
                    req.deadline,
                    capsule_hashes=tuple(req.capsule_hashes),
                    signature=bytes(signed.signature),
                    block_time=now,
                    digest=digest,
                )
            )
        self.count_served(len(cfrags), repeat=not first)
        return Served(cfrags, block, kfrag.binding.category_public_key_bytes)

    def _unknown_policy(self, pid: bytes, head: Head) -> Refusal:
        block = head.number
        try:
            status = self.caches.policy_status(pid, head)
        except EmrShareError as exc:
            return self.refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if status is GrantStatus.NONE:
            return self.refuse(RefusalReason.POLICY_UNKNOWN, "no such policy on chain", block)
        return self.refuse(
            RefusalReason.KFRAG_UNAVAILABLE,
            "this proxy has not processed the grant yet (confirmation depth); retry shortly",
            block,
        )


def check_envelope(
    service: ProxyService, signed: SignedEnvelope[Any], contract: str, contract_name: str
) -> Refusal | None:
    """The checks of a request to ``service`` that need no chain read, in order: capsules
    named, batch size, no repeated capsule, this chain, ``contract`` (the verifying
    contract ``service`` follows for requests of this kind, called ``contract_name``), this
    proxy, capsules matching the signed hashes. None if all pass; else the refusal."""
    req = signed.request
    me = service.chain.proxy_address
    if not signed.capsules:
        return service.refuse(RefusalReason.BAD_REQUEST, "the request names no capsules")
    if len(signed.capsules) > MAX_BATCH:
        return service.refuse(
            RefusalReason.BATCH_TOO_LARGE,
            f"at most {MAX_BATCH} capsules per request; split the batch",
        )
    if len(set(req.capsule_hashes)) != len(req.capsule_hashes):
        # Each repeat would cost the audit transaction gas for nothing.
        return service.refuse(
            RefusalReason.BAD_REQUEST,
            "the request names the same capsule hash more than once; send each once",
        )
    if signed.chain_id != service.chain.chain_id:
        return service.refuse(
            RefusalReason.WRONG_CHAIN,
            f"this proxy serves chain {service.chain.chain_id}, not {signed.chain_id}",
        )
    if signed.verifying_contract.lower() != contract.lower():
        return service.refuse(
            RefusalReason.WRONG_CONTRACT,
            f"this proxy follows the {contract_name} contract {contract}",
        )
    if req.proxy.lower() != me.lower():
        return service.refuse(
            RefusalReason.WRONG_PROXY, f"the request is addressed to {req.proxy}, not {me}"
        )
    if len(signed.capsules) != len(req.capsule_hashes) or any(
        capsule_hash(c) != h for c, h in zip(signed.capsules, req.capsule_hashes, strict=False)
    ):
        return service.refuse(
            RefusalReason.CAPSULE_HASH_MISMATCH,
            "the capsules sent do not match the signed capsule hashes",
        )
    return None


def indexed_records(
    service: ProxyService,
    capsule_hashes: Sequence[bytes],
    patient: str,
    tag: bytes,
    block: int,
    scope_name: str,
) -> list[bytes] | Refusal:
    """The record id of each capsule in ``service``'s index of ``patient``'s entries under
    ``tag``, in order; or the refusal of the first capsule not indexed, or indexed under
    another scope (``scope_name`` ends the message: "belongs to another category …")."""
    entries = service.store.entries(capsule_hashes)
    scope = (patient.lower(), tag)
    record_ids: list[bytes] = []
    for h in capsule_hashes:
        found = entries.get(h)
        if not found:
            return service.refuse(
                RefusalReason.CAPSULE_NOT_IN_INDEX,
                f"capsule 0x{h.hex()} is not in this proxy's index of the patient's entries",
                block,
            )
        match = [e for e in found if (e.patient.lower(), e.tag) == scope]
        if not match:
            return service.refuse(
                RefusalReason.CAPSULE_WRONG_CATEGORY,
                f"capsule 0x{h.hex()} belongs to another category {scope_name}",
                block,
            )
        record_ids.append(match[0].record_id)
    return record_ids


def reencrypt_capsules(
    service: ProxyService, signed: SignedEnvelope[Any], kfrag: VerifiedProxyKeyFrag, block: int
) -> tuple[bytes, ...] | Refusal:
    """One cfrag per capsule of ``signed`` with ``kfrag``; a ``bad_request`` refusal if a
    capsule does not parse or is not in its canonical encoding. Every capsule is known by
    then to be an indexed entry's (its bytes hash to an indexed capsule hash); each is
    parsed at its first request and kept."""
    req = signed.request
    try:
        capsules = [
            service.caches.capsule(h, c)
            for h, c in zip(req.capsule_hashes, signed.capsules, strict=True)
        ]
    except WireFormatError as exc:
        return service.refuse(RefusalReason.BAD_REQUEST, str(exc), block)
    return tuple(_kfrags.reencrypt(c, kfrag) for c in capsules)
