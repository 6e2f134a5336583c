"""Regenerate the crypto known-answer vectors in tests/vectors/*.json from fixed seeds.

    .venv/bin/python scripts/gen_vectors.py [NAME ...]   # e.g. "envelope"; default: all

Deterministic values (keys, tags, encodings, signatures) are recomputed and compared by
tests/unit/crypto/test_vectors.py on every run; randomized artifacts (envelope headers,
Umbral capsules, kfrags, cfrags, sealed boxes) are stored once and the test checks that
they still parse, verify and decrypt under the pinned umbral-pre/PyNaCl. Only regenerate
on purpose (a format change), and say so in the commit: a changed vector means old data
may no longer be readable.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import umbral_pre

from emrshare.crypto import (
    DataKey,
    IndexEntry,
    MemberKeys,
    PatientKeys,
    SealedEntry,
    encrypt_bytes,
    make_grant,
    open_sealed_kfrag,
    seal_entry,
    seal_writer_authorization,
)
from emrshare.crypto.envelope import SUITE_AES256GCM, SUITE_XCHACHA20POLY1305
from emrshare.types import Cid, PolicyId, RecordId

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors"
CATEGORIES = [("labs", 0), ("labs", 1), ("imaging", 0), ("mental-health", 7), ("处方", 0)]


def seed(label: str) -> bytes:
    return hashlib.sha256(b"emrshare-vector/" + label.encode()).digest()


def patient_vector(secret: bytes) -> dict[str, Any]:
    p = PatientKeys(secret)
    return {
        "master_secret": secret.hex(),
        "mnemonic": p.to_mnemonic(),
        "address": p.address,
        "ethereum_key": p.ethereum_key.hex(),
        "verifying_key": p.verifying_key.to_compressed_bytes().hex(),
        "box_public_key": bytes(p.box_public_key).hex(),
        "public_keys": bytes(p.public_keys()).hex(),
        "categories": [
            {
                "category": c,
                "epoch": e,
                "delegating_secret_key": p.delegating_secret_key(c, e).to_be_bytes().hex(),
                "category_public_key": p.category_public_key(c, e).to_compressed_bytes().hex(),
                "tag": p.tag(c, e).hex(),
            }
            for c, e in CATEGORIES
        ],
    }


def member_vector(secret: bytes) -> dict[str, Any]:
    m = MemberKeys(secret)
    return {
        "seed": secret.hex(),
        "address": m.address,
        "ethereum_key": m.ethereum_key.hex(),
        "receiving_secret_key": m.receiving_secret_key.to_be_bytes().hex(),
        "receiving_public_key": m.receiving_public_key.to_compressed_bytes().hex(),
        "box_public_key": bytes(m.box_public_key).hex(),
        "public_keys": bytes(m.public_keys()).hex(),
    }


def entry_for(p: PatientKeys, author: MemberKeys, category: str, epoch: int) -> IndexEntry:
    return IndexEntry.create(
        patient=p.address,
        record_id=RecordId(seed("record")),
        cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
        data_key=DataKey(seed("data-key")),
        plaintext_sha256=hashlib.sha256(b"hello, records").digest(),
        size=14,
        media_type="text/plain",
        category=category,
        epoch=epoch,
        created_at=1_700_000_000,
        author_key=author.ethereum_key,
    )


def main() -> None:
    only = set(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    patient = PatientKeys(seed("patient"))
    grantee = MemberKeys(seed("grantee"))
    writer = MemberKeys(seed("writer"))
    proxies = [MemberKeys(seed(f"proxy{i}")) for i in range(3)]

    keys = {
        "description": "patient and member keys derived from fixed secrets",
        "patients": [patient_vector(seed("patient")), patient_vector(bytes(32))],
        "members": [member_vector(seed(n)) for n in ("grantee", "writer", "proxy0")],
    }

    key = DataKey(seed("envelope-key"))
    rid = seed("envelope-record")
    envelope = {
        "description": "record envelopes (suite 1); decrypt each and compare",
        "key": key.key.hex(),
        "record_id": rid.hex(),
        "cases": [
            {
                "suite": suite,
                "chunk_size": chunk,
                "plaintext": bytes(i % 251 for i in range(size)).hex(),
                "ciphertext": encrypt_bytes(
                    bytes(i % 251 for i in range(size)), key, rid, chunk_size=chunk, suite=suite
                ).hex(),
            }
            for suite in (SUITE_XCHACHA20POLY1305, SUITE_AES256GCM)
            for chunk, size in ((64, 0), (64, 1), (64, 63), (64, 64), (64, 65), (16, 200))
        ],
    }

    entry = entry_for(patient, writer, "labs", 0)
    # index_entry: the padded 1.1 form (still written for entries 1.2 cannot hold);
    # index_entry_compact: the 1.2 form every entry with a common media type now takes.
    capsule, ciphertext = umbral_pre.encrypt(
        patient.category_public_key("labs", 0), entry.encode(minor=1)
    )
    sealed = SealedEntry(capsule, bytes(ciphertext))
    compact = seal_entry(entry, patient.category_public_key("labs", 0))
    index_entry_compact = {
        "description": "a compact (1.2) index entry: the record id and author come from its "
        "chain event, category and epoch from the key; its author digest and a sealed copy",
        "patient_seed": seed("patient").hex(),
        "author_seed": seed("writer").hex(),
        "record_id": bytes(entry.record_id).hex(),
        "author": entry.author,
        "category": "labs",
        "epoch": 0,
        "author_digest": entry.author_digest(patient.address).hex(),
        "encoding": bytes(entry).hex(),
        "sealed": bytes(compact).hex(),
    }
    index_entry = {
        "description": "an index entry, its author digest/signature and a sealed copy",
        "patient_seed": seed("patient").hex(),
        "author_seed": seed("writer").hex(),
        "category": "labs",
        "epoch": 0,
        "author_digest": entry.author_digest(patient.address).hex(),
        "author_signature": entry.author_signature.hex(),
        "encoding": entry.encode(minor=1).hex(),
        "sealed": bytes(sealed).hex(),
        "capsule_hash": sealed.capsule_hash.hex(),
    }

    policy_id = PolicyId(seed("policy"))
    grant = make_grant(
        patient,
        category="labs",
        epoch=0,
        policy_id=policy_id,
        grantee=grantee.public_keys(),
        proxies=[p.public_keys() for p in proxies],
        threshold=2,
    )
    opened = [open_sealed_kfrag(s, p) for s, p in zip(grant.sealed_kfrags, proxies, strict=True)]
    cfrags = [
        bytes(umbral_pre.reencrypt(sealed.capsule, k.kfrag.skip_verification())) for k in opened
    ]
    grants = {
        "description": "a 2-of-3 grant of labs/0 and cfrags for the sealed entry above",
        "policy_id": bytes(policy_id).hex(),
        "category": "labs",
        "epoch": 0,
        "threshold": 2,
        "grantee_seed": seed("grantee").hex(),
        "proxy_seeds": [seed(f"proxy{i}").hex() for i in range(3)],
        "sealed_kfrags": [s.hex() for s in grant.sealed_kfrags],
        "proxy_kfrags": [bytes(k).hex() for k in opened],
        "sealed_grantee_map": grant.sealed_grantee_map.hex(),
        "cfrags": [c.hex() for c in cfrags],
        "sealed_writer_authorization": seal_writer_authorization(
            patient, writer.public_keys(), "labs", 0
        ).hex(),
        "writer_seed": seed("writer").hex(),
    }

    for name, doc in (
        ("keys", keys),
        ("envelope", envelope),
        ("index_entry", index_entry),
        ("index_entry_compact", index_entry_compact),
        ("grant", grants),
    ):
        if only and name not in only:
            continue
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(OUT.parents[1])}")


if __name__ == "__main__":
    main()
