"""The proxy's view of the chain over JSON-RPC (web3.py), from a deployment file.

Reads the Grants, RecordIndex, ConsortiumRegistry and PatientProfiles contracts and signs
AuditLog transactions with the proxy's own Ethereum key. Every web3 or transport error is
re-raised as :class:`~emrshare.errors.ChainError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from eth_account import Account
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint

from emrshare.chain import contracts as chain
from emrshare.chain.artifacts import load_artifact
from emrshare.chain.client import ChainClient
from emrshare.chain.client import _scrub as scrub  # the chain layer's URL-secret scrubber
from emrshare.chain.deploy import Deployment
from emrshare.crypto.entry import SealedEntry
from emrshare.errors import ChainError, ContractRevert, EmrShareError, TransactionFailed
from emrshare.proxy.chainview import (
    AuditItem,
    ChainEvent,
    EntryAppended,
    GrantCreated,
    GrantRevoked,
    PolicyStatus,
    TagRevoked,
    audit_gas,
)

__all__ = ["Web3ProxyChain"]

P = ParamSpec("P")
R = TypeVar("R")

_STATUS = {
    0: PolicyStatus.UNKNOWN,
    1: PolicyStatus.ACTIVE,
    2: PolicyStatus.REVOKED,
    3: PolicyStatus.EXPIRED,
    4: PolicyStatus.REVOKED,  # TagRevoked: the whole category moved on
}


_STATUS_OF = bytes(keccak(b"statusOf(bytes32)"))[:4]
_PROXY_ROLE = int(chain.Role.PROXY)


def _int(value: Any) -> int:
    """A JSON-RPC quantity or data word (hex string; some providers give ints or bytes)."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    text = str(value)
    return int(text, 16) if text.startswith("0x") else int(text)


def _chain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EmrShareError:
            raise
        except ContractLogicError as exc:
            # A revert is an answer (e.g. "no such profile"), not an outage.
            raise ContractRevert(
                "unknown", message=f"chain call {fn.__name__} reverted: {exc}"
            ) from exc
        except Exception as exc:
            # Scrubbed: the message reaches logs and GET /healthz, and RPC URLs carry keys.
            raise ChainError(
                f"chain call {fn.__name__} failed: {type(exc).__name__}: {scrub(exc)}; "
                "check the RPC endpoint"
            ) from exc

    return wrapper


class Web3ProxyChain:
    """A :class:`~emrshare.proxy.chainview.ProxyChain` over a web3 connection.

    The connection is used as given; :class:`~emrshare.proxy.node.ProxyNode` builds a
    lean one for the hot path (see there).
    """

    def __init__(self, w3: Web3, deployment: Deployment, account_key: bytes) -> None:
        self.w3 = w3
        # Plain JSON-RPC on the hot path only over HTTP (in-process test providers speak
        # their own dialect of it).
        self._raw_rpc = isinstance(w3.provider, HTTPProvider)
        self.deployment = deployment
        self._key = account_key
        self._address = str(Account.from_key(account_key).address)

        def contract(name: str) -> Any:
            return w3.eth.contract(
                address=Web3.to_checksum_address(deployment.address_of(name)),
                abi=load_artifact(name).abi,
            )

        self.grants = contract("Grants")
        self.index = contract("RecordIndex")
        self.registry = contract("ConsortiumRegistry")
        self.profiles = contract("PatientProfiles")
        self.audit = contract("AuditLog")
        # Logs are decoded by the typed bindings (one decoder for the whole code base);
        # they read only at the latest block, so the reads below stay raw web3.
        reader = ChainClient(w3)
        self._decoders = {
            str(self.grants.address): chain.Grants(reader, self.grants.address),
            str(self.index.address): chain.RecordIndex(reader, self.index.address),
        }
        self._topics = [
            "0x" + str(e.topic).removeprefix("0x")
            for e in (
                self.grants.events.GrantCreated(),
                self.grants.events.GrantRevoked(),
                self.grants.events.TagRevoked(),
                self.index.events.EntryAppended(),
            )
        ]

    def __repr__(self) -> str:
        return f"Web3ProxyChain(proxy={self._address}, chain_id={self.chain_id})"

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    @property
    def grants_contract(self) -> str:
        return str(self.grants.address)

    @property
    def proxy_address(self) -> str:
        return self._address

    def _raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call straight through the provider.

        The request path reads the chain twice per request; web3's middleware and result
        formatters cost more CPU than the calls themselves, so the hot path skips them.
        """
        reply = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in reply:
            raise ChainError(f"{method} failed: {reply['error']}")
        return reply["result"]

    @_chain_errors
    def head(self) -> int:
        if not self._raw_rpc:
            return int(self.w3.eth.block_number)
        return _int(self._raw("eth_blockNumber", []))

    @_chain_errors
    def block_hash(self, number: int) -> bytes | None:
        if not self._raw_rpc:
            try:
                return bytes(self.w3.eth.get_block(number)["hash"])
            except Exception:  # eth-tester: BlockNotFound
                return None
        raw = self._raw("eth_getBlockByNumber", [hex(number), False])
        return None if raw is None else bytes.fromhex(str(raw["hash"]).removeprefix("0x"))

    @_chain_errors
    def latest(self) -> tuple[int, int]:
        if not self._raw_rpc:
            block = self.w3.eth.get_block("latest")
            return int(block["number"]), int(block["timestamp"])
        raw = self._raw("eth_getBlockByNumber", ["latest", False])
        return _int(raw["number"]), _int(raw["timestamp"])

    @_chain_errors
    def events(self, from_block: int, to_block: int) -> list[ChainEvent]:
        logs = self.w3.eth.get_logs(
            {
                "fromBlock": from_block,
                "toBlock": to_block,
                "address": [self.grants.address, self.index.address],
                "topics": [self._topics],
            }
        )
        out: list[ChainEvent] = []
        for raw in sorted(logs, key=lambda lg: (lg["blockNumber"], lg["logIndex"])):
            ev = self._decode(raw)
            if ev is not None:
                out.append(ev)
        return out

    def _decode(self, raw: Any) -> ChainEvent | None:
        decoder = self._decoders.get(Web3.to_checksum_address(raw["address"]))
        ev = decoder.decode_log(raw) if decoder is not None else None
        if isinstance(ev, chain.GrantCreated):
            return GrantCreated(
                block=ev.block_number,
                log_index=ev.log_index,
                policy_id=bytes(ev.policy_id),
                patient=ev.patient,
                grantee=ev.grantee,
                tag=bytes(ev.tag),
                expiry=ev.expiry,
                threshold=ev.threshold,
                proxies=ev.proxies,
                sealed_kfrags=ev.sealed_kfrags,
            )
        if isinstance(ev, chain.GrantRevoked):
            return GrantRevoked(ev.block_number, ev.log_index, bytes(ev.policy_id))
        if isinstance(ev, chain.TagRevoked):
            return TagRevoked(ev.block_number, ev.log_index, ev.patient, bytes(ev.tag))
        if not isinstance(ev, chain.EntryAppended):
            return None
        try:
            sealed = SealedEntry.from_bytes(ev.entry)
        except EmrShareError:
            return None  # not a sealed entry: nothing a proxy could ever serve
        return EntryAppended(
            block=ev.block_number,
            log_index=ev.log_index,
            patient=ev.patient,
            tag=bytes(ev.tag),
            record_id=bytes(ev.record_id),
            capsule_hash=sealed.capsule_hash,
            capsule=sealed.capsule,
        )

    @_chain_errors
    def policy_status(self, policy_id: bytes, block: int) -> PolicyStatus:
        # statusOf(bytes32) encoded by hand: this runs for every request.
        data = _STATUS_OF + bytes(policy_id)
        if not self._raw_rpc:
            out = self.w3.eth.call({"to": self.grants.address, "data": data}, block)
            return _STATUS.get(_int(bytes(out)), PolicyStatus.UNKNOWN)
        call = {"to": self.grants.address, "data": "0x" + data.hex()}
        raw = self._raw("eth_call", [call, hex(block)])
        return _STATUS.get(_int(raw), PolicyStatus.UNKNOWN)

    @_chain_errors
    def patient_verifying_key(self, patient: str, block: int) -> bytes:
        profile = self.profiles.functions.profileOf(Web3.to_checksum_address(patient)).call(
            block_identifier=block
        )
        return bytes(profile[0])

    @_chain_errors
    def receiving_key(self, member: str, block: int) -> bytes:
        m = self.registry.functions.memberOf(Web3.to_checksum_address(member)).call(
            block_identifier=block
        )
        return bytes(m[3])  # (role, admittedAt, suspendedAt, umbralKey, boxKey, endpoint)

    @_chain_errors
    def is_active_proxy(self, account: str, block: int) -> bool:
        # hasRole is false for a suspended member (ConsortiumRegistry).
        return bool(
            self.registry.functions.hasRole(Web3.to_checksum_address(account), _PROXY_ROLE).call(
                block_identifier=block
            )
        )

    @_chain_errors
    def is_active_member(self, account: str, block: int) -> bool:
        # False for an unknown, removed or suspended account (ConsortiumRegistry).
        return bool(
            self.registry.functions.isActiveMember(Web3.to_checksum_address(account)).call(
                block_identifier=block
            )
        )

    @_chain_errors
    def block_gas_limit(self) -> int:
        if not self._raw_rpc:
            return int(self.w3.eth.get_block("latest")["gasLimit"])
        return _int(self._raw("eth_getBlockByNumber", ["latest", False])["gasLimit"])

    @_chain_errors
    def sign_audit_batch(
        self,
        policy_id: bytes,
        grantee: str,
        proxies: Sequence[str],
        items: Sequence[AuditItem],
        nonce: int,
    ) -> tuple[bytes, bytes]:
        accesses = [
            (list(i.capsule_hashes), i.nonce, i.deadline, i.block, i.block_time, i.signature)
            for i in items
        ]
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = 1_000_000_000
        tx = self.audit.functions.logAccesses(
            policy_id,
            Web3.to_checksum_address(grantee),
            [Web3.to_checksum_address(p) for p in proxies],
            accesses,
        ).build_transaction(
            {
                "from": self._address,
                "nonce": nonce,
                "chainId": self.chain_id,
                "gas": audit_gas(items),
                "maxPriorityFeePerGas": tip,
                "maxFeePerGas": 4 * base_fee + tip,
            }
        )
        signed = Account.sign_transaction(tx, self._key)
        return bytes(signed.raw_transaction), bytes(signed.hash)

    @_chain_errors
    def account_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self._address, "latest"))  # type: ignore[arg-type]

    @_chain_errors
    def broadcast(self, raw_tx: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw_tx)
        except Exception as exc:
            text = str(exc).lower()
            # Rebroadcasting a stored transaction: already pooled or already mined is fine.
            if "known" in text or "nonce too low" in text or "already" in text:
                return
            if isinstance(exc, Web3RPCError | ValueError):
                # The node answered and refused it (e.g. intrinsic gas too high): the caller
                # tells a transaction that can never be mined from an outage by this type.
                raise TransactionFailed(
                    f"the node rejected the transaction: {scrub(exc)}; "
                    "its entries are logged again in a new one"
                ) from exc
            raise

    @_chain_errors
    def receipt_block(self, tx_hash: bytes) -> int | None:
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if receipt is None or int(receipt["status"]) != 1:
            return None
        return int(receipt["blockNumber"])
