"""Sections ``replays`` and ``audit``: what real proxies and the AuditLog accept.

``replays``: replayed, forged, expired and foreign requests (other chain id, other
contract, other proxy, other grantee, the same nonce re-signed, after revocation) posted
to real proxy processes. A request is *honoured* when a proxy serves it (HTTP 200), or,
for an identical repeat, when the repeat adds a second journal row or on-chain entry.

``audit``: every serve against every ``AccessLogged`` entry (by proxy and nonce, from
the client's side and from the proxies' ``served_cfrags``); made-up audit entries sent
by a proxy key straight to ``AuditLog`` (accepted by the chain, shown by
``Patient.audit()``); appends by a removed and by a suspended provider.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta
from typing import Any

from emrshare.chain import AccessEntry, AccessLogged, Action, ChainClient, Contracts, Role
from emrshare.crypto import MemberKeys
from emrshare.errors import ContractRevert, EmrShareError

from .requests import capsules_of, signed_body
from .world import World, section_world

Result = tuple[dict[str, int], list[list[str]], list[str]]
ROUNDS = (8, 1)


def _journal_rows(proxy: Any, nonce: int) -> int:
    return int(proxy.query(f"SELECT count(*) FROM journal WHERE nonce = '{nonce}'")[0][0])


def _logged(w: World, policy_id: bytes) -> list[AccessLogged]:
    return [
        ev
        for ev in w.net.contracts.audit.events(AccessLogged)
        if bytes(ev.policy_id) == bytes(policy_id)
    ]


def accountability(opts: Any) -> Result:
    """Sections ``replays`` and ``audit`` on one world: (counters, rows, notes)."""
    rounds = ROUNDS[1] if opts.quick else ROUNDS[0]
    with section_world("emrshare-accountability-") as w:
        c1, r1, n1 = _replays(w, rounds)
        c2, r2, n2 = _audit(w, rounds)
    return c1 | c2, r1 + r2, n1 + n2


def _replays(w: World, rounds: int) -> Result:
    patient, _record, _ = w.patient_with_record("replays")
    (grant,) = patient.grants()
    pid = bytes(grant.policy_id)
    (capsule,) = capsules_of(w, patient.address)
    p0, p1 = w.proxies[0], w.proxies[1]
    ikey = w.insurer.keys.ethereum_key
    stranger = MemberKeys.generate().ethereum_key
    tried: dict[str, int] = {}
    honoured: dict[str, int] = {}
    served: list[tuple[str, int]] = []
    first_bodies: list[dict[str, Any]] = []

    def attempt(kind: str, proxy: Any, body: dict[str, Any], nonce: int | None = None) -> None:
        tried[kind] = tried.get(kind, 0) + 1
        before = _journal_rows(proxy, nonce) if nonce is not None else 0
        status = proxy.post(body).status_code
        bad = status == 200
        if nonce is not None:  # an identical repeat may be answered, never journaled twice
            bad = _journal_rows(proxy, nonce) > max(before, 1)
        honoured[kind] = honoured.get(kind, 0) + int(bad)

    for _ in range(rounds):
        now = w.net.chain_time()
        body, req = signed_body(w, proxy=p0.keys.address, policy_id=pid, capsule=capsule, key=ikey)
        if p0.post(body).status_code == 200:
            served.append((p0.keys.address, req.nonce))
            first_bodies.append(body)
        attempt("replay-identical", p0, body, req.nonce)
        again, _ = signed_body(
            w, proxy=p0.keys.address, policy_id=pid, capsule=capsule, key=ikey,
            nonce=req.nonce, deadline=now + 900,
        )  # fmt: skip
        attempt("replay-nonce-resigned", p0, again)
        kw: dict[str, Any] = {"policy_id": pid, "capsule": capsule}
        attempt("forged-signer", p0, signed_body(w, proxy=p0.keys.address, key=stranger, **kw)[0])
        attempt(
            "expired",
            p0,
            signed_body(w, proxy=p0.keys.address, key=ikey, deadline=now - 5, **kw)[0],
        )
        attempt(
            "foreign-chain-id",
            p0,
            signed_body(
                w, proxy=p0.keys.address, key=ikey, chain_id=w.deployment.chain_id + 1, **kw
            )[0],
        )
        attempt(
            "foreign-contract",
            p0,
            signed_body(
                w, proxy=p0.keys.address, key=ikey,
                contract=w.deployment.address_of("RecordIndex"), **kw,
            )[0],
        )  # fmt: skip
        attempt("foreign-proxy", p0, signed_body(w, proxy=p1.keys.address, key=ikey, **kw)[0])
        attempt(
            "foreign-grantee",
            p0,
            signed_body(w, proxy=p0.keys.address, key=w.hospital.keys.ethereum_key, **kw)[0],
        )
        attempt("served-elsewhere", p1, body)  # proxy 0's served request sent to proxy 1
    patient.revoke(grant.policy_id)
    w.sync_proxies()
    for _ in range(rounds):
        body, req = signed_body(w, proxy=p0.keys.address, policy_id=pid, capsule=capsule, key=ikey)
        attempt("after-revocation", p0, body)
    for body in first_bodies:  # requests served before the revocation, sent as they were
        attempt("replay-after-revocation", p0, body)
    w.drain()
    rows = [[k, str(tried[k]), str(honoured[k])] for k in sorted(tried)]
    total_tried, total_honoured = sum(tried.values()), sum(honoured.values())
    rows.append(["total", str(total_tried), str(total_honoured)])
    counters = {
        "replays_tried": total_tried,
        "replays_honoured": total_honoured,
        "replays_valid_served": len(served),
    }
    notes = [f"{len(served)} valid requests interleaved, {len(served)} served"]
    return counters, rows, notes


def _audit(w: World, rounds: int) -> Result:
    counters: dict[str, int] = {}
    rows: list[list[str]] = []
    notes: list[str] = []
    _serves_vs_log(w, rounds, counters, rows, notes)
    _forged_entries(w, counters, rows, notes)
    _expelled_writers(w, counters, rows)
    return counters, rows, notes


def _serves_vs_log(
    w: World, rounds: int, counters: dict[str, int], rows: list[list[str]], notes: list[str]
) -> None:
    patient, record, body = w.patient_with_record("serves")
    (grant,) = patient.grants()
    pid = bytes(grant.policy_id)
    (capsule,) = capsules_of(w, patient.address)
    ikey = w.insurer.keys.ethereum_key
    health0 = {p.keys.address.lower(): p.health()["served_cfrags"] for p in w.proxies}
    client: set[tuple[str, int]] = set()
    answered = {a: 0 for a in health0}
    for i in range(rounds * 3):
        p = w.proxies[i % len(w.proxies)]
        b, req = signed_body(w, proxy=p.keys.address, policy_id=pid, capsule=capsule, key=ikey)
        for _ in range(1 + (i % 2)):  # every other request is sent twice (a repeat)
            if p.post(b).status_code == 200:
                answered[p.keys.address.lower()] += 1
                client.add((p.keys.address.lower(), req.nonce))
    facade_reads = 0
    for _ in range(rounds):
        facade_reads += int(w.insurer.read(patient.address, record) == body)
    w.drain()
    logged = [(ev.proxy.lower(), ev.nonce) for ev in _logged(w, pid)]
    logged_set = set(logged)
    # The facade's reads sign their own nonces: per proxy, its serves for them are what
    # its served_cfrags grew by beyond the answers to our own requests (one capsule, one
    # cfrag each; repeats are answered and counted by served_cfrags too).
    unlogged = len(client - logged_set)
    unserved = len(logged) - len(logged_set)  # an entry logged twice
    health = 0
    for proxy in w.proxies:
        a = proxy.keys.address.lower()
        grew = proxy.health()["served_cfrags"] - health0[a]
        health += grew
        facade_serves = grew - answered[a]
        facade_logged = sum(1 for x in logged_set - client if x[0] == a)
        unlogged += max(0, facade_serves - facade_logged)
        unserved += max(0, facade_logged - facade_serves)
    counters["audit_client_serves"] = len(client)
    counters["served_unlogged"] = unlogged
    counters["logged_unserved"] = unserved
    rows.append(["serves vs AccessLogged", str(len(logged_set)), str(unlogged + unserved)])
    notes.append(
        f"audit: {len(client)} distinct signed requests served ({sum(answered.values())} "
        f"answers, repeats included), {facade_reads} facade reads; {len(logged)} "
        f"AccessLogged entries, {len(logged_set - client)} of them for facade reads; "
        f"proxies' served_cfrags grew by {health}"
    )
    counters["audit_health_served_cfrags"] = health


def _forged_entries(
    w: World, counters: dict[str, int], rows: list[list[str]], notes: list[str]
) -> None:
    patient, _record, _ = w.patient_with_record("forged")
    (grant,) = patient.grants()
    pid = bytes(grant.policy_id)
    (capsule,) = capsules_of(w, patient.address)
    p0, p1 = w.proxies[0], w.proxies[1]
    ikey = w.insurer.keys.ethereum_key
    w.drain()
    client = ChainClient(w.net.w3, p0.keys.ethereum_key)
    audit = Contracts.from_deployment(client, w.deployment).audit
    proxies = list(grant.proxies)

    def entry(proxy: str = p0.keys.address, key: bytes = ikey, **changes: Any) -> AccessEntry:
        _, req = signed_body(w, proxy=proxy, policy_id=pid, capsule=capsule, key=key)
        block = w.net.w3.eth.get_block("latest")
        e = AccessEntry(
            capsule_hashes=list(req.capsule_hashes),
            nonce=req.nonce,
            deadline=req.deadline,
            evaluated_at=int(block["number"]),
            evaluated_time=int(block["timestamp"]),
            signature=req.sign(key, w.deployment.chain_id, w.deployment.address_of("Grants")),
        )
        return dataclasses.replace(e, **changes)

    genesis_time = int(w.net.w3.eth.get_block(0)["timestamp"])
    forged: dict[str, tuple[str, AccessEntry]] = {
        "wrong requester (another member's signature)": (
            grant.grantee,
            entry(key=w.hospital.keys.ethereum_key),
        ),
        "wrong requester (grantee argument)": (w.hospital.address, entry()),
        "evaluatedAt 0": (grant.grantee, entry(evaluated_at=0, evaluated_time=genesis_time)),
        "no grantee signature (zeros)": (grant.grantee, entry(signature=b"\x00" * 65)),
        "no grantee signature (random)": (grant.grantee, entry(signature=secrets.token_bytes(65))),
        "another proxy's request": (grant.grantee, entry(proxy=p1.keys.address)),
        "evaluatedAt in the future": (grant.grantee, entry(evaluated_at=10**9)),
    }
    accepted = shown = 0
    nonces: set[int] = set()

    def send(grantee: str, e: AccessEntry) -> int:
        nonces.add(e.nonce)
        try:
            audit.log_accesses(grant.policy_id, grantee, proxies, [e])
        except ContractRevert:
            return 0
        return 1

    for label, (grantee, e) in forged.items():
        ok = send(grantee, e)
        accepted += ok
        rows.append([f"forged audit: {label}", "1", str(ok)])
    # After expiry and after revocation: a short grant on a second category.
    patient.authorize_writer(w.hospital.address, "imaging")
    w.hospital.add_record(patient.address, "imaging", b"x-ray")
    short = patient.grant(w.insurer.address, "imaging", expires=timedelta(seconds=60))
    w.sync_proxies()
    late_pid = bytes(short.policy_id)
    caps = capsules_of(w, patient.address)
    for label in ("after expiry", "after revocation"):
        if label == "after expiry":
            w.rpc("evm_increaseTime", [120])
            w.rpc("evm_mine", [])
        else:
            patient.revoke(short.policy_id)
        _, req = signed_body(
            w, proxy=p0.keys.address, policy_id=late_pid, capsule=caps[-1], key=ikey
        )
        block = w.net.w3.eth.get_block("latest")
        e = AccessEntry(
            list(req.capsule_hashes), req.nonce, req.deadline, int(block["number"]),
            int(block["timestamp"]),
            req.sign(ikey, w.deployment.chain_id, w.deployment.address_of("Grants")),
        )  # fmt: skip
        nonces.add(e.nonce)
        try:
            audit.log_accesses(short.policy_id, short.grantee, list(short.proxies), [e])
            ok = 1
        except ContractRevert:
            ok = 0
        accepted += ok
        rows.append([f"forged audit: {label}", "1", str(ok)])
    shown = sum(1 for ev in patient.audit() if ev.nonce in nonces)
    rows.append(["forged audit: shown by Patient.audit()", str(len(nonces)), str(shown)])
    counters["forged_audit_tried"] = len(nonces)
    counters["forged_audit_chain_accepted"] = accepted
    counters["forged_audit_shown"] = shown
    counters["forged_audit_accepted"] = accepted + shown
    notes.append(f"forged audit: {len(nonces)} entries sent by proxy {p0.keys.address}")


def _expelled_writers(w: World, counters: dict[str, int], rows: list[list[str]]) -> None:
    """A removed provider, and a writer whose authorization the patient withdrew, try to
    append (through the facade and raw, at the next slot and one further). Suspension
    applies only to proxies (``Registry_NotProxy``), which are no writers."""
    patient = w.new_patient("expelled")
    tried = accepted = 0
    for how in ("removed", "deauthorized"):
        writer = w.new_member(f"writer-{how}", Role.PROVIDER)
        patient.authorize_writer(writer.address, "clinical-notes")
        writer.add_record(patient.address, "clinical-notes", b"written while a member")
        before = len(list(w.net.contracts.index.entries(patient.address)))
        if how == "removed":
            w.act(Action.REMOVE, writer.address)
        else:
            patient.deauthorize_writer(writer.address, "clinical-notes")
        tag = patient.keys.tag("clinical-notes", patient.epoch("clinical-notes"))
        index = writer._contracts.index
        ok = 0
        for attempt in range(3):
            tried += 1
            try:
                if attempt == 0:
                    writer.add_record(patient.address, "clinical-notes", b"after expulsion")
                else:
                    seq = index.next_sequence(patient.address, tag, writer.address)
                    index.append(patient.address, tag, seq + attempt - 1, b"\x01" * 200)
            except (ContractRevert, EmrShareError):
                continue
            ok += 1
        after = len(list(w.net.contracts.index.entries(patient.address)))
        accepted += ok + max(0, after - before - ok)
        rows.append([f"expelled writer ({how})", "3", str(after - before)])
    counters["expelled_writes_tried"] = tried
    counters["expelled_writes_accepted"] = accepted
