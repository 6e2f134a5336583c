"""Drug traceability at scale (issue 17): events written to a real chain, and the
regulator's two-invoice audit and dispense trace on 10,000 and 100,000 dispenses.

    python benchmarks/trace_bench.py [--dispenses 100000] [--chain-dispenses 400] [--seed 17]

Two parts, each against a floor measured in the same run:

- **Written**: on its own anvil, a manufacturer registers batches, ships to a
  distributor who ships to two pharmacies, all confirm, and the pharmacies dispense
  ``--chain-dispenses`` times (one transaction per dispense: the contract has no batch
  dispense, as each names its own patient link). Events/s is every DrugTrace event mined
  per second of wall time, against the floor of plain value transfers sent the same way
  (the node's and the client's own per-transaction cost). Then ``batch_trace`` of the
  busiest batch, read back from the chain.
- **Audited**: a simulated consortium of 3 manufacturers, 5 distributors and 20 hospitals,
  1,000 batches, and ``--dispenses / 10`` then ``--dispenses`` dispenses (10k and 100k by
  default), as the chain's own event classes; a seeded 1 % of hospital receipts come
  through a second distributor (a hidden third invoice) and 1 % arrive short. The full
  two-invoice check (``two_invoice_check``) and a dispense trace (``trace_dispenses`` of
  one patient link) on each, against the floor of one pass that only sorts the same
  events into chain order. The check must find every planted violation, and its time
  should grow no faster than the events (a ratio of about 10 from 10k to 100k).

The last line is one JSON object:
``{"events_per_s", "audit_s_10k", "audit_s_100k", "trace_ms", …}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from web3 import Web3

from emrshare.chain import (
    NO_UNIT,
    Action,
    BatchRegistered,
    ChainClient,
    Contracts,
    Dispensed,
    ProposalCreated,
    Received,
    Role,
    Shipped,
    batch_id_of,
    deploy_contracts,
    link_of,
)
from emrshare.devnet import dev_private_keys, running_node
from emrshare.roles import batch_trace
from emrshare.trace import Ledger, gtin14, trace_dispenses, two_invoice_check

GTIN = gtin14("09506000134352")
BATCHES = 1_000
MANUFACTURERS, DISTRIBUTORS, HOSPITALS = 3, 5, 20


def _addr(kind: str, i: int) -> str:
    return Web3.to_checksum_address(Web3.keccak(text=f"{kind}{i}")[-20:])


@dataclass
class Sim:
    """A simulated consortium's DrugTrace events, in chain order (one log per block)."""

    rng: random.Random
    block: int = 0
    batches: list[BatchRegistered] = field(default_factory=list)
    shipped: list[Shipped] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    dispensed: list[Dispensed] = field(default_factory=list)
    planted_third: set[bytes] = field(default_factory=set)
    planted_short: set[bytes] = field(default_factory=set)
    links: list[bytes] = field(default_factory=list)

    def _at(self) -> tuple[int, bytes, int]:
        self.block += 1
        return (self.block, b"", 0)

    def ship(self, src: str, dst: str, batch: bytes, qty: int, short: int = 0) -> bytes:
        sid = self.rng.randbytes(32)
        self.shipped.append(
            Shipped(
                *self._at(),
                sid,
                batch,
                src,
                dst,
                qty,
                self.rng.randbytes(32),
                self.rng.randbytes(32),
            )
        )
        self.received.append(Received(*self._at(), sid, batch, dst, qty - short, short))
        return sid

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.batches, self.shipped, self.received, (), self.dispensed)

    @property
    def events(self) -> int:
        return len(self.ledger)


def simulate(dispenses: int, seed: int) -> Sim:
    """1,000 batches, each from one manufacturer through one distributor to hospitals; a
    seeded 1 % of hospital receipts via a second distributor, 1 % short."""
    sim = Sim(random.Random(seed))
    per_batch = max(1, dispenses // BATCHES)
    hospitals = [_addr("hospital", i) for i in range(HOSPITALS)]
    for b in range(BATCHES):
        maker = _addr("maker", b % MANUFACTURERS)
        dist = _addr("dist", b % DISTRIBUTORS)
        bid = batch_id_of(GTIN, f"L{b:05d}")
        qty = per_batch * 3 + 50
        sim.batches.append(
            BatchRegistered(
                *sim._at(),
                bid,
                maker,
                GTIN,
                f"L{b:05d}",
                0,
                qty,
                "pack",
                b"c" * 32,
                bytes(32),
                0,
                b,
            )
        )
        sim.ship(maker, dist, bid, qty)
        # The batch's dispenses, from hospitals the distributor supplied 5 at a time.
        left = per_batch
        while left:
            n = min(left, 5)
            left -= n
            hosp = hospitals[sim.rng.randrange(HOSPITALS)]
            roll = sim.rng.random()
            if roll < 0.01:  # a hidden intermediary: a second distributor's invoice
                other = _addr("dist", (b + 1) % DISTRIBUTORS)
                sim.ship(dist, other, bid, n * 2)
                sim.planted_third.add(sim.ship(other, hosp, bid, n * 2))
            elif roll < 0.02:
                sim.planted_short.add(sim.ship(dist, hosp, bid, n * 2, short=1))
            else:
                sim.ship(dist, hosp, bid, n * 2)
            for _ in range(n):
                link = link_of(sim.rng.randbytes(32))
                sim.links.append(link)
                sim.dispensed.append(Dispensed(*sim._at(), bid, hosp, link, 1, NO_UNIT, bytes(32)))
    return sim


def best_of(rounds: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def floor_pass(ledger: Ledger) -> int:
    """The least any audit must do: put every event in chain order."""
    tagged = [
        (e.block_number, e.log_index, k)
        for k, events in enumerate(
            (ledger.batches, ledger.shipped, ledger.received, ledger.cancelled, ledger.dispensed)
        )
        for e in events
    ]
    tagged.sort()
    return len(tagged)


def audit_figures(dispenses: int, seed: int, rounds: int) -> dict[str, Any]:
    sim = simulate(dispenses, seed)
    hospitals = [_addr("hospital", i) for i in range(HOSPITALS)]
    floor_s, _ = best_of(rounds, lambda: floor_pass(sim.ledger))
    audit_s, report = best_of(rounds, lambda: two_invoice_check(sim.ledger, hospitals))
    found_third = {f.shipment_id for f in report.flagged if "extra_intermediary" in f.reasons}
    found_short = {f.shipment_id for f in report.flagged if "quantity_mismatch" in f.reasons}
    wrongly = [
        f.shipment_id
        for f in report.flagged
        if f.shipment_id not in sim.planted_third | sim.planted_short
    ]
    target = sim.links[len(sim.links) // 2]
    trace_s, traced = best_of(rounds, lambda: trace_dispenses(sim.ledger, links=[target]))
    assert len(traced) == 1 and traced[0].chains[0].legs, "the traced dispense has no route"
    return {
        "dispenses": len(sim.dispensed),
        "events": sim.events,
        "receipts": len(report.findings),
        "floor_s": floor_s,
        "audit_s": audit_s,
        "trace_s": trace_s,
        "planted": len(sim.planted_third) + len(sim.planted_short),
        "found": len(found_third & sim.planted_third) + len(found_short & sim.planted_short),
        "false_flags": len(wrongly),
    }


def chain_figures(dispenses: int) -> dict[str, Any]:
    keys = dev_private_keys(6)
    with running_node("anvil") as node:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
        dep = deploy_contracts(w3, keys[0])
        base = Contracts.from_deployment(ChainClient(w3, keys[0]), dep)
        maker, dist, ph1, ph2 = (base.with_client(ChainClient(w3, k)) for k in keys[1:5])
        for who, role in (
            (maker, Role.MANUFACTURER),
            (dist, Role.DISTRIBUTOR),
            (ph1, Role.PHARMACY),
            (ph2, Role.PHARMACY),
        ):
            who.registry.apply(os.urandom(33), os.urandom(32), "")
            r = base.registry.propose(Action.ADMIT, str(who.registry.client.address), role)
            base.registry.execute(r.event(ProposalCreated).proposal_id)

        # The floor: plain value transfers through the same client, one receipt each.
        sender = ChainClient(w3, keys[5])
        to = Account.create().address
        transfers = max(50, dispenses // 4)
        t0 = time.perf_counter()
        for _ in range(transfers):
            sender.send(to, value=1)
        floor_tx_s = transfers / (time.perf_counter() - t0)

        events = 0
        t0 = time.perf_counter()
        until = int(time.time()) + 365 * 86_400
        batches = []
        for b in range(4):
            maker.drug_trace.register_batch(GTIN, f"B{b}", until, 10 * dispenses, "pack", b"c" * 32)
            batches.append(batch_id_of(GTIN, f"B{b}"))
            events += 1
        pharmacies = (ph1, ph2)
        for bid in batches:
            for src, dst, qty in [(maker, dist, 4 * dispenses)] + [
                (dist, p, dispenses) for p in pharmacies
            ]:
                r = src.drug_trace.ship(
                    str(dst.drug_trace.client.address), bid, qty, os.urandom(32), os.urandom(32)
                )
                dst.drug_trace.confirm_receipt(bytes(r.event(Shipped).shipment_id), qty)
                events += 2
        for i in range(dispenses):
            pharmacies[i % 2].drug_trace.dispense(batches[0], 1, link_of(os.urandom(32)))
            events += 1
        written_s = time.perf_counter() - t0
        trace_s, bt = best_of(3, lambda: batch_trace(base.drug_trace, batches[0]))
        assert bt.dispensed == dispenses
        return {
            "events": events,
            "events_per_s": events / written_s,
            "floor_tx_per_s": floor_tx_s,
            "chain_trace_ms": 1000 * trace_s,
            "chain_trace_events": 1 + 6 + dispenses,
            "node": node.kind,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispenses", type=int, default=100_000)
    parser.add_argument("--chain-dispenses", type=int, default=400)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    chain = chain_figures(args.chain_dispenses)
    print(
        f"written on {chain['node']}: {chain['events']} DrugTrace events at "
        f"{chain['events_per_s']:.0f} events/s; floor (value transfers, same client) "
        f"{chain['floor_tx_per_s']:.0f} tx/s; ratio "
        f"{chain['events_per_s'] / chain['floor_tx_per_s']:.2f}"
    )
    print(
        f"batch_trace of a batch with {chain['chain_trace_events']} events, read from the "
        f"chain: {chain['chain_trace_ms']:.1f} ms"
    )
    small = audit_figures(args.dispenses // 10, args.seed, args.rounds)
    large = audit_figures(args.dispenses, args.seed, args.rounds)
    print()
    print(
        f"| {'dispenses':>9} | {'events':>8} | {'receipts':>8} | {'floor s':>8} | "
        f"{'audit s':>8} | {'ratio':>6} | {'trace ms':>8} | {'found':>7} | false |"
    )
    print("|" + "|".join("-" * w for w in (11, 10, 10, 10, 10, 8, 10, 9, 7)) + "|")
    for f in (small, large):
        print(
            f"| {f['dispenses']:>9,} | {f['events']:>8,} | {f['receipts']:>8,} | "
            f"{f['floor_s']:>8.3f} | {f['audit_s']:>8.3f} | {f['audit_s'] / f['floor_s']:>6.1f} | "
            f"{1000 * f['trace_s']:>8.1f} | {f['found']:>3}/{f['planted']:<3} | "
            f"{f['false_flags']:>5} |"
        )
    events_growth = large["events"] / small["events"]
    audit_growth = large["audit_s"] / small["audit_s"]
    floor_growth = large["floor_s"] / small["floor_s"]
    print()
    print(
        f"from {small['dispenses']:,} to {large['dispenses']:,} dispenses the events grow "
        f"{events_growth:.1f}x, the floor (a sort) {floor_growth:.1f}x and the audit "
        f"{audit_growth:.1f}x: "
        + (
            "no faster than linear (within 25 %)"
            if audit_growth <= 1.25 * events_growth
            else "FASTER THAN LINEAR"
        )
    )
    missed = any(f["found"] != f["planted"] or f["false_flags"] for f in (small, large))
    if missed:
        print("the audit missed a planted violation or flagged a clean receipt")
    print(
        json.dumps(
            {
                "benchmark": "trace_bench",
                "events_per_s": round(chain["events_per_s"], 1),
                "floor_tx_per_s": round(chain["floor_tx_per_s"], 1),
                "audit_s_10k": round(small["audit_s"], 4),
                "audit_s_100k": round(large["audit_s"], 4),
                "audit_floor_s_100k": round(large["floor_s"], 4),
                "audit_growth": round(audit_growth, 2),
                "floor_growth": round(floor_growth, 2),
                "events_growth": round(events_growth, 2),
                "trace_ms": round(1000 * large["trace_s"], 2),
                "chain_trace_ms": round(chain["chain_trace_ms"], 2),
                "planted_found": [small["found"], large["found"]],
                "planted": [small["planted"], large["planted"]],
            },
            sort_keys=True,
        )
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
