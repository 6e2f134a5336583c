"""Reliability report (issue #10): bounded, seeded campaigns against the real consumers.

    .venv/bin/python benchmarks/reliability_report.py --seed 1            # ~14 minutes
    .venv/bin/python benchmarks/reliability_report.py --quick             # ~2.5 minutes
    .venv/bin/python benchmarks/reliability_report.py --only malformed

Each section is a function returning a dict of integer counters; the report prints one
table per section and, as its LAST line, one JSON object merging every section's
counters (integer values only), for scripts and CI to read.

Sections:

``malformed``
    Mutated capsules, kfrags, cfrags, sealed kfrags, grantee maps, writer
    authorizations, envelopes, index entries (sealed and plain), CAR files and keystores
    through their real consumers (``emrshare.crypto`` open/verify/decrypt, CAR import with
    CID verification into a fresh ``LocalStore``, keystore load), and mutated
    ``POST /v1/reencrypt`` bodies against a real proxy process on 127.0.0.1 (anvil, the
    deployed contracts, an indexed entry and an active grant). Counters:
    ``malformed_tried``, ``malformed_accepted`` (a consumer succeeded on a mutant whose
    meaning differs, or crashed), ``malformed_crashed`` (an exception outside the
    ``EmrShareError`` tree, an HTTP 5xx, a refusal of another shape or a dropped
    connection), ``malformed_excluded`` (mutants that are the same input, each with a
    stated reason) and the interleaved valid requests that had to be served.
    Goal: >= 10,000 tried, 0 accepted, 0 crashed.

``faults``, ``races``, ``privacy``, ``accountability``, ``concurrent``, ``invariants``
    The trust campaign of issue #10, one module each under ``benchmarks/_campaign/``
    (see their docstrings and docs/reliability.md). Goal counters: ``faults_injected``
    (>= 50), ``records_lost``, ``records_duplicated``, ``served_after_revoke``,
    ``replays_honoured``, ``served_unlogged``, ``logged_unserved``,
    ``forged_audit_accepted``, ``expelled_writes_accepted``, ``privacy_hits``,
    ``concurrent_wrong_plaintexts`` (0) and ``invariant_runs`` (>= 256 per invariant).
    ``--quick`` shares one anvil world between the network sections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign.accountability import accountability  # noqa: E402
from benchmarks._campaign.concurrent import concurrent  # noqa: E402
from benchmarks._campaign.faults import faults  # noqa: E402
from benchmarks._campaign.invariants import invariants  # noqa: E402
from benchmarks._campaign.privacy import privacy  # noqa: E402
from benchmarks._campaign.races import races  # noqa: E402
from benchmarks._campaign.world import shared_world  # noqa: E402
from tests.integration.proxy.rawhttp import ConnectionLost, KeepAlive  # noqa: E402
from tests.unit.fuzz.bodies import body_edits, judge, mutant_at  # noqa: E402
from tests.unit.fuzz.families import Counts, build, run_family  # noqa: E402

PATH = "/v1/reencrypt"


@dataclass(frozen=True, slots=True)
class Options:
    seed: int
    quick: bool
    network: bool


# -- malformed inputs ------------------------------------------------------------------

#: Mutants per offline family and proxy bodies, full run and --quick.
FAMILY_COUNT = (1000, 20)
BODY_COUNT = (4000, 60)
#: A valid request is sent after every this many body mutants and must be served.
VALID_EVERY = 25


def malformed(opts: Options) -> tuple[dict[str, int], list[list[str]], list[str]]:
    """The malformed-input campaign: (counters, table rows, notes)."""
    per_family = FAMILY_COUNT[1] if opts.quick else FAMILY_COUNT[0]
    rows: list[list[str]] = []
    total = Counts()
    counters: dict[str, int] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emrshare-reliability-") as tmp:
        for family in build(opts.seed, Path(tmp)):
            t0 = time.perf_counter()
            counts = run_family(family, random.Random(f"{opts.seed}-{family.name}"), per_family)
            rows.append(_row(family.name, counts, time.perf_counter() - t0))
            _family_counters(counters, family.name, counts)
            total.add(counts)
        if opts.network:
            t0 = time.perf_counter()
            counts, valid = _proxy_bodies(opts, Path(tmp))
            rows.append(_row("proxy-body (HTTP)", counts, time.perf_counter() - t0))
            _family_counters(counters, "proxy_body", counts)
            counters.update(valid)
            total.add(counts)
    rows.append(_row("total", total, time.perf_counter() - started))
    counters.update(
        malformed_tried=total.tried,
        malformed_rejected=total.rejected,
        malformed_accepted=total.accepted,
        malformed_crashed=total.crashed,
        malformed_excluded=sum(total.excluded.values()),
        malformed_seconds=round(time.perf_counter() - started),
    )
    notes = [f"excluded {n}: {reason}" for reason, n in sorted(total.excluded.items())]
    notes += [f"FINDING {f}" for f in total.findings[:50]]
    return counters, rows, notes


def _row(name: str, c: Counts, seconds: float) -> list[str]:
    return [
        name,
        str(c.tried),
        str(c.rejected),
        str(c.accepted),
        str(c.crashed),
        str(sum(c.excluded.values())),
        f"{seconds:.1f}",
    ]


def _family_counters(out: dict[str, int], name: str, c: Counts) -> None:
    key = name.replace("-", "_")
    out[f"malformed_{key}_tried"] = c.tried
    out[f"malformed_{key}_accepted"] = c.accepted
    out[f"malformed_{key}_crashed"] = c.crashed


def _proxy_bodies(opts: Options, tmp: Path) -> tuple[Counts, dict[str, int]]:
    """Mutated request bodies against one real proxy process, over keep-alive sockets."""
    from tests.integration.proxy.support import ROLE_PROVIDER, ROLE_PROXY, Consortium, make_proxy

    from emrshare.crypto.keys import MemberKeys, PatientKeys
    from emrshare.devnet import DevNode, dev_private_keys
    from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash

    count = BODY_COUNT[1] if opts.quick else BODY_COUNT[0]
    rng = random.Random(f"{opts.seed}-proxy-body")
    node = DevNode.start("anvil", log_dir=tmp)
    proxy = None
    try:
        keys = dev_private_keys(6)
        chain = Consortium.on(node, keys[0])
        patient = PatientKeys(secrets.token_bytes(32), ethereum_key=keys[1])
        grantee = MemberKeys.generate(ethereum_key=keys[2])
        chain.register_patient(patient)
        chain.admit(grantee, ROLE_PROVIDER)
        member = MemberKeys.generate(ethereum_key=keys[4])
        proxy = make_proxy(tmp / "proxy", member, node, chain.deployment)
        chain.admit(member, ROLE_PROXY, proxy.url)
        proxy.start()
        (sealed,) = chain.append(patient, "lab-results", 0)
        grant = chain.grant(
            patient, "lab-results", 0, grantee, [member], 1, chain.chain_time() + 10**7
        )
        proxy.wait_cursor(chain.w3.eth.block_number)
        chain_id = chain.deployment.chain_id
        capsule = sealed.capsule_bytes
        deadline = chain.chain_time() + 10**6

        def signed() -> dict[str, Any]:
            req = ReencryptRequest.new(
                member.address,
                bytes(grant.binding.policy_id),
                [capsule_hash(capsule)],
                deadline,
            )
            return SignedRequest(
                req,
                chain_id,
                chain.grants_address,  # type: ignore[arg-type]
                req.sign(grantee.ethereum_key, chain_id, chain.grants_address),
                (capsule,),
            ).to_json()

        counts = Counts()
        valid = {"malformed_valid_served": 0, "malformed_valid_failed": 0}
        edits = body_edits(signed())
        conn = KeepAlive(proxy.url)
        try:
            for i in range(count):
                original = signed()
                mutant = mutant_at(rng, edits, original, i)
                if mutant is None:
                    counts.exclude("proxy body: the edit cannot be written as JSON text")
                    continue
                try:
                    status: int | None
                    status, answer = conn.post(PATH, mutant.body, mutant.content_type)
                except ConnectionLost:
                    status, answer = None, b""
                    conn.close()
                    conn = KeepAlive(proxy.url)
                _tally(counts, *judge(original, mutant, status, answer), mutant.label)
                if i % VALID_EVERY == VALID_EVERY - 1:
                    ok = _post_valid(conn, signed())
                    valid["malformed_valid_served" if ok else "malformed_valid_failed"] += 1
                    if not ok:
                        conn.close()
                        conn = KeepAlive(proxy.url)
        finally:
            conn.close()
        if not proxy.running:
            counts.crashed += 1
            counts.accepted += 1
            counts.findings.append("proxy-body: the proxy process died")
        return counts, valid
    finally:
        if proxy is not None:
            proxy.stop()
        node.stop()


def _tally(counts: Counts, verdict: str, why: str, label: str) -> None:
    if verdict == "excluded":
        counts.exclude(why)
        return
    counts.tried += 1
    if verdict == "rejected":
        counts.rejected += 1
        return
    counts.accepted += 1
    if verdict == "crashed":
        counts.crashed += 1
    counts.findings.append(f"proxy-body {label}: {verdict}: {why}")


def _post_valid(conn: KeepAlive, body: dict[str, Any]) -> bool:
    try:
        status, answer = conn.post(PATH, json.dumps(body).encode())
    except ConnectionLost:
        return False
    return status == 200 and len(json.loads(answer)["cfrags"]) == 1


# -- report ----------------------------------------------------------------------------


def _network(section: Section) -> Section:
    """A section that needs node and proxy processes: empty under ``--no-network``."""

    def run(opts: Options) -> tuple[dict[str, int], list[list[str]], list[str]]:
        if not opts.network:
            return {}, [], ["skipped: --no-network"]
        return section(opts)

    run.__name__ = section.__name__
    return run


Section = Callable[[Options], tuple[dict[str, int], list[list[str]], list[str]]]
#: Section name -> (function, table header).
SECTIONS: dict[str, tuple[Section, list[str]]] = {
    "malformed": (
        malformed,
        ["family", "tried", "rejected", "accepted", "crashed", "excluded", "seconds"],
    ),
    "faults": (_network(faults), ["fault", "injected", "lost", "duplicated"]),
    "races": (
        _network(races),
        [
            "node: order",
            "trials",
            "served before",
            "logged",
            "same block",
            "log first",
            "served after revoke",
        ],
    ),
    "privacy": (_network(privacy), ["check", "tried", "hits"]),
    "accountability": (_network(accountability), ["check", "tried", "honoured / accepted"]),
    "concurrent": (
        _network(concurrent),
        [
            "readers",
            "reads",
            "ok",
            "wrong",
            "failed",
            "proxy restarts",
            "p50 ms",
            "p99 ms",
            "seconds",
        ],
    ),
    "invariants": (invariants, ["invariant", "runs", "calls", "reverts"]),
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="seeds every mutation")
    parser.add_argument("--quick", action="store_true", help="small counts (for tests)")
    parser.add_argument("--only", choices=sorted(SECTIONS), help="run one section")
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="skip what needs anvil and proxy processes (the unit suite uses this)",
    )
    args = parser.parse_args(argv)
    opts = Options(args.seed, args.quick, not args.no_network)
    result: dict[str, int] = {"seed": args.seed}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.quick and opts.network and args.only not in ("malformed", "invariants"):
            stack.enter_context(shared_world())  # one world for every section
        _run_sections(args, opts, result)
    result["campaign_seconds"] = round(time.perf_counter() - started)
    assert all(isinstance(v, int) for v in result.values())
    print(json.dumps(result, sort_keys=True))
    return result


def _run_sections(args: argparse.Namespace, opts: Options, result: dict[str, int]) -> None:
    for name, (section, header) in SECTIONS.items():
        if args.only and name != args.only:
            continue
        counters, rows, notes = section(opts)
        print(f"## {name} (seed {args.seed}{', quick' if args.quick else ''})")
        print(_table(header, rows))
        for note in notes:
            print(note)
        print()
        result.update(counters)


if __name__ == "__main__":
    main()
