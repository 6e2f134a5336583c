"""The synthetic part of ``scale_bench.py``'s consortium: real keys, real sealed entries,
real grants and real audit entries, produced in bulk and sent as pre-signed transactions.

Everything written here is a valid object of the protocol, checked by the contracts and
parsed by the proxies exactly as a real one:

- filler patients are real :class:`PatientKeys` (derived from a seed, so a cached chain can
  be extended later); each appends to its own index (a patient may always write its own)
  with ``appendBatch`` of 50 entries, each a real :class:`IndexEntry` signed by the patient
  and sealed (Umbral) to its real ``lab`` category key. Only the blob behind each entry's
  CID is missing (nobody reads those records);
- granting patients are registered profiles; each grant is made by ``make_grant`` (fresh
  kfrags for 2-of-4 proxies, sealed to each proxy, a sealed grantee map) for a filler
  grantee, exactly as ``Patient.grant`` builds it;
- audit entries are ``AuditLog.logAccesses`` calls by a fourth (filler) proxy member, each
  access carrying the grantee's real EIP-712 signature of its request, which the contract
  verifies. Their capsule hashes are random (no one audits those patients).

The sealing and the grant crypto run in a process pool; transactions are signed locally
with explicit nonces and sent in JSON-RPC batches without waiting for each receipt, then
every receipt is fetched (batched) and checked.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from coincurve import PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak

from emrshare.chain.bindings._base import _function_abi
from emrshare.chain.ids import policy_id, record_ids
from emrshare.crypto import IndexEntry, MemberPublicKeys, PatientKeys, seal_entry
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.grants import make_grant

BATCH = 50
#: A well-formed CID the filler entries name (its blob is not stored).
FILLER_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
_REQUEST_TYPEHASH = keccak(
    b"ProxyRequest(address proxy,bytes32 policyId,bytes32[] capsuleHashes,"
    b"uint256 nonce,uint256 deadline)"
)


def patient_keys(seed: bytes, i: int) -> PatientKeys:
    """The ``i``-th filler patient of ``seed`` (deterministic: a cache can be extended)."""
    return PatientKeys.generate(
        rng=lambda n: hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(n)
    )


def encode(contract: str, fn: str, args: Sequence[Any]) -> bytes:
    """Calldata through the bindings' cached selector and eth-abi (as the library does)."""
    selector, types, _ = _function_abi(contract, fn)
    return selector + abi_encode(types, list(args))


# -- work done in the process pool ---------------------------------------------------------


def seal_chunk(seed: bytes, i: int, first: int, count: int, now: int) -> list[bytes]:
    """``count`` real sealed entries of filler patient ``i`` from sequence ``first``."""
    keys = patient_keys(seed, i)
    tag = keys.tag("lab", 0)
    pub = keys.category_public_key("lab", 0)
    of = record_ids(keys.address, tag, keys.address)
    out = []
    for seq in range(first, first + count):
        entry = IndexEntry.create(
            patient=keys.address,
            record_id=of(seq),
            cid=FILLER_CID,  # type: ignore[arg-type]
            data_key=DataKey.generate(),
            plaintext_sha256=os.urandom(32),
            size=2048,
            media_type="application/octet-stream",
            category="lab",
            epoch=0,
            created_at=now,
            author_key=keys.ethereum_key,
        )
        out.append(bytes(seal_entry(entry, pub)))
    return out


def grant_chunk(
    seed: bytes,
    i: int,
    count: int,
    grantee: MemberPublicKeys,
    proxies: Sequence[MemberPublicKeys],
    expiry: int,
) -> list[tuple[bytes, bytes]]:
    """``count`` real grants of granting patient ``i``: (policy id, ``grant`` calldata)."""
    keys = patient_keys(seed, i)
    g_pub, p_pubs = grantee, list(proxies)
    out = []
    for _ in range(count):
        nonce = os.urandom(32)
        pid = policy_id(keys.address, nonce)
        g = make_grant(
            keys,
            category="lab",
            epoch=0,
            policy_id=pid,
            grantee=g_pub,
            proxies=p_pubs,
            threshold=2,
        )
        params = (
            nonce,
            g_pub.address,
            bytes(keys.tag("lab", 0)),
            expiry,
            list(g.proxies),
            2,
            [bytes(k) for k in g.sealed_kfrags],
            bytes(g.sealed_grantee_map),
            [],
        )
        out.append((bytes(pid), encode("Grants", "grant", [params])))
    return out


# -- transactions ----------------------------------------------------------------------------


@dataclass
class Sender:
    """Signs with explicit nonces and sends many transactions per JSON-RPC batch."""

    rpc_url: str
    chain_id: int
    gas_price: int
    nonces: dict[str, int] = field(default_factory=dict)
    sent: int = 0

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=120)

    def rpc(self, method: str, params: list[Any]) -> Any:
        r = self.http.post(
            self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        )
        body = r.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def batch(self, method: str, params: Sequence[list[Any]]) -> list[Any]:
        """One JSON-RPC batch per 200 calls or ~1 MB of request (anvil caps a body)."""
        out: list[Any] = []
        start = 0
        while start < len(params):
            end, size = start, 0
            while end < len(params) and end - start < 200 and size < 1_000_000:
                size += sum(len(str(x)) for x in params[end])
                end += 1
            req = [
                {"jsonrpc": "2.0", "id": j, "method": method, "params": p}
                for j, p in enumerate(params[start:end])
            ]
            body = self.http.post(self.rpc_url, json=req).json()
            if not isinstance(body, list):
                raise RuntimeError(f"{method} batch of {end - start} refused: {body}")
            for item in sorted(body, key=lambda x: x["id"]):
                if "error" in item:
                    raise RuntimeError(f"{method}: {item['error']}")
                out.append(item["result"])
            start = end
        return out

    def why(self, tx_hash: str) -> str:
        """The revert of a mined transaction, replayed with ``eth_call`` at its block."""
        tx = self.rpc("eth_getTransactionByHash", [tx_hash])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        block = hex(int(tx["blockNumber"], 16) - 1)
        body = self.http.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, block]},
        ).json()
        return str(body.get("error", body))

    def sign(self, key: bytes, to: str, data: bytes, gas: int, value: int = 0) -> bytes:
        acct = Account.from_key(key)
        if acct.address not in self.nonces:
            self.nonces[acct.address] = int(
                self.rpc("eth_getTransactionCount", [acct.address, "pending"]), 16
            )
        tx = {
            "to": to,
            "data": data,
            "gas": gas,
            "gasPrice": self.gas_price,
            "nonce": self.nonces[acct.address],
            "chainId": self.chain_id,
            "value": value,
        }
        self.nonces[acct.address] += 1
        return bytes(acct.sign_transaction(tx).raw_transaction)

    def send(self, raws: Sequence[bytes]) -> list[dict[str, Any]]:
        """Send ``raws`` (in order), then fetch and check every receipt."""
        hashes = self.batch("eth_sendRawTransaction", [["0x" + r.hex()] for r in raws])
        self.sent += len(raws)
        found: dict[str, dict[str, Any]] = {}
        pending = list(hashes)
        deadline = time.monotonic() + 300
        while pending:
            got = self.batch("eth_getTransactionReceipt", [[h] for h in pending])
            found.update({h: r for h, r in zip(pending, got, strict=True) if r is not None})
            pending = [h for h, r in zip(pending, got, strict=True) if r is None]
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(pending)} transactions not mined in 300 s")
                time.sleep(0.05)
        receipts = [found[h] for h in hashes]  # in the order sent
        bad = [r for r in receipts if int(r["status"], 16) != 1]
        if bad:
            raise RuntimeError(
                f"{len(bad)} of {len(raws)} transactions reverted; the first: "
                f"{self.why(bad[0]['transactionHash'])}"
            )
        return receipts


def request_digest(
    domain: bytes, proxy: str, pid: bytes, hashes: Sequence[bytes], nonce: int, deadline: int
) -> bytes:
    """The EIP-712 digest of a ``ProxyRequest`` (``Grants.hashProxyRequest``)."""
    struct = keccak(
        abi_encode(
            ["bytes32", "address", "bytes32", "bytes32", "uint256", "uint256"],
            [_REQUEST_TYPEHASH, proxy, pid, keccak(b"".join(hashes)), nonce, deadline],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """A 65-byte r‖s‖v signature (v = 27/28), as OpenZeppelin's ECDSA recovers it."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def accesses(
    grantee_key: PrivateKey,
    domain: bytes,
    proxy: str,
    pid: bytes,
    n: int,
    evaluated_at: int,
    evaluated_time: int,
    deadline: int,
) -> list[tuple[Any, ...]]:
    """``n`` signed accesses (``AuditLog.Access`` tuples) of one grant by ``proxy``."""
    out = []
    for _ in range(n):
        hashes = [os.urandom(32)]
        nonce = int.from_bytes(os.urandom(8), "big")
        digest = request_digest(domain, proxy, pid, hashes, nonce, deadline)
        sig = sign_digest(grantee_key, digest)
        out.append((hashes, nonce, deadline, evaluated_at, evaluated_time, sig))
    return out


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, count) pieces of ``range(total)``."""
    for start in range(0, total, size):
        yield start, min(size, total - start)
