"""The Emergency binding: break-glass opt-ins, declarations, their end and review, and
the proxies' log of emergency serves."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt, SignedTransaction
from emrshare.chain.events import (
    EmergencyAccessLogged,
    EmergencyDeclared,
    EmergencyEnded,
    EmergencyKeysSet,
    EmergencyPolicyCreated,
    EmergencyPolicyWithdrawn,
    EmergencyReviewed,
)
from emrshare.chain.values import (
    Declaration,
    EmergencyOptInParams,
    EmergencyPolicy,
    EmergencyReview,
    EmergencyStatus,
)
from emrshare.types import CategoryTag

__all__ = ["Emergency"]

_ZERO = "0x" + "00" * 20


class Emergency(Binding):
    """Break-glass opt-ins, declarations, their end and review; emergency serve logs."""

    NAME = "Emergency"
    EVENTS = (
        EmergencyKeysSet,
        EmergencyPolicyCreated,
        EmergencyPolicyWithdrawn,
        EmergencyDeclared,
        EmergencyEnded,
        EmergencyAccessLogged,
        EmergencyReviewed,
    )

    # reads (each at ``block``, default latest)
    def emergency_keys(self, *, block: int | None = None) -> tuple[bytes, bytes]:
        """The consortium emergency keys: (Umbral receiving key, X25519 box key); empty
        and zero while not published."""
        umbral, box = self._call("emergencyKeys", block=block)
        return bytes(umbral), bytes(box)

    def status(self, declaration_id: int, *, block: int | None = None) -> EmergencyStatus:
        """The declaration's :class:`EmergencyStatus` on chain time (of ``block``)."""
        return EmergencyStatus(int(self._call("statusOf", declaration_id, block=block)[0]))

    def declaration(self, declaration_id: int, *, block: int | None = None) -> Declaration:
        """A declaration (``Emergency_UnknownDeclaration`` if there is none)."""
        (d,) = self._call("declarationOf", declaration_id, block=block)
        return Declaration(
            declaration_id,
            normalize_abi_value(d[0]),
            int(d[1]),
            int(d[2]),
            int(d[3]),
            normalize_abi_value(d[4]),
            int(d[5]),
            int(d[6]),
            EmergencyReview(int(d[7])),
            normalize_abi_value(d[8]),
        )

    def declaration_count(self, *, block: int | None = None) -> int:
        """Number of declarations ever made (ids 1 .. count)."""
        return int(self._call("declarationCount", block=block)[0])

    def policy(self, patient: str, *, block: int | None = None) -> EmergencyPolicy:
        """The patient's opt-in (``generation`` 0 if it never opted in)."""
        (p,) = self._call("policyOf", patient, block=block)
        return EmergencyPolicy(
            normalize_abi_value(patient),
            int(p[0]),
            int(p[1]),
            int(p[2]),
            int(p[3]),
            int(p[4]),
            bytes(p[5]),
        )

    def opens_tag(self, patient: str, tag: CategoryTag, *, block: int | None = None) -> bool:
        """Whether the patient's standing opt-in opens ``tag``."""
        return bool(self._call("opensTag", patient, tag, block=block)[0])

    def max_tags(self) -> int:
        """Most tags (category epochs) one opt-in may open."""
        return int(self._call("MAX_TAGS")[0])

    def max_proxies(self) -> int:
        """Most proxies one opt-in may name."""
        return int(self._call("MAX_PROXIES")[0])

    def max_window(self) -> int:
        """Longest emergency window, in seconds."""
        return int(self._call("MAX_WINDOW")[0])

    def cooldown(self, *, block: int | None = None) -> int:
        """Seconds a clinician waits between two declarations."""
        return int(self._call("cooldown", block=block)[0])

    def cosign_required(self, *, block: int | None = None) -> bool:
        """Whether every declaration needs a second clinician's co-signature."""
        return bool(self._call("cosignRequired", block=block)[0])

    def hash_cosign(self, clinician: str, patient: str, reason_code: int, deadline: int) -> bytes:
        """The EIP-712 digest a co-signing clinician signs."""
        return bytes(self._call("hashCosign", clinician, patient, reason_code, deadline)[0])

    def hash_emergency_request(
        self,
        proxy: str,
        declaration_id: int,
        tag: CategoryTag,
        capsule_hashes: Sequence[bytes],
        nonce: int,
        deadline: int,
    ) -> bytes:
        """The EIP-712 digest of a declaring clinician's request to ``proxy``."""
        return bytes(
            self._call(
                "hashEmergencyRequest",
                proxy,
                declaration_id,
                tag,
                list(capsule_hashes),
                nonce,
                deadline,
            )[0]
        )

    # transactions
    def set_emergency_keys(self, umbral_key: bytes, box_key: bytes) -> Receipt:
        """Publish the consortium emergency keys, once (the deployer only)."""
        return self._send("setEmergencyKeys", umbral_key, box_key)

    def opt_in(self, params: EmergencyOptInParams) -> Receipt:
        """Opt the sender in (replacing an earlier opt-in);
        ``receipt.event(EmergencyPolicyCreated)``."""
        return self._send("optIn", params.as_abi())

    def withdraw(self) -> Receipt:
        """Withdraw the sender's opt-in."""
        return self._send("withdraw")

    def declare(
        self,
        patient: str,
        reason_code: int,
        sealed_for_patient: bytes,
        sealed_for_regulator: bytes,
        *,
        cosigner: str = _ZERO,
        cosign_deadline: int = 0,
        cosignature: bytes = b"",
    ) -> Receipt:
        """Declare an emergency for ``patient``; ``receipt.event(EmergencyDeclared)``."""
        return self._send(
            "declare",
            patient,
            reason_code,
            sealed_for_patient,
            sealed_for_regulator,
            cosigner,
            cosign_deadline,
            cosignature,
        )

    def end(self, declaration_id: int) -> Receipt:
        """End an active declaration early (its patient, guardian or clinician)."""
        return self._send("end", declaration_id)

    def log_access(
        self,
        declaration_id: int,
        proxies: Sequence[str],
        tag: CategoryTag,
        capsule_hashes: Sequence[bytes],
        *,
        served_at: int,
    ) -> Receipt:
        """Log one emergency serve (a proxy of the opt-in; ``proxies`` in opt-in order)
        judged at chain time ``served_at`` (the time of the block the proxy read the
        declaration at): loggable after the declaration ended, never dated outside it."""
        return self._send(
            "logEmergencyAccess",
            declaration_id,
            list(proxies),
            tag,
            list(capsule_hashes),
            served_at,
        )

    def sign_log_access(
        self,
        declaration_id: int,
        proxies: Sequence[str],
        tag: CategoryTag,
        capsule_hashes: Sequence[bytes],
        *,
        served_at: int,
        nonce: int,
        gas: int,
    ) -> SignedTransaction:
        """:meth:`log_access`, signed with ``nonce`` and ``gas`` but not sent: a proxy's
        audit flusher stores it before it broadcasts it (as ``AuditLog.sign_log_accesses``)."""
        data = self._encode(
            "logEmergencyAccess",
            (declaration_id, list(proxies), bytes(tag), list(capsule_hashes), served_at),
        )
        return self.client.sign(self.address, data, gas=gas, nonce=nonce)

    def review(self, declaration_id: int, verdict: EmergencyReview) -> Receipt:
        """Record the regulator's verdict on a declaration."""
        return self._send("review", declaration_id, int(verdict))
