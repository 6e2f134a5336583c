"""Onboarding a member in one call: its local profile, its published keys, its admission.

What an admin (or a devnet script) does to bring a hospital, insurer or proxy into the
consortium, in the order that wastes nothing when it is refused: the admin's own role is
checked before any profile is created or any gas is spent.

Example::

    from emrshare.roles.onboard import onboard_member

    done = onboard_member(
        net, admin_eth_key, profiles, "pharmacy-x", Role.PHARMACY, password, fund=faucet
    )
    if done.mnemonic is not None:  # created now: its one showing
        back_up(done.mnemonic)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account

from emrshare.chain import Role
from emrshare.crypto import MemberKeys
from emrshare.errors import InvalidInput, NotAdmin
from emrshare.network import Network
from emrshare.roles import ConsortiumAdmin, Profiles, Requester
from emrshare.types import Address

__all__ = ["Onboarded", "onboard_member"]


@dataclass(frozen=True, slots=True)
class Onboarded:
    """A member that is now admitted: its profile ``name``, ``address`` and ``role``.

    ``mnemonic`` is set only when the profile was created by this call, and is then
    the only copy outside the keystore: show it to the operator once.
    ``proposal_id`` is the admission proposal (``-1`` when the member already had
    ``role``); with more than one admin approval needed it still waits for the others.
    """

    name: str
    address: Address
    role: Role
    proposal_id: int
    mnemonic: str | None = field(default=None, repr=False)


def onboard_member(
    network: Network,
    admin_key: bytes,
    profiles: Profiles,
    name: str,
    role: Role,
    password: str,
    *,
    endpoint: str = "",
    fund: Callable[[Address], None] | None = None,
    fast_kdf: bool = False,
) -> Onboarded:
    """Create (or reuse) member profile ``name``, publish its keys, and admit it as ``role``.

    ``admin_key`` is the Ethereum key of an active consortium admin; ``password`` opens
    (or, for a new profile, seals) the member's keystore. ``endpoint`` is the base URL a
    proxy publishes (empty for other roles). ``fund`` is called with a newly created
    member's address before it sends its first transaction: a new account has no gas
    (the devnet's faucet passes here). ``fast_kdf`` makes a new keystore cheap to open,
    for development networks only.

    Raises :class:`NotAdmin` before anything is created when ``admin_key`` is not an
    admin's, :class:`InvalidInput` for role ``NONE`` or a profile ``name`` that holds a
    patient, :class:`~emrshare.errors.KeystoreError` for a wrong password, and the
    chain's errors if publishing or admitting fails (both are safe to run again).
    """
    if not isinstance(role, Role):
        # Checked here: a name or a number would fail only after the profile was made.
        raise InvalidInput(
            f"role must be an emrshare.Role such as Role.PROVIDER, not {role!r}; "
            "choose the member's role"
        )
    if role is Role.NONE:
        raise InvalidInput("role NONE cannot be granted; choose the member's role")
    admin_address = Address(Account.from_key(admin_key).address)
    if not network.contracts.registry.has_role(admin_address, Role.ADMIN):
        raise NotAdmin(admin_address)
    label = role.name.lower()
    mnemonic: str | None = None
    if not profiles.exists(name):
        profile, mnemonic = profiles.create(name, "member", password, role=label, fast_kdf=fast_kdf)
        if fund is not None:
            fund(profile.address)
    keys = profiles.unlock(name, password)
    if not isinstance(keys, MemberKeys):
        raise InvalidInput(f"profile {name!r} holds a patient, not a member; choose another name")
    requester = Requester(network, keys, state_dir=profiles.get(name).state_dir)
    try:
        requester.apply(endpoint=endpoint)
    finally:
        requester.close()
    proposal_id = ConsortiumAdmin(network, admin_key).admit(keys.address, role)
    profiles.set_role(name, label)
    return Onboarded(name, keys.address, role, proposal_id, mnemonic)
