"""The consortium grants and withdraws the EMERGENCY capability through the admin facade
(issue 15), M-of-N like any registry proposal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emrshare import ConsortiumAdmin, InvalidInput
from emrshare.chain import Capability, Role
from emrshare.crypto import MemberKeys
from emrshare.devnet import LocalNetwork
from emrshare.roles import Requester

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, Requester]]:
    tmp = tmp_path_factory.mktemp("emergency-cap")
    net = LocalNetwork.start(tmp / "net", proxies=1, threshold=1)
    clinic = Requester(net, MemberKeys.generate(ethereum_key=net.dev_keys[0]), state_dir=tmp / "c")
    try:
        yield net, clinic
    finally:
        clinic.close()
        net.close()


def test_admin_gives_and_withdraws_the_emergency_capability(
    world: tuple[LocalNetwork, Requester],
) -> None:
    net, clinic = world
    admin = ConsortiumAdmin(net, net.admin_key)
    clinic.apply()
    admin.admit(clinic.address, Role.PROVIDER)
    registry = net.contracts.registry
    assert admin.set_capabilities(clinic.address, Capability.EMERGENCY) >= 0
    assert registry.has_capability(clinic.address, Capability.EMERGENCY)
    assert admin.set_capabilities(clinic.address, Capability.EMERGENCY) == -1  # already
    admin.set_capabilities(clinic.address, Capability.NONE)
    assert not registry.has_capability(clinic.address, Capability.EMERGENCY)


def test_capability_for_a_non_member_or_of_a_wrong_type_is_refused(
    world: tuple[LocalNetwork, Requester],
) -> None:
    net, _ = world
    admin = ConsortiumAdmin(net, net.admin_key)
    with pytest.raises(InvalidInput, match="admit it before"):
        admin.set_capabilities("0x" + "ab" * 20, Capability.EMERGENCY)
    with pytest.raises(InvalidInput, match=r"Capability\.EMERGENCY"):
        admin.set_capabilities(admin_address(net), 1)  # type: ignore[arg-type]


def admin_address(net: LocalNetwork) -> str:
    from eth_account import Account

    return str(Account.from_key(net.admin_key).address)
