"""Test support shared by the proxy tests, unit and integration: the consortium on chain.

Chain set-up goes through the real contracts with web3 (anvil's development accounts are
unlocked, so ``transact`` signs on the node; on the in-process eth-tester chain,
:func:`unlock_on_eth_tester` makes them so); the grants and entries are made with the
crypto layer's recipes. No sockets of its own: the unit tests run it on eth-tester.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any, Protocol

from web3 import Web3
from web3.types import Wei

from emrshare.chain.artifacts import load_artifact
from emrshare.chain.deploy import deploy_contracts
from emrshare.crypto.entry import EntryContext, IndexEntry, SealedEntry, seal_entry
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.grants import Grant, GranteeMap, make_grant, open_grantee_map
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.devnet import DevNode
from emrshare.proxy.client import ProxyEndpoint, ThresholdPolicy
from emrshare.types import Address, Cid, RecordId

ROLE_PROVIDER = 1
ROLE_PROXY = 2


class ReachableProxy(Protocol):
    """A proxy a grantee can reach: a process or an in-process app."""

    @property
    def keys(self) -> MemberKeys: ...

    @property
    def endpoint(self) -> ProxyEndpoint: ...


class Consortium:
    """The deployed contracts and helpers to set up members, patients, entries, grants.

    Transactions are sent with ``transact`` from unlocked accounts: anvil unlocks its
    development accounts; on eth-tester, :func:`unlock_on_eth_tester` adds them.
    """

    @classmethod
    def on(cls, node: DevNode, admin_key: bytes) -> Consortium:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
        return cls(w3, admin_key)

    def __init__(self, w3: Web3, admin_key: bytes) -> None:
        self.w3 = w3
        self.admin = self.w3.eth.account.from_key(admin_key).address
        self.deployment = deploy_contracts(self.w3, admin_key, admins=[self.admin])
        self._origins: dict[bytes, EntryContext] = {}
        self.c = {
            name: self.w3.eth.contract(
                address=Web3.to_checksum_address(self.deployment.address_of(name)),
                abi=load_artifact(name).abi,
            )
            for name in self.deployment.addresses
        }

    @property
    def grants_address(self) -> str:
        return str(self.c["Grants"].address)

    def send(self, sender: str, call: Any, *, wait: bool = True, max_fee: int | None = None) -> Any:
        params: dict[str, Any] = {"from": sender, "gas": 3_000_000}
        if max_fee is not None:
            # anvil orders a block by max fee, then arrival: tests use it to pick an order.
            params["maxPriorityFeePerGas"] = 0
            params["maxFeePerGas"] = max_fee
        tx_hash = call.transact(params)
        if not wait:
            return tx_hash
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        assert receipt["status"] == 1, f"transaction {tx_hash.hex()} reverted"
        return receipt

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def admit(self, member: MemberKeys, role: int, endpoint: str = "") -> None:
        reg = self.c["ConsortiumRegistry"]
        pub = member.public_keys()
        self.send(
            member.address,
            reg.functions.applyForMembership(pub.receiving_key_bytes, pub.box_key_bytes, endpoint),
        )
        proposal = reg.functions.proposalCount().call()
        self.send(self.admin, reg.functions.propose(0, member.address, role, 0))
        self.send(self.admin, reg.functions.execute(proposal))

    def register_patient(self, patient: PatientKeys) -> None:
        self.send(
            patient.address,
            self.c["PatientProfiles"].functions.register(
                patient.verifying_key.to_compressed_bytes(), bytes(patient.box_public_key)
            ),
        )

    def append(
        self, patient: PatientKeys, category: str, epoch: int, count: int = 1
    ) -> list[SealedEntry]:
        """Append ``count`` entries (the patient writes its own index)."""
        index = self.c["RecordIndex"]
        tag = patient.tag(category, epoch)
        out = []
        for _ in range(count):
            seq = index.functions.nextSequence(patient.address, tag, patient.address).call()
            record_id = index.functions.recordIdOf(
                patient.address, tag, patient.address, seq
            ).call()
            body = secrets.token_bytes(64)
            entry = IndexEntry.create(
                patient=patient.address,
                record_id=RecordId(bytes(record_id)),
                cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
                data_key=DataKey.generate(),
                plaintext_sha256=hashlib.sha256(body).digest(),
                size=len(body),
                media_type="application/fhir+json",
                category=category,
                epoch=epoch,
                created_at=self.chain_time(),
                author_key=patient.ethereum_key,
            )
            sealed = seal_entry(entry, patient.category_public_key(category, epoch))
            self.send(
                patient.address,
                index.functions.append(patient.address, tag, seq, bytes(sealed)),
            )
            out.append(sealed)
            self._origins[bytes(sealed)] = EntryContext(
                entry.record_id, entry.author, category, epoch
            )
        return out

    def origin_of(self, sealed: SealedEntry) -> EntryContext:
        """Where :meth:`append` put ``sealed`` (what opening a 1.2 entry needs)."""
        return self._origins[bytes(sealed)]

    def grant(
        self,
        patient: PatientKeys,
        category: str,
        epoch: int,
        grantee: MemberKeys,
        proxies: list[MemberKeys],
        threshold: int,
        expiry: int,
        records: Sequence[bytes] = (),
    ) -> Grant:
        """A grant (scoped to ``records``, ascending, if any) sent by the patient."""
        nonce = secrets.token_bytes(32)
        policy_id = self.c["Grants"].functions.policyIdOf(patient.address, nonce).call()
        g = make_grant(
            patient,
            category=category,
            epoch=epoch,
            policy_id=bytes(policy_id),  # type: ignore[arg-type]
            grantee=grantee.public_keys(),
            proxies=[p.public_keys() for p in proxies],
            threshold=threshold,
        )
        params = (
            nonce,
            grantee.address,
            bytes(g.binding.tag),
            expiry,
            list(g.proxies),
            threshold,
            list(g.sealed_kfrags),
            g.sealed_grantee_map,
            list(records),
        )
        self.send(patient.address, self.c["Grants"].functions.grant(params))
        return g

    def revoke(
        self,
        patient: PatientKeys,
        policy_id: bytes,
        *,
        wait: bool = True,
        max_fee: int | None = None,
    ) -> Any:
        return self.send(
            patient.address,
            self.c["Grants"].functions.revoke(policy_id),
            wait=wait,
            max_fee=max_fee,
        )

    def revoke_tag(self, patient: PatientKeys, category: str, epoch: int) -> Any:
        tag = patient.tag(category, epoch)
        return self.send(patient.address, self.c["Grants"].functions.revokeTag(tag))

    def event_count(self, contract: str, event: str) -> int:
        ev = getattr(self.c[contract].events, event)()
        return len(ev.get_logs(from_block=self.deployment.start_block))

    def base_fee(self) -> int:
        return int(self.w3.eth.get_block("latest")["baseFeePerGas"])

    def access_logs(self) -> list[dict[str, Any]]:
        ev = self.c["AuditLog"].events.AccessLogged()
        return [
            dict(e["args"], block=e["blockNumber"], tx_index=e["transactionIndex"])
            for e in ev.get_logs(from_block=self.deployment.start_block)
        ]


def unlock_on_eth_tester(w3: Web3, keys: list[bytes]) -> None:
    """Make ``keys`` unlocked, funded accounts of an in-process eth-tester chain."""
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    funder = w3.eth.accounts[0]
    for key in keys:
        address = tester.add_account("0x" + key.hex())
        w3.eth.send_transaction({"from": funder, "to": address, "value": Wei(10**21)})


def threshold_policy(
    grant: Grant, grantee: MemberKeys, patient: PatientKeys, proxies: Sequence[ReachableProxy]
) -> tuple[ThresholdPolicy, GranteeMap]:
    """What a grantee knows of a grant: the opened map and the proxies' endpoints."""
    gmap = open_grantee_map(
        grant.sealed_grantee_map, grantee, patient_verifying_key=patient.verifying_key
    )
    by_address = {p.keys.address: p for p in proxies}
    policy = ThresholdPolicy.from_grantee_map(
        gmap,
        [by_address[a].endpoint for a in grant.proxies],
        grantee.receiving_public_key.to_compressed_bytes(),
    )
    return policy, gmap


__all__ = [
    "ROLE_PROVIDER",
    "ROLE_PROXY",
    "Address",
    "Consortium",
    "ReachableProxy",
    "threshold_policy",
    "unlock_on_eth_tester",
]
