"""The ConsortiumRegistry binding: members, roles, keys and proxy endpoints; M-of-N
admin proposals; proxy reports."""

from __future__ import annotations

from collections.abc import Sequence

from web3 import Web3

from emrshare.chain._revert import normalize_abi_value
from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import (
    CapabilitiesChanged,
    EndpointChanged,
    KeysRotated,
    MemberAdmitted,
    MemberApplied,
    MemberReinstated,
    MemberRemoved,
    MemberRoleChanged,
    MemberSuspended,
    ProposalApproved,
    ProposalCreated,
    ProposalExecuted,
    ProxyReported,
    ThresholdChanged,
)
from emrshare.chain.values import Action, AdminConfig, Capability, Member, Proposal, Role

__all__ = ["ConsortiumRegistry"]


class ConsortiumRegistry(Binding):
    """Members, roles, keys, proxy endpoints; M-of-N admin proposals; proxy reports."""

    NAME = "ConsortiumRegistry"
    EVENTS = (
        MemberApplied,
        ProposalCreated,
        ProposalApproved,
        ProposalExecuted,
        MemberAdmitted,
        MemberRoleChanged,
        MemberRemoved,
        MemberSuspended,
        MemberReinstated,
        ProxyReported,
        ThresholdChanged,
        KeysRotated,
        EndpointChanged,
        CapabilitiesChanged,
    )

    # reads (each at ``block``, default latest)
    def member(self, account: str, *, block: int | None = None) -> Member:
        """A member's or applicant's record (reverts with ``Registry_NotMember`` otherwise)."""
        (m,) = self._call("memberOf", account, block=block)
        return Member(
            Web3.to_checksum_address(account),
            Role(m[0]),
            m[1],
            m[2],
            m[4],
            m[5],
            m[6],
            Capability(m[3]),
        )

    def role_of(self, account: str, *, block: int | None = None) -> Role:
        """The account's role (``Role.NONE`` if it is not a member; suspension not shown)."""
        return Role(self._call("roleOf", account, block=block)[0])

    def has_role(self, account: str, role: Role, *, block: int | None = None) -> bool:
        """Whether the account is a member with ``role`` and not suspended."""
        return bool(self._call("hasRole", account, int(role), block=block)[0])

    def has_capability(
        self, account: str, capability: Capability, *, block: int | None = None
    ) -> bool:
        """Whether the account is an active member holding every bit of ``capability``."""
        return bool(self._call("hasCapability", account, int(capability), block=block)[0])

    def is_active_member(self, account: str, *, block: int | None = None) -> bool:
        """Whether the account is a member (any role) and not suspended."""
        return bool(self._call("isActiveMember", account, block=block)[0])

    def is_suspended(self, account: str, *, block: int | None = None) -> bool:
        """Whether the account is a member or applicant that is suspended now."""
        return self.member(account, block=block).suspended_at != 0

    def suspended_at(self, account: str, *, block: int | None = None) -> int:
        """The block a member was suspended at, 0 if it is not suspended."""
        return self.member(account, block=block).suspended_at

    def all_have_role(
        self, accounts: Sequence[str], role: Role, *, block: int | None = None
    ) -> tuple[bool, int]:
        """``(True, len(accounts))`` if every account has ``role`` unsuspended, else
        ``(False, index of the first that does not)``; one call."""
        ok, first_bad = self._call("allHaveRole", list(accounts), int(role), block=block)
        return bool(ok), int(first_bad)

    def member_count(self, *, block: int | None = None) -> int:
        """Number of members."""
        return int(self._call("memberCount", block=block)[0])

    def members(self, offset: int = 0, limit: int = 100, *, block: int | None = None) -> list[str]:
        """One page of member addresses."""
        page = self._call("members", offset, limit, block=block)[0]
        return [Web3.to_checksum_address(a) for a in page]

    def all_members(self, page: int = 100, *, block: int | None = None) -> list[Member]:
        """Every member with its record, read page by page."""
        out: list[Member] = []
        offset = 0
        while True:
            addrs = self.members(offset, page, block=block)
            out += [self.member(a, block=block) for a in addrs]
            if len(addrs) < page:
                return out
            offset += page

    def proxies(self, *, block: int | None = None) -> list[Member]:
        """Every member with role ``PROXY`` that is not suspended (endpoints, box keys)."""
        return [
            m for m in self.all_members(block=block) if m.role is Role.PROXY and m.suspended_at == 0
        ]

    def admin_config(self, *, block: int | None = None) -> AdminConfig:
        """Number of admins N and approval threshold M."""
        n, m = self._call("adminConfig", block=block)
        return AdminConfig(int(n), int(m))

    def proposal(self, proposal_id: int, *, block: int | None = None) -> Proposal:
        """A proposal by id (``Registry_UnknownProposal`` if there is none)."""
        (p,) = self._call("proposal", proposal_id, block=block)
        return Proposal(
            proposal_id,
            Action(p[0]),
            Role(p[1]),
            p[2],
            p[3],
            p[4],
            normalize_abi_value(p[5]),
            p[6],
            normalize_abi_value(p[7]),
            bytes(p[8]),
        )

    def proposal_count(self, *, block: int | None = None) -> int:
        """Number of proposals ever made (ids 0 .. count-1)."""
        return int(self._call("proposalCount", block=block)[0])

    def report_count(self, *, block: int | None = None) -> int:
        """Number of proxy reports ever made (ids 0 .. count-1)."""
        return int(self._call("reportCount", block=block)[0])

    # transactions
    def apply(self, umbral_key: bytes, box_key: bytes, endpoint: str = "") -> Receipt:
        """Publish the sender's keys (and proxy endpoint) before admission."""
        return self._send("applyForMembership", umbral_key, box_key, endpoint)

    def rotate_keys(self, umbral_key: bytes, box_key: bytes) -> Receipt:
        """Replace the sender's (a member's) Umbral and X25519 keys."""
        return self._send("rotateKeys", umbral_key, box_key)

    def set_endpoint(self, endpoint: str) -> Receipt:
        """Set the sender's (a proxy's) endpoint URL."""
        return self._send("setEndpoint", endpoint)

    def propose(
        self,
        action: Action,
        target: str,
        role: Role = Role.NONE,
        threshold: int = 0,
        reference: bytes = bytes(32),
    ) -> Receipt:
        """Propose (and approve) an action; ``receipt.event(ProposalCreated).proposal_id``.

        ``reference`` (32 bytes) is cited in the proposal, e.g. the ``evidence_hash`` of the
        :class:`ProxyReported` a SUSPEND acts on.
        """
        if len(reference) != 32:
            raise ValueError("a proposal reference is 32 bytes")
        if reference == bytes(32):
            return self._send("propose", int(action), target, int(role), threshold)
        return self._send(
            "proposeWithReference", int(action), target, int(role), threshold, reference
        )

    def propose_capabilities(self, target: str, capabilities: Capability) -> Receipt:
        """Propose (and approve) setting ``target``'s capability mask (M-of-N, like any
        proposal); ``receipt.event(ProposalCreated).proposal_id``."""
        return self.propose(Action.SET_CAPABILITIES, target, Role.NONE, int(capabilities))

    def approve(self, proposal_id: int) -> Receipt:
        """Approve a proposal as an admin."""
        return self._send("approve", proposal_id)

    def execute(self, proposal_id: int) -> Receipt:
        """Execute a proposal that has reached the threshold."""
        return self._send("execute", proposal_id)

    def report_proxy(self, proxy: str, evidence: bytes) -> Receipt:
        """Report a proxy with ``evidence`` (1..16384 bytes, published);
        ``receipt.event(ProxyReported).report_id``."""
        return self._send("reportProxy", proxy, evidence)
