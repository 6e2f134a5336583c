"""The proxy's emergency (break-glass) serving, free of HTTP (issue 15).

:meth:`EmergencyService.handle` checks a declaring clinician's signed request
(:class:`~emrshare.proxy.emergency.SignedEmergencyRequest`) in a fixed order, every chain
fact read at **one** block: the declaration is Active on that block's time (not ended,
its opt-in not withdrawn or replaced, not past its time box, which is also judged on the
proxy's own clock: :func:`declaration_refusal`), the signer is its clinician,
who still holds the EMERGENCY capability, the tag is one the patient's current opt-in
opens, and this proxy is one of the opt-in's proxies (and an active Proxy member). Then
it re-encrypts with its kfrag of the tag and journals the serve with the grants' serves:
the audit flusher logs it by ``Emergency.logEmergencyAccess``. Each refusal is a signed,
machine-readable reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from emrshare.chain import EmergencyStatus
from emrshare.errors import EmrShareError, WireFormatError
from emrshare.proxy.chainview import EmergencyView
from emrshare.proxy.emergency import MAX_DEADLINE_AHEAD, SignedEmergencyRequest
from emrshare.proxy.node.emergency_store import EmergencyPolicyRecord, EmergencyScope
from emrshare.proxy.node.service import (
    ProxyService,
    Served,
    check_envelope,
    indexed_records,
    reencrypt_capsules,
)
from emrshare.proxy.node.store import Serve
from emrshare.proxy.request import Refusal, RefusalReason

__all__ = ["EmergencyService", "declaration_refusal"]

_NOT_ACTIVE = {
    EmergencyStatus.NONE: (
        RefusalReason.DECLARATION_UNKNOWN,
        "no emergency declaration {id} on chain; declare one first",
    ),
    EmergencyStatus.EXPIRED: (
        RefusalReason.DECLARATION_EXPIRED,
        "emergency declaration {id} passed its time box; declare again if still needed",
    ),
    EmergencyStatus.ENDED: (
        RefusalReason.DECLARATION_ENDED,
        "emergency declaration {id} was ended early (by the patient, a guardian or you)",
    ),
    EmergencyStatus.WITHDRAWN: (
        RefusalReason.DECLARATION_WITHDRAWN,
        "the patient withdrew (or replaced) the opt-in emergency declaration {id} opened",
    ),
}


def declaration_refusal(
    view: EmergencyView, declaration_id: int, chain_time: int, wall_time: float
) -> tuple[RefusalReason, str] | None:
    """Why declaration ``declaration_id`` (``view``, read at the latest block, whose time
    is ``chain_time``) opens no emergency read now; None while it does.

    The time box is judged conservatively: it has passed once the latest block's time
    *or* this proxy's clock (``wall_time``, unix seconds) reached its end. The chain's
    status is computed on block time only, so a chain head that stopped moving (no new
    block) would otherwise stretch the declaration past its expiry.
    """
    if view.status is not EmergencyStatus.ACTIVE:
        reason, text = _NOT_ACTIVE[view.status]
        return reason, text.format(id=declaration_id)
    if max(chain_time, wall_time) >= view.ends_at:
        return RefusalReason.DECLARATION_EXPIRED, (
            f"emergency declaration {declaration_id} passed its time box by this proxy's "
            f"clock (the latest block's time, {chain_time}, lags behind); declare again if "
            "still needed"
        )
    return None


class EmergencyService:
    """Emergency requests, served with the state of a :class:`ProxyService` (its chain,
    store, caches, journal, nonce gate and counters). ``clock`` is the proxy's wall clock
    (unix seconds), which bounds a declaration's time box beside chain time."""

    def __init__(self, service: ProxyService, *, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.chain = service.chain
        self.store = service.store
        self.clock = clock

    def handle(self, signed: SignedEmergencyRequest) -> Served | Refusal:
        """Evaluate one emergency request and sign the answer; never raises for a bad
        request, only for internal faults."""
        return self.service.sign(signed, self._decide(signed))

    def _decide(self, signed: SignedEmergencyRequest) -> Served | Refusal:
        refuse = self.service.refuse
        bad = check_envelope(self.service, signed, self.chain.emergency_contract, "Emergency")
        if bad is not None:
            return bad
        req = signed.request
        try:
            signer = req.recover(signed.signature, signed.chain_id, signed.verifying_contract)
        except WireFormatError as exc:
            return refuse(RefusalReason.BAD_SIGNATURE, str(exc))
        try:
            head = self.service.head.latest()
            block, now = head.number, head.time
            view = self.chain.emergency_declaration(req.declaration_id, block)
        except EmrShareError as exc:
            return refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if req.deadline < now:
            return refuse(
                RefusalReason.DEADLINE_PASSED,
                f"the request deadline {req.deadline} passed (chain time {now}); sign a new one",
                block,
            )
        if req.deadline > now + MAX_DEADLINE_AHEAD:
            return refuse(
                RefusalReason.DEADLINE_TOO_FAR,
                f"the request deadline {req.deadline} is more than {MAX_DEADLINE_AHEAD} s "
                f"beyond chain time {now}; sign a request with a deadline at most "
                f"{MAX_DEADLINE_AHEAD} s ahead",
                block,
            )
        not_active = declaration_refusal(view, req.declaration_id, now, self.clock())
        if not_active is not None:
            return refuse(*not_active, block)
        if signer.lower() != view.clinician.lower():
            return refuse(
                RefusalReason.NOT_DECLARER,
                f"the request was signed by {signer}, not by the clinician who declared "
                f"emergency {req.declaration_id}",
                block,
            )
        policy = self.store.emergency_policy(view.patient)
        if policy is None or policy.generation != view.generation:
            return refuse(
                RefusalReason.KFRAG_UNAVAILABLE,
                "this proxy has not processed the patient's opt-in yet; retry shortly",
                block,
            )
        try:
            capable = self.chain.emergency_capable(view.clinician, block)
            opens = self.chain.emergency_opens_tag(view.patient, bytes(req.tag), block)
            active = self.service.caches.active_proxy(head)
        except EmrShareError as exc:
            return refuse(RefusalReason.CHAIN_UNAVAILABLE, f"chain read failed: {exc}")
        if not capable:
            return refuse(
                RefusalReason.CLINICIAN_NOT_CAPABLE,
                f"{view.clinician} no longer holds the EMERGENCY capability (or is no longer "
                "an active member); the consortium withdrew it",
                block,
            )
        if not opens or bytes(req.tag) not in policy.tags:
            return refuse(
                RefusalReason.CATEGORY_NOT_OPTED_IN,
                "the patient's opt-in does not open this category in an emergency",
                block,
            )
        me = self.chain.proxy_address.lower()
        if me not in (p.lower() for p in policy.proxies):
            return refuse(
                RefusalReason.NOT_A_PROXY_OF_POLICY,
                f"{self.chain.proxy_address} is not one of the proxies of this opt-in",
                block,
            )
        if not active:
            return refuse(
                RefusalReason.PROXY_SUSPENDED,
                f"{self.chain.proxy_address} is not an active Proxy member at block {block}; "
                "ask another proxy of the opt-in",
                block,
            )
        nonce_key = (signer.lower(), req.nonce)
        if not self.service.nonces.hold(nonce_key):
            return refuse(
                RefusalReason.REQUEST_IN_FLIGHT,
                "the same request is still being served; retry shortly",
                block,
            )
        try:
            return self._serve(signed, signer, view.patient, policy, block, now)
        finally:
            self.service.nonces.release(nonce_key)

    def _serve(
        self,
        signed: SignedEmergencyRequest,
        signer: str,
        patient: str,
        policy: EmergencyPolicyRecord,
        block: int,
        now: int,
    ) -> Served | Refusal:
        req, refuse = signed.request, self.service.refuse
        digest = req.digest(signed.chain_id, signed.verifying_contract)
        used = self.store.nonce_digest(signer, req.nonce)
        if used is not None and used != digest:
            return refuse(
                RefusalReason.REPLAYED_NONCE,
                "another request already used this nonce; sign a new request",
                block,
            )
        record_ids = indexed_records(
            self.service, req.capsule_hashes, patient, bytes(req.tag), block, "than the request's"
        )
        if isinstance(record_ids, Refusal):
            return record_ids
        emergency_scope = EmergencyScope.of(patient, bytes(req.tag), self.chain.emergency_contract)
        kfrag = self.service.caches.kfrag(emergency_scope)
        if kfrag is None:
            return refuse(
                RefusalReason.KFRAG_UNAVAILABLE,
                "this proxy holds no valid key fragment for this category of the opt-in",
                block,
            )
        cfrags = reencrypt_capsules(self.service, signed, kfrag, block)
        if isinstance(cfrags, Refusal):
            return cfrags
        if used is None:  # journaled (durably) before the answer leaves, once per request
            self.service.journal.record(
                Serve(
                    emergency_scope.policy_id,
                    signer,
                    tuple(record_ids),
                    block,
                    req.nonce,
                    req.deadline,
                    capsule_hashes=tuple(req.capsule_hashes),
                    signature=bytes(signed.signature),
                    block_time=now,
                    digest=digest,
                    declaration_id=req.declaration_id,
                    tag=bytes(req.tag),
                    proxies=policy.proxies,
                )
            )
        self.service.count_served(len(cfrags), repeat=used is not None)
        return Served(cfrags, block, kfrag.binding.category_public_key_bytes)
