"""A consortium on a real node (anvil or ganache) with real proxy processes on 127.0.0.1.

This reuses the proxy test support explicitly: ``tests.integration.proxy.support`` starts
``emrshare proxy serve`` processes in their own process groups and reads their databases.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.proxy.support import ProxyProcess, make_proxy
from tests.integration.roles.trust_world import MemberFactory
from web3 import Web3

from emrshare.chain import Action, ProposalCreated, Role
from emrshare.chain.deploy import Deployment, deploy_contracts
from emrshare.crypto import MemberKeys
from emrshare.devnet import DevNode, NodeKind, dev_private_keys
from emrshare.network import Network, NetworkConfig, StoreConfig
from emrshare.roles import ConsortiumAdmin, Patient, Provider, Requester


@dataclass
class World(MemberFactory):
    kind: str
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

    def rpc(self, method: str, params: list[object] | None = None) -> Any:
        return self.node.rpc(method, params or [], timeout=60.0)

    def act(self, action: Action, account: str) -> None:
        """Propose and execute a registry action (the admin is the only admin)."""
        registry = self.net.contracts_for(self.admin_key).registry
        pid = registry.propose(action, account).event(ProposalCreated).proposal_id
        if not registry.proposal(pid).executed:
            registry.execute(pid)

    def sync_proxies(self) -> None:
        head = self.net.w3.eth.block_number
        for p in self.proxies:
            if p.running:
                p.wait_cursor(head, timeout=60.0)

    def drain(self) -> None:
        for p in self.proxies:
            if p.running:
                p.wait_audit_drained(timeout=90.0)

    def patient_with_record(
        self, name: str, category: str = "lab", content: bytes | None = None
    ) -> tuple[Patient, Any, bytes]:
        """A patient whose hospital wrote one record, granted to the insurer for a day."""
        from datetime import timedelta

        patient = self.new_patient(name)
        patient.authorize_writer(self.hospital.address, category)
        body = content if content is not None else secrets.token_bytes(300)
        record = self.hospital.add_record(patient.address, category, body)
        patient.grant(self.insurer.address, category, expires=timedelta(days=1))
        self.sync_proxies()
        return patient, record, body


@contextlib.contextmanager
def world(
    tmp: Path, kind: NodeKind = "anvil", proxies: int = 3, **proxy_opts: Any
) -> Iterator[World]:
    """Start a node, deploy, start ``proxies`` proxy processes; stop all of it at the end."""
    tmp.mkdir(parents=True, exist_ok=True)
    node = DevNode.start(kind, log_dir=tmp)
    procs: list[ProxyProcess] = []
    w: World | None = None
    net: Network | None = None
    try:
        keys = dev_private_keys(10)
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 60}))
        deployment = deploy_contracts(w3, keys[0])
        config = NetworkConfig(
            rpc_url=node.rpc_url,
            deployment=deployment,
            store=StoreConfig(kind="local", path=str(tmp / "store")),
        )
        net = Network.from_config(config)
        admin = ConsortiumAdmin(net, keys[0])
        for i in range(proxies):
            member = MemberKeys(os.urandom(32), ethereum_key=keys[4 + i])
            proxy = make_proxy(tmp / f"proxy{i}", member, node, deployment, **proxy_opts)
            Requester(net, member, state_dir=tmp / f"proxy{i}" / "member").apply(proxy.url)
            admin.admit(member.address, Role.PROXY)
            procs.append(proxy)
        for p in procs:
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
        w = World(
            kind, node, deployment, config, net, admin, keys[0], keys[9], hospital, insurer,
            procs, tmp,
        )  # fmt: skip
        yield w
    finally:
        if w is not None:
            for c in w.closers:
                with contextlib.suppress(Exception):
                    c.close()
            with contextlib.suppress(Exception):
                w.hospital.close()
                w.insurer.close()
        if net is not None:
            with contextlib.suppress(Exception):
                net.close()
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop(timeout=20.0)
            with contextlib.suppress(Exception):
                p.kill()
        node.stop()


#: The world ``--quick`` shares between sections (None: each section starts its own).
_shared: World | None = None


@contextlib.contextmanager
def section_world(prefix: str, kind: NodeKind = "anvil", **proxy_opts: Any) -> Iterator[World]:
    """The shared world when one is open (``--quick``), else a fresh one for the section."""
    if _shared is not None and _shared.kind == kind:
        yield _shared
        return
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        world(Path(tmp), kind, **proxy_opts) as w,
    ):
        yield w


@contextlib.contextmanager
def shared_world() -> Iterator[World]:
    """One anvil world for every section until closed (audit flushes every 2 s, which the
    ``faults`` section needs to kill a proxy between serving and logging)."""
    global _shared
    with (
        tempfile.TemporaryDirectory(prefix="emrshare-campaign-") as tmp,
        world(Path(tmp), flush_interval=2.0, flush_entries=64) as w,
    ):
        _shared = w
        try:
            yield w
        finally:
            _shared = None
