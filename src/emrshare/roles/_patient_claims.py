"""The patient's side of insurance claims (``patient.claims``): each claim filed for the
patient and its state, consent to one claim (a grant to the insurer scoped to exactly the
claim's records, linked on chain, as one call), and the claim steps for the audit trail."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from emrshare.chain import (
    ClaimAdjudicated,
    ClaimConsented,
    ClaimFiled,
    ClaimSettled,
    ClaimStatus,
    Contracts,
)
from emrshare.errors import ConfigurationError, InvalidInput
from emrshare.network import Network
from emrshare.roles._claims import ClaimInfo, ClaimReason, claim_info, parse_claim_id
from emrshare.roles._common import GrantInfo, RecordInfo
from emrshare.roles._grants import Expiry
from emrshare.types import Address, PolicyId, RecordId

__all__ = ["ClaimStep", "PatientClaims"]


class _Owner(Protocol):
    """What the claims need of the patient: its scoped grants and its own records."""

    def grant(
        self,
        grantee: str,
        category: str,
        *,
        expires: Expiry,
        all_epochs: bool = ...,
        records: Sequence[RecordId | bytes | str] | None = ...,
    ) -> GrantInfo: ...

    def records(self, category: str | None = None) -> builtins.list[RecordInfo]: ...

    def grants(self, *, active_only: bool = False) -> builtins.list[GrantInfo]: ...


@dataclass(frozen=True, slots=True)
class ClaimStep:
    """One claim step for the patient's audit trail: ``kind`` is ``filed``,
    ``consented``, ``adjudicated`` or ``settled``; ``who`` the hospital, patient or
    insurer that acted; ``detail`` the amount, status or policy id, in words."""

    block_number: int
    claim_id: bytes
    kind: str
    who: str
    detail: str


def _reason(code: int) -> str:
    try:
        return ClaimReason(code).name.lower().replace("_", "-")
    except ValueError:
        return str(code)


class PatientClaims:
    """A patient's claims (``patient.claims``).

    Example::

        for c in patient.claims.list():
            print(c.claim_id.hex(), c.status, c.amount)
        patient.claims.consent(claim_id, expires=timedelta(days=14))
    """

    def __init__(
        self,
        network: Network,
        address: Address,
        signed: Contracts,
        owner: _Owner,
    ) -> None:
        self.network = network
        self.address = address
        self._signed = signed
        self._owner = owner

    def _filed(self) -> builtins.list[ClaimFiled]:
        return list(self.network.contracts.claims.events(ClaimFiled, patient=self.address))

    def list(self) -> list[ClaimInfo]:
        """Every claim filed for this patient, oldest first, with its state."""
        return [claim_info(self.network, ev) for ev in self._filed()]

    def get(self, claim: bytes | str) -> ClaimInfo:
        """One of this patient's claims (:class:`InvalidInput` for another id)."""
        cid = parse_claim_id(claim)
        for ev in self._filed():
            if bytes(ev.claim_id) == cid:
                return claim_info(self.network, ev)
        raise InvalidInput(f"no claim 0x{cid.hex()} was filed for you; check the id")

    def consent(self, claim: bytes | str, *, expires: Expiry) -> GrantInfo:
        """Consent to one claim: grant its insurer the claim's records only (the claim
        document's among them) until ``expires``, then link the grant to the claim on
        chain. Returns the grant. The records must all be of one category. Two
        transactions: if the link fails, the same call again reuses the grant it made."""
        info = self.get(claim)
        if info.status is not ClaimStatus.FILED:
            raise ConfigurationError(
                f"claim 0x{info.claim_id.hex()} is {info.status.value}, not open to consent"
            )
        wanted = {bytes(r) for r in info.records}
        own = self._owner.records()
        categories = {r.category for r in own if bytes(r.record_id) in wanted and r.category}
        found = {bytes(r.record_id) for r in own if bytes(r.record_id) in wanted}
        if found != wanted:
            raise InvalidInput(
                f"claim 0x{info.claim_id.hex()} names {len(wanted - found)} record(s) not in "
                "your index; do not consent, ask the hospital"
            )
        if len(categories) != 1:
            raise InvalidInput(
                f"claim 0x{info.claim_id.hex()}'s records are of {len(categories)} categories; "
                "a claim's consent covers records of one category: ask the hospital to split it"
            )
        (category,) = categories
        # Resumable: a grant made by an earlier call that stopped before the link is used
        # again (an active grant to the insurer scoped to exactly these records).
        scope = sorted(wanted)
        earlier = [
            g
            for g in self._owner.grants(active_only=True)
            if g.grantee == info.insurer and sorted(bytes(r) for r in g.records) == scope
        ]
        grant = (
            earlier[-1]
            if earlier
            else self._owner.grant(
                info.insurer, category, expires=expires, records=scope, all_epochs=False
            )
        )
        self._signed.claims.consent(info.claim_id, PolicyId(grant.policy_id), grant.proxies)
        return grant

    def history(self) -> builtins.list[ClaimStep]:
        """Every step of this patient's claims, in chain order: filed, consented,
        adjudicated, settled (for the audit trail)."""
        c = self.network.contracts.claims
        mine = {bytes(ev.claim_id): ev for ev in self._filed()}
        steps = [
            ClaimStep(
                ev.block_number, cid, "filed", ev.hospital, f"{ev.amount} billed to {ev.insurer}"
            )
            for cid, ev in mine.items()
        ]
        steps += [
            ClaimStep(
                e.block_number,
                bytes(e.claim_id),
                "consented",
                e.patient,
                f"grant 0x{bytes(e.policy_id).hex()}",
            )
            for e in c.events(ClaimConsented, patient=self.address)
        ]
        steps += [
            ClaimStep(
                e.block_number,
                bytes(e.claim_id),
                "adjudicated",
                e.insurer,
                f"{ClaimStatus.from_code(int(e.status)).value}, {e.approved_amount} "
                f"approved, reason {_reason(e.reason)}",
            )
            for e in c.events(ClaimAdjudicated, patient=self.address)
        ]
        steps += [
            ClaimStep(
                e.block_number,
                bytes(e.claim_id),
                "settled",
                e.insurer,
                f"{e.amount} to {e.hospital}",
            )
            for e in c.events(ClaimSettled)
            if bytes(e.claim_id) in mine
        ]
        return sorted(steps, key=lambda s: s.block_number)
