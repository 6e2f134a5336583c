"""A guardian: a person with their own keys who grants, revokes and answers access
requests in a patient's name, through the patient's forwarder, with the key bundle the
patient sealed to them (:mod:`emrshare.crypto.guardian`).

Example::

    guardian = Guardian(net, parent_keys, patient=child_address, state_dir=Path("parent"))
    grant = guardian.grant(hospital_b, "lab", expires=timedelta(days=30))
    guardian.revoke(grant.policy_id)

Every write is a ``ForwardRequest`` signed with the guardian's Ethereum key for the
patient; the forwarder runs it only while the guardianship lasts, and only for
``Grants.grant``/``revoke``/``revokeTag``/``answerRequest``. Its refusals come back as
:class:`GuardianshipEnded` (withdrawn, or its date passed) and :class:`NotDelegated`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import umbral_pre
from web3 import Web3

from emrshare.categories import normalize_category
from emrshare.chain import Contracts, GrantCreated, GrantParams, GrantStatus, GuardianSet, Receipt
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient, Submitter
from emrshare.crypto import PatientKeys
from emrshare.crypto.guardian import GuardianKeys, open_guardian_bundle
from emrshare.errors import ConfigurationError, ContractRevert, GrantRevoked, NotFound
from emrshare.network import Network
from emrshare.roles._common import AccessRequestInfo, GrantInfo, checksum, id32
from emrshare.roles._grants import Expiry, checked_expiry, grant_info
from emrshare.roles._guardians import GuardianInfo, grant_infos, guardian_error
from emrshare.roles._ops import build_grant, member_keys, resolve_proxies
from emrshare.roles._requests import (
    deny_request,
    find_request,
    list_requests,
    pending_request,
    request_closed,
    sealed_answer,
)
from emrshare.types import Address, PolicyId

__all__ = ["Guardian"]

R = TypeVar("R")


class Guardian:
    """A guardian acting for ``patient``.

    ``keys`` are the guardian's own :class:`PatientKeys` (its own mnemonic; its profile is
    registered, so the patient could seal the bundle to its box key). ``relay``: a relay
    URL (:class:`~emrshare.relay.HttpRelay`) or any :class:`Submitter`; by default the
    guardian pays the gas itself (a :class:`DirectSubmitter` with its own key, which then
    needs ETH). ``state_dir`` is this guardian's local directory for the patient (nothing
    is kept there yet: the chain holds the bundle and every action).
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        patient: str,
        *,
        state_dir: Path,
        relay: str | Submitter | None = None,
    ) -> None:
        self.network = network
        self.keys = keys
        self.address: Address = keys.address
        self.patient: Address = checksum(patient)
        self.state_dir = Path(state_dir)
        forwarder = network.deployment.address_of("PatientForwarder")
        submitter: Submitter
        self._own_gas = relay is None
        if relay is None:
            submitter = DirectSubmitter(network.contracts_for(keys.ethereum_key).client, forwarder)
        elif isinstance(relay, str):
            from emrshare.relay import HttpRelay

            submitter = HttpRelay(relay)
        else:
            submitter = relay
        client = ForwardingClient(
            network.chain, keys.ethereum_key, self.patient, forwarder, submitter
        )
        #: The patient's contracts, every send signed by this guardian (use :meth:`act`).
        self.contracts = Contracts.from_deployment(client, network.deployment)
        self._bundle: tuple[bytes, GuardianKeys] | None = None

    def __repr__(self) -> str:
        return f"Guardian({self.address} for {self.patient})"

    # -- the guardianship ---------------------------------------------------------------

    def status(self) -> GuardianInfo:
        """This guardianship as the patient's guardian list shows it."""
        fwd = self.network.contracts.forwarder
        named = list(fwd.events(GuardianSet, patient=self.patient, guardian=self.address))
        if not named:
            raise NotFound(f"{self.patient} never named {self.address} a guardian")
        until, since = fwd.guardian_of(self.patient, self.address)
        if since == 0:
            return GuardianInfo(self.address, named[-1].until, named[-1].block_number, "withdrawn")
        live = until > self.network.chain_time()
        return GuardianInfo(self.address, until, since, "active" if live else "ended")

    def bundle(self) -> GuardianKeys:
        """The newest key bundle the patient sealed to this guardian, opened and checked
        (sealed to it, for it, signed by the patient's registered verifying key)."""
        fwd = self.network.contracts.forwarder
        named = list(fwd.events(GuardianSet, patient=self.patient, guardian=self.address))
        if not named:
            raise NotFound(
                f"{self.patient} has not named {self.address} a guardian; ask the patient to"
            )
        sealed = bytes(named[-1].sealed_keys)
        if self._bundle is None or self._bundle[0] != sealed:
            profile = self.network.contracts.profiles.profile(self.patient)
            opened = open_guardian_bundle(
                sealed,
                self.keys.box_private_key,
                patient=self.patient,
                guardian=self.address,
                patient_verifying_key=umbral_pre.PublicKey.from_compressed_bytes(
                    bytes(profile.verifying_key)
                ),
            )
            self._bundle = (sealed, opened)
        return self._bundle[1]

    def categories(self) -> dict[str, int]:
        """The categories the guardianship covers and the newest epoch of each."""
        return self.bundle().epochs

    def act(self, fn: Callable[[Contracts], R]) -> R:
        """Run ``fn`` with the patient's contracts signed by this guardian; the forwarder's
        refusals raise :class:`GuardianshipEnded` or :class:`NotDelegated`. Without a
        relay, a guardian holding no ETH is a :class:`ConfigurationError` before anything
        is signed."""
        if self._own_gas and not self.network.w3.eth.get_balance(
            Web3.to_checksum_address(self.address)
        ):
            raise ConfigurationError(
                f"guardian {self.address} holds no ETH to pay for its transactions; pass a "
                "relay (a relay URL) or fund the account"
            )
        try:
            return fn(self.contracts)
        except ContractRevert as exc:
            typed = guardian_error(exc, self.patient, self.address)
            if typed is exc:
                raise
            raise typed from exc

    # -- grants -------------------------------------------------------------------------

    def grants(self, *, active_only: bool = False) -> list[GrantInfo]:
        """The patient's grants (named where the bundle covers their tag), ``by`` set on
        those a guardian made."""
        events = list(self.network.contracts.grants.events(GrantCreated, patient=self.patient))
        infos = grant_infos(self.network, self.patient, events, self.bundle().tags())
        return [g for g in infos if g.active] if active_only else infos

    def grant(
        self,
        grantee: str,
        category: str,
        *,
        expires: Expiry,
        proxies: list[str] | None = None,
        threshold: int | None = None,
        all_epochs: bool = True,
    ) -> GrantInfo:
        """Grant ``grantee`` read access to a covered ``category`` until ``expires``, in
        the patient's name (every covered epoch unless ``all_epochs`` is false); returns
        the newest epoch's grant. One transaction per epoch, not logged: after a failure
        half way, :meth:`grants` shows which were made."""
        keys = self.bundle()
        name = self._category(category)
        pids = self._grant(keys, grantee, name, expires, proxies, threshold, all_epochs)
        return self._grant_info(pids[-1])

    def _category(self, category: str) -> str:
        covered = self.bundle().epochs
        name = normalize_category(category, known=covered)
        if name not in covered:
            raise NotFound(
                f"the guardianship for {self.patient} does not cover {name!r} (it covers "
                f"{', '.join(sorted(covered))}); ask the patient to name you for it"
            )
        return name

    def _grant(
        self,
        keys: GuardianKeys,
        grantee: str,
        name: str,
        expires: Expiry,
        proxies: list[str] | None,
        threshold: int | None,
        all_epochs: bool,
    ) -> list[PolicyId]:
        expiry = checked_expiry(self.network, expires)
        member_keys(self.network, checksum(grantee), "member")
        chosen, m = resolve_proxies(self.network, proxies, threshold)
        current = keys.epochs[name]
        pids = []
        for epoch in range(current + 1) if all_epochs else [current]:
            params = build_grant(
                self.network,
                keys,
                nonce=secrets.token_bytes(32),
                grantee=grantee,
                category=name,
                epoch=epoch,
                expiry=expiry,
                proxies=chosen,
                threshold=m,
            )
            receipt = self.act(_granting(params))
            pids.append(PolicyId(bytes(receipt.event(GrantCreated).policy_id)))
        return pids

    def _grant_info(self, pid: PolicyId) -> GrantInfo:
        end = self.network.chain.latest_block()
        grants = self.network.contracts.grants
        (ev,) = grants.events(GrantCreated, policy_id=pid, to_block=end)
        return grant_info(self.network, ev, self.bundle().tags(), None, self.address)

    def revoke(self, policy: PolicyId | bytes | str) -> list[PolicyId]:
        """Revoke one of the patient's grants (``policy``: its id or a unique prefix of 8+
        hex digits), and the same grantee's other active grants of that category. A plain
        revocation: a guardian cannot move a category to a new epoch (that needs the
        patient's master secret). Returns the revoked grants."""
        events = {
            bytes(ev.policy_id): ev
            for ev in self.network.contracts.grants.events(GrantCreated, patient=self.patient)
        }
        pid = id32(policy, lambda: list(events))
        ev = events.get(pid)
        if ev is None:
            raise NotFound(f"0x{pid.hex()} is not a grant of {self.patient}")
        grants = self.network.contracts.grants
        if grants.status(PolicyId(pid)) is not GrantStatus.ACTIVE:
            raise GrantRevoked(
                f"grant 0x{pid.hex()} is no longer active; nothing to do",
                {"chain": "not_active"},
            )
        tags = self.bundle().tags()
        category = tags.get(bytes(ev.tag), (None, 0))[0]
        same = [
            p
            for p, e in events.items()
            if p != pid
            and category is not None
            and checksum(e.grantee) == checksum(ev.grantee)
            and tags.get(bytes(e.tag), (None, 0))[0] == category
            and grants.status(PolicyId(p)) is GrantStatus.ACTIVE
        ]
        done = []
        for p in [pid, *same]:
            self.act(_revoking(PolicyId(p)))
            done.append(PolicyId(p))
        return done

    # -- access requests ----------------------------------------------------------------

    def requests(self, *, pending_only: bool = False) -> list[AccessRequestInfo]:
        """The access requests to the patient, opened (the bundle carries the patient's
        box key, so the guardian reads every request's category, purpose and reason)."""
        return list_requests(self.network, self.bundle(), pending_only=pending_only)

    def approve(
        self,
        request_id: int,
        *,
        expires: Expiry,
        category: str | None = None,
        threshold: int | None = None,
    ) -> GrantInfo:
        """Approve a pending request for a covered category: grant every covered epoch,
        then send the sealed answer naming the grants. Returns the newest epoch's grant."""
        keys = self.bundle()
        req = pending_request(self.network, keys, request_id)
        asked = category or req.category
        if asked is None:
            raise NotFound(
                f"request #{request_id} names no category this guardian can read; pass the "
                "category explicitly, or deny it"
            )
        name = self._category(asked)
        pids = self._grant(keys, req.requester, name, expires, None, threshold, True)
        policies = list(reversed(pids))  # the current epoch's first
        blob = sealed_answer(self.network, keys, request_id, req.requester, "approved", policies)
        try:
            self.act(lambda c: c.grants.answer_request(request_id, blob))
        except ContractRevert as exc:
            if exc.name != "Grants_RequestClosed":
                raise
            raise request_closed(find_request(self.network, keys, request_id)) from exc
        return self._grant_info(pids[-1])

    def deny(self, request_id: int) -> None:
        """Deny a pending request in the patient's name."""
        keys = self.bundle()
        self.act(lambda c: deny_request(self.network, keys, c, request_id))

    def end_emergency(self, declaration_id: int) -> None:
        """End an active emergency declaration early, in the patient's name (as
        ``Patient.emergency.end``; ``Emergency_NotActive`` if it is not active)."""
        self.act(lambda c: c.emergency.end(declaration_id))


def _granting(params: GrantParams) -> Callable[[Contracts], Receipt]:
    return lambda c: c.grants.grant(params)


def _revoking(policy: PolicyId) -> Callable[[Contracts], Receipt]:
    return lambda c: c.grants.revoke(policy)
