"""Test support for the proxy integration tests: chain set-up and proxy processes.

Chain set-up goes through the real contracts with web3 (anvil's development accounts are
unlocked, so ``transact`` signs on the node); the grants and entries are made with the
crypto layer's recipes. Proxies are real ``emrshare proxy serve`` processes on loopback,
each in its own process group with a parent-death signal, always torn down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from emrshare.chain.artifacts import load_artifact
from emrshare.chain.deploy import Deployment, deploy_contracts
from emrshare.chain.devnode import DevNode, free_port, spawn, stop_group
from emrshare.crypto.entry import IndexEntry, SealedEntry, seal_entry
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.grants import Grant, GranteeMap, make_grant, open_grantee_map
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.keystore import save_keystore
from emrshare.proxy.client import ProxyEndpoint, ThresholdPolicy
from emrshare.proxy.config import ProxyConfig
from emrshare.types import Address, Cid, RecordId

ROLE_PROVIDER = 1
ROLE_PROXY = 2
PASSWORD_ENV = "EMRSHARE_TEST_PROXY_PW"
PASSWORD = "proxy-test-password"


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
        return out

    def grant(
        self,
        patient: PatientKeys,
        category: str,
        epoch: int,
        grantee: MemberKeys,
        proxies: list[MemberKeys],
        threshold: int,
        expiry: int,
    ) -> Grant:
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
        w3.eth.send_transaction({"from": funder, "to": address, "value": 10**21})


@dataclass
class ProxyProcess:
    """One ``emrshare proxy serve`` process."""

    keys: MemberKeys
    config: ProxyConfig
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The test-double mode the running process was started in (None: a real proxy).
    evil: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def endpoint(self) -> ProxyEndpoint:
        return ProxyEndpoint(self.keys.address, self.url)

    def start(self, timeout: float = 90.0, *, evil: str | None = None) -> None:
        """Start ``emrshare proxy serve``; ``evil`` starts the malicious variant instead."""
        env = dict(os.environ, **{PASSWORD_ENV: PASSWORD})
        self.evil = evil
        if evil is None:
            argv = [sys.executable, "-c", "from emrshare.cli import main; main()", "proxy"]
            argv += ["serve", "--config", str(self.config_path), "--log-level", "warning"]
        else:
            argv = [sys.executable, str(Path(__file__).with_name("evil_proxy.py"))]
            argv += [str(self.config_path), evil]
        self.proc = spawn(argv, self.log_path, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"proxy did not start within {timeout}s:\n{self.log_tail()}")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/healthz", timeout=5.0).json())

    def wait_audit_drained(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health()
            if h["audit_backlog"] == 0 and h["audit_pending_batches"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"proxy {self.keys.address} did not drain its audit journal")

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + "/v1/reencrypt", json=body, timeout=10.0)

    def wait_cursor(self, block: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor = self.health()["cursor"]
            if cursor is not None and cursor >= block:
                return
            time.sleep(0.05)
        raise AssertionError(f"proxy {self.keys.address} did not reach block {block}")

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful stop (SIGTERM): the audit journal drains first."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, timeout)

    def kill(self) -> None:
        """Hard kill (SIGKILL): nothing runs on the way down."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its socket but answers nothing (a hung proxy)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def journal(self) -> list[tuple[bytes, str, tuple[bytes, ...], int, int, int]]:
        """The proxy's audit journal as (policy, requester, capsule hashes, nonce, block,
        block time) rows: what each ``AccessLogged`` event must repeat."""
        rows = self.query(
            "SELECT policy_id, requester, capsule_hashes, nonce, block, block_time FROM journal"
        )
        return [
            (r[0], r[1], tuple(bytes.fromhex(x) for x in json.loads(r[2])), int(r[3]), r[4], r[5])
            for r in rows
        ]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the proxy's own database (WAL: safe while the proxy runs)."""
        db = sqlite3.connect(self.config.database)
        try:
            return list(db.execute(sql).fetchall())
        finally:
            db.close()


def make_proxy(
    tmp: Path, keys: MemberKeys, node: DevNode, deployment: Deployment, **overrides: Any
) -> ProxyProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    keystore = tmp / "proxy.keystore"
    save_keystore(keystore, keys, PASSWORD, opslimit=1, memlimit=8192)
    deployment_path = tmp / "deployment.json"
    deployment.write(deployment_path)
    settings: dict[str, Any] = {
        "keystore": keystore,
        "password_env": PASSWORD_ENV,
        "rpc_url": node.rpc_url,
        "deployment": deployment_path,
        "data_dir": tmp / "data",
        "host": "127.0.0.1",
        "port": free_port(),
        "poll_interval": 0.1,
        "flush_interval": 0.5,
        "flush_entries": 8,
    }
    settings.update(overrides)
    config = ProxyConfig(**settings)
    path = tmp / "proxy.toml"
    path.write_text(config.to_toml())
    return ProxyProcess(keys, config, path, tmp / "proxy.log")


def threshold_policy(
    grant: Grant, grantee: MemberKeys, patient: PatientKeys, proxies: list[ProxyProcess]
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
    "PASSWORD",
    "ROLE_PROVIDER",
    "ROLE_PROXY",
    "Address",
    "Consortium",
    "ProxyProcess",
    "make_proxy",
    "threshold_policy",
]
