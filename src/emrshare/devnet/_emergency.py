"""The devnet's consortium emergency key (issue 15): generated once, published in the
Emergency contract by the deployer, and handed to the members holding the EMERGENCY
capability as a 0600 key file in their data dirs (their hospital's emergency service,
in production). The demo hospital is given the capability.

**Warning:** development only: the key's master copy sits in the devnet dir.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

from emrshare.chain import Capability
from emrshare.crypto import MemberKeys
from emrshare.errors import ConfigurationError
from emrshare.network import Network
from emrshare.roles import (
    EMERGENCY_KEY_FILE,
    ConsortiumAdmin,
    Profiles,
    load_emergency_key,
    save_emergency_key,
)

__all__ = ["setup_emergency"]


def setup_emergency(
    net: Network,
    admin: ConsortiumAdmin,
    deployer_key: bytes,
    profiles: Profiles,
    emergency_members: Iterable[str],
    dev: Path,
    log: Callable[[str], None],
) -> None:
    """Publish the emergency key (once), give ``emergency_members`` (profile names) the
    EMERGENCY capability and write the key file into their data dirs."""
    master = dev / "emergency" / EMERGENCY_KEY_FILE
    em = net.contracts.emergency
    published, _ = em.emergency_keys()
    keys: MemberKeys | None = None
    with contextlib.suppress(ConfigurationError):
        keys = load_emergency_key(master)
    if not published:
        keys = keys or MemberKeys.generate()
        save_emergency_key(master, keys)
        net.contracts_for(deployer_key).emergency.set_emergency_keys(
            keys.receiving_public_key.to_compressed_bytes(), bytes(keys.box_public_key)
        )
    elif keys is None or keys.receiving_public_key.to_compressed_bytes() != published:
        log("emergency   the published key is not the devnet's copy; no key files written")
        return
    registry = net.contracts.registry
    for name in emergency_members:
        address = profiles.get(name).address
        if not registry.has_capability(address, Capability.EMERGENCY):
            admin.set_capabilities(address, Capability.EMERGENCY)
        save_emergency_key(profiles.get(name).state_dir / EMERGENCY_KEY_FILE, keys)
        log(f"emergency   {name:<11} EMERGENCY capability, key file in its data dir")
