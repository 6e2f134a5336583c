"""Section ``privacy``: what the raw chain gives away, and the dictionary linkage attack.

A scenario with sensitive categories (``hiv``, ``mental-health``, ``substance-use``),
reasons with sensitive text, reads, a revocation and a write after it; then every
transaction input (``eth_getBlockByNumber(n, true)`` for every block) and every log
(``eth_getLogs`` from block 0), raw from JSON-RPC, are scanned for the category names
(utf-8, utf-16 both ways, hex text), their keccak-256 and sha-256 with and without the
patient and the old request domain, the reasons and their hashes, each stored record's
CID in every form (CIDv0 and CIDv1 strings, CID bytes, the multihash, the sha-256 digest),
the plaintexts and their hashes. The linkage attack tries each of 50 names against every
``AccessRequested`` by every public computation below. The figures of what an observer
still learns are printed as notes (docs/threat-model.md quotes them).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import timedelta
from typing import Any

from eth_utils.crypto import keccak

from emrshare.chain import (
    AccessLogged,
    AccessRequestAnswered,
    AccessRequested,
    GrantCreated,
    GrantRevokedEvent,
    TagRevoked,
    WriterAuthorized,
)
from emrshare.crypto import SealedEntry, open_entry
from emrshare.storage.cid import CidInfo, _b58encode

from .world import World, section_world

Result = tuple[dict[str, int], list[list[str]], list[str]]
SENSITIVE = ("hiv", "mental-health", "substance-use")
REASONS = {
    "hiv": "suspected HIV seroconversion, partner tested positive",
    "mental-health": "bipolar disorder follow-up after 2024 admission",
    "substance-use": "opioid use disorder, methadone programme intake",
}
PLAINTEXTS = {
    "hiv": b"HIV-1 RNA 1,200 copies/mL; CD4 410",
    "mental-health": b"Dx F31.1 bipolar I, current episode manic; lithium 900 mg",
    "substance-use": b"OUD, methadone 60 mg daily, urine screen positive fentanyl",
}
#: 50 names a dictionary attacker tries (the three above among them).
DICTIONARY = (
    "hiv", "psychiatry", "substance-use", "allergies", "imaging", "medication",
    "immunizations", "discharge", "genomics", "radiology", "pathology", "cardiology",
    "oncology", "mental-health", "reproductive", "pregnancy", "sexual-health",
    "dermatology", "neurology", "pediatrics", "dental", "ophthalmology", "orthopedics",
    "surgery", "anesthesia", "vitals", "notes", "progress-notes", "lab-results", "lab",
    "microbiology", "hematology", "endocrinology", "diabetes", "nephrology", "urology",
    "gastroenterology", "hepatology", "pulmonology", "rheumatology", "infectious",
    "vaccines", "prescriptions", "referrals", "insurance", "billing", "claims",
    "emergency", "genetic-tests", "family-history",
)  # fmt: skip
OLD_DOMAIN = b"emrshare/access-request-category/v1"
#: "first WriterAuthorized within K blocks after a TagRevoked" links a re-keyed tag.
K = 3


def _hashes(label: str, data: bytes) -> dict[str, bytes]:
    return {
        f"{label}": data,
        f"keccak({label})": keccak(data),
        f"sha256({label})": hashlib.sha256(data).digest(),
    }


def _name_forms(name: str, patient: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {
        f"utf-16-le:{name}": name.encode("utf-16-le"),
        f"utf-16-be:{name}": name.encode("utf-16-be"),
        f"hex:{name}": name.encode().hex().encode(),
        f"HEX:{name}": name.encode().hex().upper().encode(),
    }
    out |= _hashes(f"name:{name}", name.encode())
    out |= _hashes(f"patient+{name}", patient + name.encode())
    out |= _hashes(f"{name}+patient", name.encode() + patient)
    out |= _hashes(f"old-domain+patient+{name}", OLD_DOMAIN + patient + name.encode())
    out |= _hashes(f"old-domain+{name}", OLD_DOMAIN + name.encode())
    return out


def _cid_forms(label: str, cid: str) -> dict[str, bytes]:
    info = CidInfo.parse(cid)
    out = {
        f"cid-bytes:{label}": info.to_bytes(),
        f"multihash:{label}": info.multihash,
        f"digest:{label}": info.digest,
        f"cidv1:{label}": str(info.v1).encode(),
        f"cid:{label}": str(cid).encode(),
    }
    if info.codec == 0x70:  # dag-pb: also its CIDv0 form
        out[f"cidv0:{label}"] = _b58encode(info.multihash).encode()
    return out


def _raw_chain(w: World) -> tuple[list[bytes], int, int]:
    blobs: list[bytes] = []
    head = int(w.net.w3.eth.block_number)
    txs = 0
    for n in range(head + 1):
        block: Any = w.rpc("eth_getBlockByNumber", [hex(n), True])
        for tx in block["transactions"]:
            blobs.append(bytes.fromhex(tx["input"][2:]))
            txs += 1
    logs: Any = w.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head)}])
    for lg in logs:
        blobs += [bytes.fromhex(t[2:]) for t in lg["topics"]]
        blobs.append(bytes.fromhex(lg["data"][2:]))
    return blobs, txs, len(logs)


def _scenario(w: World, patients: int) -> tuple[list[Any], dict[str, bytes], list[str]]:
    """Patients with the sensitive categories; returns (patients, needles, cids)."""
    needles: dict[str, bytes] = {}
    cids: list[str] = []
    out = []
    for i in range(patients):
        p = w.new_patient(f"privacy-{i}")
        raw = bytes.fromhex(p.address[2:])
        for c in SENSITIVE:
            p.authorize_writer(w.hospital.address, c)
            w.hospital.add_record(p.address, c, PLAINTEXTS[c] + b" #%d" % i)
            needles |= {f"p{i}:{k}": v for k, v in _name_forms(c, raw).items()}
            needles |= _hashes(f"reason:{c}", REASONS[c].encode())
            needles |= _hashes(f"plaintext:{c}:{i}", PLAINTEXTS[c] + b" #%d" % i)
            rid = w.insurer.request_access(p.address, c, purpose="HPAYMT", reason=REASONS[c])
            p.approve(rid, expires=timedelta(days=1))
        w.sync_proxies()
        records = p.records()
        w.insurer.read(p.address, records[0].record_id)
        # revoke one grant (the category moves to a new tag), then write again
        (g,) = [g for g in p.grants() if g.category == "mental-health"] or [p.grants()[0]]
        p.revoke(g.policy_id)
        w.hospital.add_record(p.address, "mental-health", PLAINTEXTS["mental-health"] + b" later")
        needles |= _hashes(f"plaintext:later:{i}", PLAINTEXTS["mental-health"] + b" later")
        needles |= _hashes("purpose:HPAYMT", b"HPAYMT")
        for ev in w.net.contracts.index.entries(p.address):
            for r in p.records():
                if r.record_id == ev.record_id and r.category is not None:
                    entry = open_entry(
                        SealedEntry.from_bytes(bytes(ev.entry)),
                        p.keys,
                        r.category,
                        r.epoch,
                        origin=ev,
                    )
                    cids.append(str(entry.cid))
        out.append(p)
    for n, cid in enumerate(cids):
        needles |= _cid_forms(str(n), cid)
    return out, needles, cids


def privacy(opts: Any) -> Result:
    with section_world("emrshare-privacy-") as w:
        return run_privacy(w, 1 if opts.quick else 3)


def run_privacy(w: World, n_patients: int) -> Result:
    """The scenario for ``n_patients`` patients on ``w``, the scan and the attack."""
    patients, needles, cids = _scenario(w, n_patients)
    w.drain()
    blobs, txs, logs = _raw_chain(w)
    hits = sorted({name for name, needle in needles.items() if any(needle in b for b in blobs)})
    link_tried, link_hits, link_notes = _linkage(w, patients)
    figures = _observer(w, patients)
    rows = [
        ["needles scanned", str(len(needles)), str(len(hits))],
        [f"raw chain: {txs} transactions, {logs} logs", str(len(blobs)), ""],
        ["dictionary linkage guesses", str(link_tried), str(link_hits)],
    ]
    counters = {
        "privacy_needles": len(needles),
        "privacy_linkage_guesses": link_tried,
        "privacy_hits": len(hits) + link_hits,
    }
    notes = [f"FINDING privacy hit: {h}" for h in hits] + link_notes + figures
    notes.append(f"{len(cids)} stored records' CIDs in 5-6 forms each among the needles")
    return counters, rows, notes


def _linkage(w: World, patients: list[Any]) -> tuple[int, int, list[str]]:
    """Try every dictionary name against every AccessRequested."""
    grants = w.net.contracts.grants
    tried = hits = 0
    notes: list[str] = []
    lengths: Counter[tuple[int, int]] = Counter()
    for p in patients:
        raw = bytes.fromhex(p.address[2:])
        reqs = list(grants.events(AccessRequested, patient=p.address))
        policies = {bytes(g.policy_id) for g in grants.events(GrantCreated, patient=p.address)}
        tags = {bytes(g.tag) for g in grants.events(GrantCreated, patient=p.address)}
        for ev in reqs:
            tx = w.net.w3.eth.get_transaction(ev.tx_hash)  # type: ignore[arg-type]
            receipt = w.net.w3.eth.get_transaction_receipt(ev.tx_hash)  # type: ignore[arg-type]
            blob = bytes(tx["input"]) + b"".join(
                b"".join(bytes(t) for t in lg["topics"]) + bytes(lg["data"])
                for lg in receipt["logs"]
            )
            lengths[(len(bytes(ev.sealed_request)), len(bytes(tx["input"])))] += 1
            req_raw = bytes.fromhex(ev.requester[2:])
            for name in DICTIONARY:
                guesses = list(_name_forms(name, raw).values())
                guesses += [
                    keccak(req_raw + raw + name.encode()),
                    keccak(raw + req_raw + name.encode()),
                ]
                tried += 1
                if any(g in blob for g in guesses):
                    hits += 1
                    notes.append(f"FINDING linkage: {name} confirmed in request {ev.request_id}")
        for ans in grants.events(AccessRequestAnswered, patient=p.address):
            tx = w.net.w3.eth.get_transaction(ans.tx_hash)  # type: ignore[arg-type]
            receipt = w.net.w3.eth.get_transaction_receipt(ans.tx_hash)  # type: ignore[arg-type]
            blob = bytes(tx["input"]) + b"".join(
                b"".join(bytes(t) for t in lg["topics"]) + bytes(lg["data"])
                for lg in receipt["logs"]
            )
            tried += 1
            if any(x in blob for x in policies | tags):
                hits += 1
                notes.append(f"FINDING linkage: answer {ans.request_id} names a policy or tag")
    tried += 1  # the length buckets
    if len(lengths) > 1:
        hits += len(lengths) - 1
        notes.append(f"FINDING linkage: request sizes differ: {dict(lengths)}")
    notes.append(f"linkage: {sum(lengths.values())} requests, sizes (sealed, tx input): "
                 f"{sorted(lengths)}")  # fmt: skip
    return tried, hits, notes


def _observer(w: World, patients: list[Any]) -> list[str]:
    """What a chain observer still learns, as figures."""
    c = w.net.contracts
    entries = [e for p in patients for e in c.index.entries(p.address)]
    per_tag = Counter((e.patient, bytes(e.tag)) for e in entries)
    authored = sum(1 for e in entries if e.author)
    # A revocation (GrantRevoked; TagRevoked for a whole tag) moves the category to a new
    # tag, and the category's writers are re-keyed to it (WriterAuthorized).
    created = {bytes(g.policy_id): g for p in patients
               for g in c.grants.events(GrantCreated, patient=p.address)}  # fmt: skip
    revoked = [
        (e.patient, e.block_number, bytes(created[bytes(e.policy_id)].tag))
        for p in patients
        for e in c.grants.events(GrantRevokedEvent, patient=p.address)
    ]
    revoked += [
        (e.patient, e.block_number, bytes(e.tag))
        for p in patients
        for e in c.grants.events(TagRevoked, patient=p.address)
    ]
    auths = [e for p in patients for e in c.index.events(WriterAuthorized, patient=p.address)]
    linked = 0
    for patient, block, old_tag in revoked:
        seen = {bytes(a.tag) for a in auths if a.block_number < block}
        later = sorted(
            (a for a in auths
             if a.patient == patient and block <= a.block_number <= block + K
             and bytes(a.tag) not in seen and bytes(a.tag) != old_tag),
            key=lambda a: (a.block_number, a.log_index),
        )  # fmt: skip
        p = next(p for p in patients if p.address == patient)
        cats = [x for x in SENSITIVE if bytes(p.keys.tag(x, 0)) == old_tag]
        truth = bytes(p.keys.tag(cats[0], 1)) if cats else None
        linked += int(bool(later) and bytes(later[0].tag) == truth)
    grants = [g for p in patients for g in c.grants.events(GrantCreated, patient=p.address)]
    edges = {(g.patient, g.grantee) for g in grants}
    reqs = {(e.patient, e.requester) for p in patients
            for e in c.grants.events(AccessRequested, patient=p.address)}  # fmt: skip
    mine = {p.address for p in patients}
    logged = {
        (e.patient, e.proxy, e.requester) for e in c.audit.events(AccessLogged) if e.patient in mine
    }
    answers = [
        a for p in patients for a in c.grants.events(AccessRequestAnswered, patient=p.address)
    ]
    near = sum(
        1 for a in answers
        if any(g.patient == a.patient and g.grantee == a.requester
               and abs(g.block_number - a.block_number) <= K for g in grants)
    )  # fmt: skip
    return [
        f"observer: {len(entries)} entries under {len(per_tag)} tags; entries per tag "
        f"{sorted(per_tag.values())} (counts per tag are public)",
        f"observer: {authored} of {len(entries)} entries name their writer (authorship is public)",
        f"observer: {linked} of {len(revoked)} re-keyed tags linked to the revoked tag by "
        f"'first new WriterAuthorized within {K} blocks after a revocation' "
        f"({100 * linked // max(1, len(revoked))}%)",
        f"observer: grant graph: {len(edges)} patient-grantee edges from {len(grants)} "
        f"grants, {len(reqs)} patient-requester edges, {len(logged)} patient-proxy-reader "
        f"triples from AccessLogged",
        f"observer: {near} of {len(answers)} answered requests have a grant to the "
        f"requester within {K} blocks (approval and its tag inferred by timing, "
        f"{100 * near // max(1, len(answers))}%)",
        "observer: timing: every entry, grant, request, answer and access log carries its "
        "block number and time",
    ]
