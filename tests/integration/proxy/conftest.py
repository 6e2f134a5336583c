"""A consortium on a real anvil with three real proxy processes (threshold 2)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from emrshare.crypto.grants import Grant
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.devnet import DevNode, dev_private_keys
from emrshare.proxy.client import ThresholdClient, ThresholdPolicy

from .support import ROLE_PROVIDER, ROLE_PROXY, Consortium, ProxyProcess, make_proxy

CATEGORY = "lab-results"
FAR = 10 * 365 * 24 * 3600


@dataclass
class Net:
    node: DevNode
    chain: Consortium
    patient: PatientKeys
    grantee: MemberKeys
    outsider: MemberKeys
    proxies: list[ProxyProcess]
    tmp: Path

    def client(self, key: bytes | None = None, **kw: object) -> ThresholdClient:
        return ThresholdClient(
            key or self.grantee.ethereum_key,
            chain_id=self.chain.deployment.chain_id,
            grants_contract=self.chain.grants_address,
            **kw,  # type: ignore[arg-type]
        )

    def grant(
        self,
        *,
        category: str = CATEGORY,
        epoch: int = 0,
        expiry: int | None = None,
        records: Sequence[bytes] = (),
    ) -> tuple[Grant, ThresholdPolicy]:
        from .support import threshold_policy

        g = self.chain.grant(
            self.patient,
            category,
            epoch,
            self.grantee,
            [p.keys for p in self.proxies],
            2,
            expiry or self.chain.chain_time() + FAR,
            sorted(records),
        )
        self.sync()
        policy, _ = threshold_policy(g, self.grantee, self.patient, self.proxies)
        return g, policy

    def sync(self) -> None:
        """Wait until every running proxy has applied the latest block."""
        head = self.chain.w3.eth.block_number
        for p in self.proxies:
            if p.running:
                p.wait_cursor(head)

    def ensure_running(self) -> None:
        for p in self.proxies:
            if not p.running:
                p.start()


@pytest.fixture(scope="package")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("proxynet")
    node = DevNode.start("anvil", log_dir=tmp)
    proxies: list[ProxyProcess] = []
    try:
        keys = dev_private_keys(10)
        chain = Consortium.on(node, keys[0])
        patient = PatientKeys(secrets.token_bytes(32), ethereum_key=keys[1])
        grantee = MemberKeys.generate(ethereum_key=keys[2])
        outsider = MemberKeys.generate(ethereum_key=keys[3])
        chain.register_patient(patient)
        chain.admit(grantee, ROLE_PROVIDER)
        chain.admit(outsider, ROLE_PROVIDER)
        for i in range(3):
            member = MemberKeys.generate(ethereum_key=keys[4 + i])
            proxy = make_proxy(tmp / f"proxy{i}", member, node, chain.deployment)
            chain.admit(member, ROLE_PROXY, proxy.url)
            proxies.append(proxy)
        for p in proxies:
            p.start()
        yield Net(node, chain, patient, grantee, outsider, proxies, tmp)
    finally:
        for p in proxies:
            p.stop()
        node.stop()


@pytest.fixture
def net_up(net: Net) -> Iterator[Net]:
    """``net`` with all three proxies running before and after the test."""
    net.ensure_running()
    yield net
    net.ensure_running()
