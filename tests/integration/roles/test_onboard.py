"""``onboard_member`` refuses what it cannot do before it creates a profile or spends
gas, with typed errors (in-process network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emrshare import InvalidInput, NotAdmin
from emrshare.chain import Role
from emrshare.devnet import LocalNetwork, fund_account
from emrshare.roles import Profiles
from emrshare.roles.onboard import onboard_member


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    net = LocalNetwork.start(tmp_path_factory.mktemp("onboard") / "net", proxies=1, threshold=1)
    try:
        yield net
    finally:
        net.close()


@pytest.mark.parametrize("role", ["provider", 1, None, Role.NONE])
def test_odd_role_is_invalid_input_before_anything_is_created(
    net: LocalNetwork, tmp_path: Path, role: Any
) -> None:
    profiles = Profiles(tmp_path / "data")
    with pytest.raises(InvalidInput, match="role"):
        onboard_member(net, net.admin_key, profiles, "pharmacy-x", role, "pw", fast_kdf=True)
    assert not profiles.exists("pharmacy-x")


def test_not_admin_refused_before_anything_is_created(net: LocalNetwork, tmp_path: Path) -> None:
    profiles = Profiles(tmp_path / "data")
    with pytest.raises(NotAdmin):
        onboard_member(
            net, net.dev_keys[0], profiles, "pharmacy-x", Role.PHARMACY, "pw", fast_kdf=True
        )
    assert not profiles.exists("pharmacy-x")


def test_onboarded_member_and_its_files(net: LocalNetwork, tmp_path: Path) -> None:
    profiles = Profiles(tmp_path / "data")
    done = onboard_member(
        net,
        net.admin_key,
        profiles,
        "pharmacy-x",
        Role.PHARMACY,
        "pw",
        fund=lambda address: fund_account(net, net.admin_key, address),
        fast_kdf=True,
    )
    assert done.role is Role.PHARMACY
    assert done.mnemonic is not None and done.mnemonic not in repr(done)
    assert net.member(done.address).role is Role.PHARMACY
    for p in (tmp_path / "data").rglob("*"):
        mode = p.stat().st_mode & 0o777
        assert mode == (0o700 if p.is_dir() else 0o600), p
    again = onboard_member(
        net, net.admin_key, profiles, "pharmacy-x", Role.PHARMACY, "pw", fast_kdf=True
    )
    assert again.mnemonic is None and again.proposal_id == -1
