"""A consortium on a real anvil with real proxy processes, for the issue #10 attack tests,
and a clearly labelled test double of a misbehaving JSON-RPC node."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from emrshare.chain import Role
from emrshare.chain.deploy import Deployment, deploy_contracts
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import DevNode, dev_private_keys, fund_account
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.roles import ConsortiumAdmin, Patient, Provider, Requester
from tests.integration.proxy.support import ProxyProcess, make_proxy

#: topic0 of ``RecordIndex.EntryAppended``, written out here (not taken from our code):
#: the test double must not compute anything with the code under test.
ENTRY_APPENDED_TOPIC = (
    "0x"
    + bytes(Web3.keccak(text="EntryAppended(address,bytes32,address,uint64,bytes28,bytes)")).hex()
)


class FaultInjectingProvider(HTTPProvider):
    """**Test double**: a JSON-RPC node that withholds the newest index entries.

    Every request goes to the real anvil node; only ``eth_getLogs`` answers are altered,
    by dropping the last ``drop`` logs whose topic0 is ``EntryAppended``. Nothing else is
    changed, and nothing is computed with emrshare's code.
    """

    def __init__(self, url: str, drop: int = 1) -> None:
        super().__init__(url, request_kwargs={"timeout": 30})
        self.drop = drop
        self.dropped = 0

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        reply = super().make_request(method, params)
        if method != "eth_getLogs" or not self.drop or not isinstance(reply.get("result"), list):
            return reply
        logs = list(reply["result"])
        entries = [i for i, lg in enumerate(logs) if lg["topics"][:1] == [ENTRY_APPENDED_TOPIC]]
        gone = set(entries[-self.drop :])
        self.dropped += len(gone)
        return {**reply, "result": [lg for i, lg in enumerate(logs) if i not in gone]}


class MemberFactory:
    """Funded, registered patients and admitted members for a test or campaign world
    (the world has ``net``, ``funder_key``, ``admin``, ``tmp`` and ``closers``)."""

    net: Network
    funder_key: bytes
    admin: ConsortiumAdmin
    tmp: Path
    closers: list[Any]

    def new_patient(self, name: str) -> Patient:
        """A fresh, funded, registered patient."""
        keys = PatientKeys.generate()
        fund_account(self.net, self.funder_key, keys.address, 10**20)
        patient = Patient(self.net, keys, state_dir=self.tmp / f"patient-{name}")
        patient.register()
        self.closers.append(patient)
        return patient

    def new_member(self, name: str, role: Role, cls: type[Requester] = Provider) -> Any:
        keys = MemberKeys.generate()
        fund_account(self.net, self.funder_key, keys.address, 10**20)
        member = cls(self.net, keys, state_dir=self.tmp / f"member-{name}")
        member.apply()
        self.admin.admit(member.address, role)
        self.closers.append(member)
        return member


@dataclass
class TrustWorld(MemberFactory):
    node: DevNode
    deployment: Deployment
    config: NetworkConfig
    net: Network
    admin: ConsortiumAdmin
    admin_key: bytes
    funder_key: bytes
    hospital: Provider
    insurer: Requester
    proxies: list[ProxyProcess]
    tmp: Path
    closers: list[Any] = field(default_factory=list)

    def faulty_network(self, drop: int = 1) -> tuple[Network, FaultInjectingProvider]:
        """The same deployment and store, read through :class:`FaultInjectingProvider`."""
        provider = FaultInjectingProvider(self.node.rpc_url, drop)
        net = Network(Web3(provider), self.deployment, self.net.store, threshold=2, name="faulty")
        return net, provider

    def sync_proxies(self) -> None:
        head = self.net.w3.eth.block_number
        for p in self.proxies:
            p.wait_cursor(head)


def start_world(tmp: Path) -> Iterator[TrustWorld]:
    node = DevNode.start("anvil", log_dir=tmp)
    proxies: list[ProxyProcess] = []
    world: TrustWorld | None = None
    try:
        keys = dev_private_keys(10)
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
        deployment = deploy_contracts(w3, keys[0])
        config = NetworkConfig(
            rpc_url=node.rpc_url,
            deployment=deployment,
            store=StoreConfig(kind="local", path=str(tmp / "store")),
        )
        net = Network.from_config(config)
        admin = ConsortiumAdmin(net, keys[0])
        for i in range(3):
            member = MemberKeys(os.urandom(32), ethereum_key=keys[4 + i])
            proxy = make_proxy(tmp / f"proxy{i}", member, node, deployment)
            Requester(net, member, state_dir=tmp / f"proxy{i}" / "member").apply(proxy.url)
            admin.admit(member.address, Role.PROXY)
            proxies.append(proxy)
        for p in proxies:
            p.start()
        hospital = Provider(
            net, MemberKeys(os.urandom(32), ethereum_key=keys[2]), state_dir=tmp / "hospital"
        )
        insurer = Requester(
            net, MemberKeys(os.urandom(32), ethereum_key=keys[3]), state_dir=tmp / "insurer"
        )
        for member, role in ((hospital, Role.PROVIDER), (insurer, Role.INSURER)):
            member.apply()
            admin.admit(member.address, role)
        world = TrustWorld(
            node, deployment, config, net, admin, keys[0], keys[9], hospital, insurer, proxies, tmp
        )
        yield world
    finally:
        if world is not None:
            for c in world.closers:
                c.close()
            world.net.close()
        for p in proxies:
            p.stop()
        node.stop()
