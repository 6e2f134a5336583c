"""Fixtures for the chain tests: one deployment per node, actors bound to their keys.

The contracts and the consortium (3 admins with threshold 2, a provider, 3 proxies and an
insurer; a patient with a profile) are set up once per node, before the per-test snapshot
of the ``chain`` fixture, so every test starts from the same state and its changes are
reverted after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from emrshare.chain import (
    AccessEntry,
    Action,
    ChainClient,
    Contracts,
    Deployment,
    GrantParams,
    ProposalCreated,
    Role,
    deploy_contracts,
)
from emrshare.devnet import DevNode
from emrshare.errors import ContractRevert
from emrshare.types import CategoryTag, PolicyId

ADMINS = (0, 1, 2)
PATIENT, HOSPITAL, PROXY_A, PROXY_B, PROXY_C, INSURER, OUTSIDER = 3, 4, 5, 6, 7, 8, 9
PROXIES = (PROXY_A, PROXY_B, PROXY_C)


def _admit(admins: list[Contracts], member: Contracts, role: Role, endpoint: str = "") -> None:
    member.registry.apply(os.urandom(33), os.urandom(32), endpoint)
    addr = member.registry.client.address
    assert addr is not None
    pid = admins[0].registry.propose(Action.ADMIT, addr, role).event(ProposalCreated).proposal_id
    admins[1].registry.approve(pid)
    admins[0].registry.execute(pid)


@pytest.fixture(scope="session")
def base_deployment(devnode: DevNode, dev_keys: list[bytes]) -> Deployment:
    """Contracts and consortium members, set up once per node."""
    w3 = Web3(Web3.HTTPProvider(devnode.rpc_url, request_kwargs={"timeout": 30}))
    admins = [Web3.to_checksum_address(ChainClient(w3, dev_keys[i]).address or "") for i in ADMINS]
    dep = deploy_contracts(w3, dev_keys[0], admins=admins, admin_threshold=2)
    base = Contracts.from_deployment(ChainClient(w3, dev_keys[0]), dep)
    admin_c = [base.with_client(ChainClient(w3, dev_keys[i])) for i in ADMINS]
    _admit(admin_c, base.with_client(ChainClient(w3, dev_keys[HOSPITAL])), Role.PROVIDER)
    for i in PROXIES:
        _admit(admin_c, base.with_client(ChainClient(w3, dev_keys[i])), Role.PROXY, f"http://p{i}")
    _admit(admin_c, base.with_client(ChainClient(w3, dev_keys[INSURER])), Role.INSURER)
    base.with_client(ChainClient(w3, dev_keys[PATIENT])).profiles.register(
        os.urandom(33), os.urandom(32)
    )
    return dep


@dataclass
class Net:
    """The deployment on the test's node; ``as_(i)`` gives contracts signing with key ``i``."""

    w3: Web3
    node: DevNode
    deployment: Deployment
    keys: list[bytes]

    def as_(self, i: int, **client_kw: Any) -> Contracts:
        client = ChainClient(self.w3, self.keys[i], **client_kw)
        return Contracts.from_deployment(client, self.deployment)

    def addr(self, i: int) -> str:
        a = ChainClient(self.w3, self.keys[i]).address
        assert a is not None
        return a

    @property
    def proxies(self) -> list[str]:
        return [self.addr(i) for i in PROXIES]

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance_time(self, seconds: int) -> None:
        self.node.rpc("evm_increaseTime", [seconds])
        self.node.rpc("evm_mine")

    def grant_params(self, grantee: int | str = HOSPITAL, **over: Any) -> GrantParams:
        fields: dict[str, Any] = {
            "nonce": os.urandom(32),
            "grantee": self.addr(grantee) if isinstance(grantee, int) else grantee,
            "tag": CategoryTag(b"\x11" * 32),
            "expiry": self.chain_time() + 3600,
            "proxies": self.proxies,
            "threshold": 2,
            "sealed_kfrags": [os.urandom(366) for _ in PROXIES],
            "sealed_grantee_map": os.urandom(130),
        }
        fields.update(over)
        return GrantParams(**fields)

    def sign_request(
        self,
        signer: int,
        proxy: int,
        policy_id: PolicyId,
        capsule_hashes: list[bytes],
        nonce: int,
        deadline: int,
    ) -> bytes:
        """The 65-byte EIP-712 signature by key ``signer`` of a ProxyRequest to ``proxy``."""
        digest = self.as_(signer).grants.hash_proxy_request(
            self.addr(proxy), policy_id, capsule_hashes, nonce, deadline
        )
        return bytes(Account.unsafe_sign_hash(digest, self.keys[signer]).signature)

    def access(
        self,
        policy_id: PolicyId,
        proxy: int,
        *,
        signer: int = HOSPITAL,
        capsules: int = 2,
        nonce: int | None = None,
        deadline: int | None = None,
        at: int | None = None,
        time: int | None = None,
        **over: Any,
    ) -> AccessEntry:
        """A served access as ``proxy`` logs it: ``signer``'s signed request, evaluated at
        block ``at`` (default latest) with that block's timestamp (or ``time``)."""
        block = self.w3.eth.get_block("latest" if at is None else at)
        caps = [os.urandom(32) for _ in range(capsules)]
        n = int.from_bytes(os.urandom(8), "big") if nonce is None else nonce
        dl = int(block["timestamp"]) + 600 if deadline is None else deadline
        fields: dict[str, Any] = {
            "capsule_hashes": caps,
            "nonce": n,
            "deadline": dl,
            "evaluated_at": int(block["number"]),
            "evaluated_time": int(block["timestamp"]) if time is None else time,
            "signature": self.sign_request(signer, proxy, policy_id, caps, n, dl),
        }
        fields.update(over)
        return AccessEntry(**fields)

    def pass_proposal(
        self, action: Action, target: int | str, role: Role = Role.NONE, **kw: Any
    ) -> int:
        """Propose (admin 0), approve (admin 1) and execute; returns the proposal id."""
        addr = self.addr(target) if isinstance(target, int) else target
        r = self.as_(0).registry.propose(action, addr, role, **kw)
        pid = r.event(ProposalCreated).proposal_id
        self.as_(1).registry.approve(pid)
        self.as_(0).registry.execute(pid)
        return pid


@pytest.fixture
def net(chain: DevNode, w3: Web3, base_deployment: Deployment, dev_keys: list[bytes]) -> Net:
    # A test elsewhere could have reverted past the session deployment: redeploy then.
    dep = base_deployment
    if not w3.eth.get_code(Web3.to_checksum_address(dep.address_of("AuditLog"))):
        pytest.fail("the session deployment was reverted by another test's snapshot")
    return Net(w3, chain, dep, dev_keys)


def reverts(fn: Callable[[], object], name: str, **args: Any) -> ContractRevert:
    """Run ``fn``; assert it reverts with custom error ``name`` and exactly ``args``.

    An expected value may be a predicate (for arguments such as the pending block's time).
    """
    with pytest.raises(ContractRevert) as info:
        fn()
    err = info.value
    assert err.name == name, f"expected {name}, got {err.name}: {err}"
    assert set(err.args_by_name) == set(args), (
        f"{name} has arguments {sorted(err.args_by_name)}; the test names {sorted(args)}"
    )
    for key, want in args.items():
        got = err.args_by_name[key]
        if callable(want):
            assert want(got), f"{name}.{key} = {got!r} fails its check"
        else:
            assert got == want, f"{name}.{key}: expected {want!r}, got {got!r}"
    return err
