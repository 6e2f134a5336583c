"""The node's kfrag steps: unseal and verify a kfrag from a grant event, verify it again
on load, re-encrypt.

Unsealing and verifying is the crypto layer's recipe; this module only adapts it to the
proxy's store. Nothing here implements cryptography.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import umbral_pre
from eth_utils.address import to_checksum_address

from emrshare.crypto import grants
from emrshare.crypto.grants import ProxyKeyFrag, VerifiedProxyKeyFrag, open_sealed_kfrag
from emrshare.crypto.keys import MemberKeys
from emrshare.proxy._points import pk as _pk
from emrshare.proxy.node.store import StoredKfrag
from emrshare.types import Address, CategoryTag, PolicyId

__all__ = ["KfragScope", "kfrag_opener", "load_kfrag", "reencrypt"]


class KfragScope(Protocol):
    """What a kfrag's binding is checked against: a grant event or stored policy, or an
    emergency opt-in's tag (:class:`~emrshare.proxy.node.emergency_store.EmergencyScope`,
    whose grantee is the Emergency contract)."""

    @property
    def policy_id(self) -> bytes: ...

    @property
    def patient(self) -> str: ...

    @property
    def grantee(self) -> str: ...

    @property
    def tag(self) -> bytes: ...


def kfrag_opener(
    proxy_keys: MemberKeys,
) -> Callable[[bytes, KfragScope, bytes, bytes], StoredKfrag]:
    """The watcher's kfrag step: unseal with this proxy's box key, verify against the chain.

    The patient's verifying key comes from the patient profile, the grantee's receiving
    key from the registry, and every binding field from the grant event.
    """

    def open_kfrag(
        sealed: bytes, ev: KfragScope, verifying_pk: bytes, receiving_pk: bytes
    ) -> StoredKfrag:
        kfrag = open_sealed_kfrag(sealed, proxy_keys)
        # The chain no longer carries the epoch: the patient-signed binding does, and its
        # tag (checked against the chain's) is derived from (category, epoch).
        verified = kfrag.verify(
            patient_verifying_key=_pk(verifying_pk, "patient verifying key"),
            policy_id=PolicyId(ev.policy_id),
            patient=Address(to_checksum_address(ev.patient)),
            grantee=Address(to_checksum_address(ev.grantee)),
            tag=CategoryTag(ev.tag),
            epoch=kfrag.binding.epoch,
            grantee_receiving_key=_pk(receiving_pk, "grantee receiving key"),
        )
        return StoredKfrag(
            kfrag=bytes(verified),
            verifying_pk=verifying_pk,
            delegating_pk=verified.binding.category_public_key_bytes,
            receiving_pk=receiving_pk,
        )

    return open_kfrag


def load_kfrag(stored: StoredKfrag, policy: KfragScope) -> VerifiedProxyKeyFrag:
    """Parse a stored kfrag and verify it again against the policy it was accepted for."""
    kfrag = ProxyKeyFrag.from_bytes(stored.kfrag)
    return kfrag.verify(
        patient_verifying_key=_pk(stored.verifying_pk, "patient verifying key"),
        policy_id=PolicyId(policy.policy_id),
        patient=Address(to_checksum_address(policy.patient)),
        grantee=Address(to_checksum_address(policy.grantee)),
        tag=CategoryTag(policy.tag),
        epoch=kfrag.binding.epoch,
        grantee_receiving_key=_pk(stored.receiving_pk, "grantee receiving key"),
    )


def reencrypt(capsule: umbral_pre.Capsule, kfrag: VerifiedProxyKeyFrag) -> bytes:
    """Re-encrypt one capsule with a verified kfrag; returns the cfrag bytes."""
    return bytes(grants.reencrypt(capsule, kfrag))
