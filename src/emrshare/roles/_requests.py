"""A patient's sealed access requests and answers (split from the patient facade)."""

from __future__ import annotations

from typing import Protocol

from nacl.public import PrivateKey, PublicKey

from emrshare.chain import AccessRequestAnswered, AccessRequested, Contracts, RequestStatus
from emrshare.crypto.requests import (
    AccessAnswer,
    AccessRequestBody,
    open_answer,
    open_request,
    policy_ids_for_answer,
    seal_answer,
)
from emrshare.errors import ConfigurationError, ContractRevert, EmrShareError, NotFound
from emrshare.network import Network
from emrshare.roles._common import AccessRequestInfo, AccessRequestStatus, checksum
from emrshare.types import Address, PolicyId

__all__ = [
    "RequestKeys",
    "deny_request",
    "find_request",
    "list_requests",
    "request_closed",
    "sealed_answer",
]


class RequestKeys(Protocol):
    """What requests and answers need of a patient's keys: ``PatientKeys``, or a
    guardian's :class:`~emrshare.crypto.guardian.GuardianKeys` for the patient."""

    @property
    def address(self) -> Address: ...
    @property
    def box_private_key(self) -> PrivateKey: ...
    @property
    def box_public_key(self) -> PublicKey: ...


def list_requests(
    network: Network, keys: RequestKeys, *, pending_only: bool = False
) -> list[AccessRequestInfo]:
    """Access requests addressed to the patient of ``keys``, oldest first, opened (see
    :meth:`Patient.requests`)."""
    address = keys.address
    grants = network.contracts.grants
    answers = {ev.request_id: ev for ev in grants.events(AccessRequestAnswered, patient=address)}
    out = []
    for ev in grants.events(AccessRequested, patient=address):
        req = grants.request(ev.request_id)
        if pending_only and req.status is not RequestStatus.PENDING:
            continue
        body: AccessRequestBody | None
        try:
            body = open_request(
                bytes(ev.sealed_request),
                keys.box_private_key,
                patient=address,
                requester=checksum(ev.requester),
            )
        except EmrShareError:
            body = None
        status: AccessRequestStatus = "pending"
        policies: tuple[PolicyId, ...] = ()
        if req.status is not RequestStatus.PENDING:
            status, policies = _answer_of(keys, answers.get(ev.request_id), ev)
        out.append(
            AccessRequestInfo(
                request_id=ev.request_id,
                patient=checksum(ev.patient),
                requester=checksum(ev.requester),
                category=body.category if body else None,
                purpose=body.purpose if body else None,
                reason=body.reason if body else None,
                status=status,
                policy_ids=policies,
                block_number=ev.block_number,
            )
        )
    return out


def _answer_of(
    keys: RequestKeys, ans: AccessRequestAnswered | None, req: AccessRequested
) -> tuple[AccessRequestStatus, tuple[PolicyId, ...]]:
    if ans is None:
        return "answered", ()
    try:
        opened = open_answer(
            bytes(ans.sealed_answer),
            keys.box_private_key,
            request_id=req.request_id,
            patient=keys.address,
            requester=checksum(req.requester),
        )
    except EmrShareError:
        return "answered", ()
    return opened.decision, opened.policy_ids


def sealed_answer(
    network: Network,
    keys: RequestKeys,
    request_id: int,
    requester: str,
    decision: str,
    policies: list[PolicyId],
) -> bytes:
    """The sealed answer to one request (to the requester and the patient)."""
    answer = AccessAnswer(
        request_id=request_id,
        patient=keys.address,
        requester=checksum(requester),
        decision=decision,  # type: ignore[arg-type]
        policy_ids=policy_ids_for_answer(policies),
        created_at=network.chain_time(),
    )
    return seal_answer(
        answer,
        requester_box_key=PublicKey(bytes(network.member(requester).box_key)),
        patient_box_key=keys.box_public_key,
    )


def request_closed(req: AccessRequestInfo) -> ConfigurationError:
    """The error for a request that is no longer pending."""
    if req.policy_id is not None:
        what = (
            f"approved (grant 0x{bytes(req.policy_id).hex()}); to change that access, "
            "revoke the grant"
        )
    else:
        what = (
            f"{req.status}; nothing to do (the requester can send a new request, or the "
            "patient can grant access directly)"
        )
    return ConfigurationError(f"access request #{req.request_id} was already {what}")


def find_request(network: Network, keys: RequestKeys, request_id: int) -> AccessRequestInfo:
    """Request ``request_id`` to this patient, opened (:class:`NotFound` if there is none)."""
    for r in list_requests(network, keys):
        if r.request_id == request_id:
            return r
    raise NotFound(
        f"there is no access request #{request_id} for this patient; Patient.requests() lists them"
    )


def pending_request(network: Network, keys: RequestKeys, request_id: int) -> AccessRequestInfo:
    """Request ``request_id``, which must still be pending (``request_closed`` if not)."""
    req = find_request(network, keys, request_id)
    if req.status != "pending":
        raise request_closed(req)
    return req


def deny_request(network: Network, keys: RequestKeys, signed: Contracts, request_id: int) -> None:
    """Send the sealed "denied" answer to a pending request (see :meth:`Patient.deny`)."""
    req = pending_request(network, keys, request_id)
    blob = sealed_answer(network, keys, req.request_id, req.requester, "denied", [])
    try:
        signed.grants.answer_request(req.request_id, blob)
    except ContractRevert as exc:
        # Answered in between (another device of this patient): say so.
        if exc.name != "Grants_RequestClosed":
            raise
        raise request_closed(find_request(network, keys, req.request_id)) from exc
