"""``ConsortiumAdmin``: admits members and suspends proxies by M-of-N approval."""

from __future__ import annotations

from emrshare.chain import (
    Action,
    Capability,
    MemberApplied,
    ProposalCreated,
    ProxyReported,
    Role,
)
from emrshare.errors import InvalidEvidence, InvalidInput
from emrshare.network import Network
from emrshare.roles._common import checksum
from emrshare.roles._reports import VerifiedReport, verify_report

__all__ = ["ConsortiumAdmin"]


class ConsortiumAdmin:
    """A consortium admin: admits members, sets their capabilities and suspends proxies
    by M-of-N approval.

    Example::

        admin = ConsortiumAdmin(net, admin_eth_key)
        admin.admit(hospital_address, Role.PROVIDER)   # the member applied first
    """

    def __init__(self, network: Network, eth_key: bytes) -> None:
        self.network = network
        self._contracts = network.contracts_for(eth_key)

    def admit(self, account: str, role: Role) -> int:
        """Propose admitting ``account`` with ``role`` (and execute if the threshold is met).

        Returns the proposal id; with more than one approval needed, other admins call
        :meth:`approve` and the last one executes.
        """
        if not isinstance(role, Role):
            raise InvalidInput(f"role must be an emrshare.Role such as Role.PROVIDER, not {role!r}")
        account = checksum(account)
        registry = self._contracts.registry
        if not any(registry.events(MemberApplied, account=account)):
            raise InvalidInput(
                f"{account} has not applied for membership yet; it must publish its keys "
                "first (Requester.apply)"
            )
        current = self.network.member(account)
        if current.role is role:
            return -1
        action = Action.ADMIT if current.role is Role.NONE else Action.CHANGE_ROLE
        receipt = registry.propose(action, account, role)
        pid = int(receipt.event(ProposalCreated).proposal_id)
        self._maybe_execute(pid)
        return pid

    def set_capabilities(self, account: str, capabilities: Capability) -> int:
        """Propose giving ``account`` exactly ``capabilities`` (``Capability.EMERGENCY``:
        its clinicians may declare break-glass emergencies; ``Capability.NONE`` withdraws
        them), and execute if the threshold is met.

        Returns the proposal id (-1 if the member already has exactly those); other admins
        :meth:`approve` it.

        Example::

            admin.set_capabilities(hospital_address, Capability.EMERGENCY)
        """
        if not isinstance(capabilities, Capability):
            raise InvalidInput(
                f"capabilities must be an emrshare.chain.Capability such as "
                f"Capability.EMERGENCY, not {capabilities!r}"
            )
        account = checksum(account)
        if not self.network.is_member(account):
            raise InvalidInput(
                f"{account} is not a consortium member; admit it before giving it capabilities"
            )
        if self.network.member(account).capabilities == capabilities:
            return -1
        receipt = self._contracts.registry.propose_capabilities(account, capabilities)
        pid = int(receipt.event(ProposalCreated).proposal_id)
        self._maybe_execute(pid)
        return pid

    def approve(self, proposal_id: int) -> None:
        """Approve a proposal (and execute it once it has enough approvals).

        A suspension is approved only after its evidence is verified locally: the report
        whose evidence hash the proposal cites must prove that the target misbehaved
        (:meth:`verify_report`; :class:`InvalidEvidence` otherwise).
        """
        proposal = self._contracts.registry.proposal(proposal_id)
        if proposal.action is Action.SUSPEND:
            self._verify_cited(proposal.target, bytes(proposal.reference), proposal_id)
        self._contracts.registry.approve(proposal_id)
        self._maybe_execute(proposal_id)

    def verify_report(self, report_id: int) -> VerifiedReport:
        """Check proxy report ``report_id`` against the chain before acting on it.

        Raises :class:`InvalidEvidence` when the evidence does not prove misbehaviour
        (malformed, not signed by the proxy or the grantee, other keys than the grant's,
        or the cfrag verifies).
        """
        return verify_report(self.network, report_id)

    def suspend(self, proxy: str, report_id: int) -> int:
        """Propose suspending ``proxy`` on report ``report_id`` (verified locally first;
        the proposal cites its evidence hash), and execute if the threshold is met.

        Returns the proposal id; other admins :meth:`approve` it, each verifying again.
        """
        verified = self.verify_report(report_id)
        if verified.proxy != checksum(proxy):
            raise InvalidEvidence(
                f"report {report_id} is about {verified.proxy}, not {checksum(proxy)}"
            )
        receipt = self._contracts.registry.propose(
            Action.SUSPEND, verified.proxy, reference=verified.evidence_hash
        )
        pid = int(receipt.event(ProposalCreated).proposal_id)
        self._maybe_execute(pid)
        return pid

    def _verify_cited(self, target: str, reference: bytes, proposal_id: int) -> None:
        registry = self.network.contracts.registry
        for ev in registry.events(ProxyReported, proxy=checksum(target)):
            if bytes(ev.evidence_hash) == reference:
                self.verify_report(ev.report_id)
                return
        raise InvalidEvidence(
            f"suspension proposal {proposal_id} cites no report against {target}; do not approve it"
        )

    def _maybe_execute(self, proposal_id: int) -> None:
        registry = self._contracts.registry
        proposal = registry.proposal(proposal_id)
        if not proposal.executed and proposal.approvals >= registry.admin_config().threshold:
            registry.execute(proposal_id)
