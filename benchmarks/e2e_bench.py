"""End-to-end figures on a real devnet: anvil, LocalStore, three proxy processes (2-of-3).

Prints:
- add one 10 KB record end to end (encrypt, store, seal, append, confirmed): p50, p90;
- read one record through 2-of-3 proxies (fully verified): p50, p90;
- bulk add of 2 KB records (batched appends): records/s.

    python benchmarks/e2e_bench.py [--adds 50] [--reads 50] [--bulk 10000]

Each figure is printed next to a floor measured in the same run on the same devnet, and
their ratio (issue #19: absolute times on a shared machine move by 30 % between runs):

- add: a LocalStore put of the same ciphertext + the crypto (envelope, entry, seal) + one
  minimal signed transaction mined on the same anvil; goal ratio ≤ 2.0;
- read: two trivial HTTP round trips to two of the proxies (``GET /healthz``) + one
  ``eth_call`` + a LocalStore get + the crypto (two re-encryptions, cfrag checks,
  ``decrypt_reencrypted``, envelope); goal ratio ≤ 2.0;
- bulk: the rate at which the same anvil accepts pre-built, pre-signed ``appendBatch``
  transactions of entries of the real sealed size alone; goal ≥ 1,000 rec/s and ratio ≥ 0.30.

The last line is one JSON object: ``{"add_p50_ms", "add_ratio", "read_p50_ms",
"read_ratio", "bulk_rec_per_s", "bulk_ratio", …}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from datetime import timedelta

import httpx
import umbral_pre
from _actors import devnet_actors
from eth_account import Account
from web3 import Web3

from emrshare.chain.artifacts import load_artifact
from emrshare.crypto import IndexEntry, PatientKeys, seal_entry
from emrshare.crypto.entry import COMPACT_ENTRY_SIZE
from emrshare.crypto.envelope import DataKey, decrypt_bytes, encrypt_bytes
from emrshare.devnet import dev_private_keys
from emrshare.network import Network
from emrshare.types import Cid


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mined(w3: Web3, raw: bytes) -> None:
    """Send one signed transaction and wait for its receipt (polling from 2 ms, as the
    library's client does)."""
    tx_hash = w3.eth.send_raw_transaction(raw)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.002)


class Floors:
    """The floors of issue #19, measured on the devnet the operations run on.

    The floor account is the devnet's last funded development account, which no profile
    uses; it appends only to its own index (a patient may always write its own).
    """

    def __init__(self, net: Network, key: bytes) -> None:
        self.net = net
        self.w3 = net.w3
        self.account = Account.from_key(key)
        self.index = self.w3.eth.contract(
            address=net.deployment.addresses["RecordIndex"],
            abi=load_artifact("RecordIndex").abi,
        )
        self.nonce = self.w3.eth.get_transaction_count(self.account.address)
        self.chain_id = self.w3.eth.chain_id
        self.gas_price = self.w3.eth.gas_price

    def _signed(self, tx: dict[str, object]) -> bytes:
        tx.update(nonce=self.nonce, chainId=self.chain_id, gasPrice=self.gas_price)
        self.nonce += 1
        return bytes(self.account.sign_transaction(tx).raw_transaction)

    def minimal_tx_ms(self) -> float:
        """One minimal signed transaction (0-value transfer to itself), mined."""
        raw = self._signed({"to": self.account.address, "value": 0, "gas": 21_000})
        t0 = time.perf_counter()
        mined(self.w3, raw)
        return (time.perf_counter() - t0) * 1000

    def add_crypto_ms(self, content: bytes, keys: PatientKeys) -> tuple[float, bytes, int]:
        """Envelope, entry (signed) and seal of one record, with no chain or store: the
        time, the ciphertext and the sealed entry's size (the entry size on chain)."""
        t0 = time.perf_counter()
        key = DataKey.generate()
        rid = os.urandom(32)
        ct = encrypt_bytes(content, key, rid)
        entry = IndexEntry.create(
            patient=keys.address,
            record_id=rid,
            cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
            data_key=key,
            plaintext_sha256=hashlib.sha256(content).digest(),
            size=len(content),
            media_type="application/octet-stream",
            category="lab-results",
            epoch=0,
            created_at=int(time.time()),
            author_key=self.account.key,
        )
        sealed = seal_entry(entry, keys.category_public_key("lab-results", 0))
        return (time.perf_counter() - t0) * 1000, ct, len(bytes(sealed))

    def put_ms(self, data: bytes) -> float:
        t0 = time.perf_counter()
        self.net.store.put(data)
        return (time.perf_counter() - t0) * 1000

    def read_ms(self, urls: list[str], http: httpx.Client, umbral: Umbral, cid: Cid) -> float:
        """Two trivial proxy round trips, one eth_call, a store get (of ``umbral.envelope``,
        stored as ``cid``) and the read's crypto."""
        t0 = time.perf_counter()
        for url in urls[:2]:
            http.get(url.rstrip("/") + "/healthz").raise_for_status()
        self.index.functions.chainOf(self.account.address).call()
        data = b"".join(self.net.store.get(cid))
        umbral.open()
        decrypt_bytes(data, umbral.data_key, umbral.record_id)
        return (time.perf_counter() - t0) * 1000

    def batch_rate(self, n_batches: int, batch: int, entry_size: int) -> float:
        """Records/s at which anvil accepts pre-built appendBatch transactions alone."""
        tag = os.urandom(32)
        me = self.account.address
        raws = []
        for i in range(n_batches):
            entries = [os.urandom(entry_size) for _ in range(batch)]
            fn = self.index.functions.appendBatch(me, tag, i * batch, entries)
            raws.append(
                self._signed(
                    fn.build_transaction({"gas": 3_000_000, "from": me, "nonce": 0, "gasPrice": 0})
                )
            )
        t0 = time.perf_counter()
        hashes = [self.w3.eth.send_raw_transaction(r) for r in raws]
        for h in hashes:
            self.w3.eth.wait_for_transaction_receipt(h, timeout=120, poll_latency=0.002)
        return n_batches * batch / (time.perf_counter() - t0)


class Umbral:
    """The crypto of one 2-of-3 read alone: two re-encryptions, their checks, the open."""

    def __init__(self, content: bytes) -> None:
        self.delegating = umbral_pre.SecretKey.random()
        self.receiving = umbral_pre.SecretKey.random()
        signer = umbral_pre.Signer(umbral_pre.SecretKey.random())
        self.verifying = signer.verifying_key()
        self.kfrags = umbral_pre.generate_kfrags(
            self.delegating, self.receiving.public_key(), signer, 2, 3, True, True
        )
        self.data_key = DataKey.generate()
        self.record_id = os.urandom(32)
        self.envelope = encrypt_bytes(content, self.data_key, self.record_id)
        self.capsule, self.ciphertext = umbral_pre.encrypt(
            self.delegating.public_key(), os.urandom(COMPACT_ENTRY_SIZE)
        )

    def open(self) -> None:
        pk, rk = self.delegating.public_key(), self.receiving.public_key()
        cfrags = [
            umbral_pre.CapsuleFrag.from_bytes(bytes(umbral_pre.reencrypt(self.capsule, k))).verify(
                self.capsule, self.verifying, pk, rk
            )
            for k in self.kfrags[:2]
        ]
        umbral_pre.decrypt_reencrypted(self.receiving, pk, self.capsule, cfrags, self.ciphertext)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adds", type=int, default=50)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()

    with devnet_actors("emrshare-e2e-") as world:
        net, a, b, patient, p_keys = world.net, world.a, world.b, world.patient, world.patient_keys
        floors = Floors(net, dev_private_keys(12)[11])
        known = {a.address, b.address, patient.address} | {m.account for m in net.proxies()}
        assert floors.account.address not in known, "the floor account is in use"

        # Each operation is timed right after one sample of its floor, alternately: the
        # load of a shared machine moves both alike, and the ratio compares like with like.
        # 1. single adds of 10 KB, next to a minimal mined transaction, the crypto and a put
        a.add_record(patient.address, "lab", os.urandom(10_240))  # warm-up
        tx_ms: list[float] = []
        crypto_ms: list[float] = []
        put_ms: list[float] = []
        add_ms: list[float] = []
        ids = []
        entry_size = 0
        for _ in range(args.adds):
            tx_ms.append(floors.minimal_tx_ms())
            ms, ct, entry_size = floors.add_crypto_ms(os.urandom(10_240), p_keys)
            crypto_ms.append(ms)
            put_ms.append(floors.put_ms(ct))
            content = os.urandom(10_240)
            t0 = time.perf_counter()
            ids.append(a.add_record(patient.address, "lab", content))
            add_ms.append((time.perf_counter() - t0) * 1000)
        add_floor = statistics.median(tx_ms) + statistics.median(crypto_ms)
        add_floor += statistics.median(put_ms)

        # 2. reads through the proxies, next to two trivial proxy round trips, an eth_call,
        # a store get and the read's crypto
        patient.grant(b.address, "lab", expires=timedelta(days=1))
        b.read(patient.address, ids[0])  # warm-up (grant reaches the proxies)
        urls = [m.endpoint for m in net.proxies()]
        umbral = Umbral(os.urandom(10_240))
        cid = net.store.put(umbral.envelope)
        floor_ms: list[float] = []
        read_ms: list[float] = []
        with httpx.Client() as http:
            for i in range(args.reads):
                floor_ms.append(floors.read_ms(urls, http, umbral, cid))
                t0 = time.perf_counter()
                b.read(patient.address, ids[i % len(ids)])
                read_ms.append((time.perf_counter() - t0) * 1000)
        read_floor = statistics.median(floor_ms)

        # the bulk floor: pre-built appendBatch transactions of the real entry size alone
        n_batches = max(1, min(args.bulk // args.batch, 40))
        bulk_floor = floors.batch_rate(n_batches, args.batch, entry_size)

        # 3. bulk add
        contents = [os.urandom(2048) for _ in range(args.bulk)]
        t0 = time.perf_counter()
        bulk_ids = a.add_records(patient.address, "bulk", contents, batch_size=args.batch)
        bulk_s = time.perf_counter() - t0
        assert len(bulk_ids) == args.bulk
        rate = args.bulk / bulk_s

        print()
        # The figures swing with the machine's load (a shared 2-core VM: anvil, three
        # proxies and this process compete for it); print it next to them.
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load}; cores: {os.cpu_count()}")
        add_p50, read_p50 = statistics.median(add_ms), statistics.median(read_ms)
        print(
            f"floors: add {add_floor:.1f} ms (minimal tx {statistics.median(tx_ms):.1f} + "
            f"crypto {statistics.median(crypto_ms):.1f} + "
            f"store put {statistics.median(put_ms):.1f});"
            f" read {read_floor:.1f} ms; pre-built appendBatch of {args.batch} x {entry_size} B "
            f"alone {bulk_floor:.0f} rec/s"
        )
        print(f"{'measure':<44} {'p50':>9} {'p90':>9} {'floor':>9} {'ratio':>7} {'goal':>14}")
        print(
            f"{'add one 10 KB record, end to end (ms)':<44} {add_p50:>9.1f} "
            f"{pct(add_ms, 0.9):>9.1f} {add_floor:>9.1f} {add_p50 / add_floor:>7.2f} "
            f"{'ratio <= 2.0':>14}"
        )
        print(
            f"{'read one record via 2-of-3 proxies (ms)':<44} {read_p50:>9.1f} "
            f"{pct(read_ms, 0.9):>9.1f} {read_floor:>9.1f} {read_p50 / read_floor:>7.2f} "
            f"{'ratio <= 2.0':>14}"
        )
        print(
            f"{f'bulk add {args.bulk} x 2 KB, batches of {args.batch} (rec/s)':<44} "
            f"{rate:>9.0f} {'':>9} {bulk_floor:>9.0f} {rate / bulk_floor:>7.2f} "
            f"{'>=1000, >=0.30':>14}"
        )
        result = {
            "benchmark": "e2e_bench",
            "add_p50_ms": round(add_p50, 2),
            "add_floor_ms": round(add_floor, 2),
            "add_ratio": round(add_p50 / add_floor, 3),
            "read_p50_ms": round(read_p50, 2),
            "read_floor_ms": round(read_floor, 2),
            "read_ratio": round(read_p50 / read_floor, 3),
            "bulk_rec_per_s": round(rate, 1),
            "bulk_floor_rec_per_s": round(bulk_floor, 1),
            "bulk_ratio": round(rate / bulk_floor, 3),
            "entry_bytes": entry_size,
            "load_average": os.getloadavg()[0],
        }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
