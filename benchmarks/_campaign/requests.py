"""Signed re-encryption requests built by hand, for posting to real proxy processes."""

from __future__ import annotations

import secrets
from typing import Any

from emrshare.crypto import SealedEntry
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash

from .world import World


def capsules_of(w: World, patient: str) -> list[bytes]:
    """The capsules of a patient's index entries, oldest first."""
    return [
        SealedEntry.from_bytes(bytes(ev.entry)).capsule_bytes
        for ev in w.net.contracts.index.entries(patient)
    ]


def signed_body(
    w: World,
    *,
    proxy: str,
    policy_id: bytes,
    capsule: bytes,
    key: bytes,
    deadline: int | None = None,
    nonce: int | None = None,
    chain_id: int | None = None,
    contract: str | None = None,
) -> tuple[dict[str, Any], ReencryptRequest]:
    """A ``POST /v1/reencrypt`` body signed with ``key`` (by default for this chain and
    the deployment's Grants contract), and its request."""
    cid = w.deployment.chain_id if chain_id is None else chain_id
    grants = contract or w.deployment.address_of("Grants")
    req = ReencryptRequest.new(
        proxy,
        policy_id,  # type: ignore[arg-type]
        [capsule_hash(capsule)],
        deadline if deadline is not None else w.net.chain_time() + 600,
        nonce=nonce if nonce is not None else secrets.randbits(256),
    )
    signed = SignedRequest(
        request=req,
        chain_id=cid,
        verifying_contract=grants,  # type: ignore[arg-type]
        signature=req.sign(key, cid, grants),
        capsules=(capsule,),
    )
    return signed.to_json(), req
