"""Known-answer vectors (tests/vectors/*.json, made by scripts/gen_vectors.py).

Deterministic values are recomputed and must match exactly; stored randomized artifacts
(envelopes, capsules, kfrags, cfrags, sealed boxes) must still parse, verify and decrypt.
A failure here after a dependency upgrade means a format changed: existing data on chain
and in storage may no longer be readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import umbral_pre

from emrshare.crypto import (
    DataKey,
    EntryContext,
    IndexEntry,
    MemberKeys,
    MemberPublicKeys,
    PatientKeys,
    PatientPublicKeys,
    ProxyKeyFrag,
    SealedEntry,
    decrypt_bytes,
    open_entry,
    open_entry_as_grantee,
    open_grantee_map,
    open_sealed_kfrag,
    open_writer_authorization,
    verify_cfrags,
)
from emrshare.types import PolicyId, RecordId

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / f"{name}.json").read_text())


def test_patient_keys() -> None:
    for v in load("keys")["patients"]:
        p = PatientKeys(bytes.fromhex(v["master_secret"]))
        assert p.to_mnemonic() == v["mnemonic"]
        assert PatientKeys.from_mnemonic(v["mnemonic"]).master_secret == p.master_secret
        assert p.address == v["address"]
        assert p.ethereum_key.hex() == v["ethereum_key"]
        assert p.verifying_key.to_compressed_bytes().hex() == v["verifying_key"]
        assert bytes(p.box_public_key).hex() == v["box_public_key"]
        assert bytes(p.public_keys()).hex() == v["public_keys"]
        assert PatientPublicKeys.from_bytes(bytes.fromhex(v["public_keys"])) == p.public_keys()
        for c in v["categories"]:
            cat, epoch = c["category"], c["epoch"]
            assert (
                p.delegating_secret_key(cat, epoch).to_be_bytes().hex()
                == (c["delegating_secret_key"])
            )
            assert (
                p.category_public_key(cat, epoch).to_compressed_bytes().hex()
                == (c["category_public_key"])
            )
            assert p.tag(cat, epoch).hex() == c["tag"]


def test_member_keys() -> None:
    for v in load("keys")["members"]:
        m = MemberKeys(bytes.fromhex(v["seed"]))
        assert m.address == v["address"]
        assert m.ethereum_key.hex() == v["ethereum_key"]
        assert m.receiving_secret_key.to_be_bytes().hex() == v["receiving_secret_key"]
        assert m.receiving_public_key.to_compressed_bytes().hex() == v["receiving_public_key"]
        assert bytes(m.box_public_key).hex() == v["box_public_key"]
        assert (
            bytes(MemberPublicKeys.from_bytes(bytes.fromhex(v["public_keys"]))).hex()
            == (v["public_keys"])
        )
        assert bytes(m.public_keys()).hex() == v["public_keys"]


def test_envelopes() -> None:
    v = load("envelope")
    assert {c["suite"] for c in v["cases"]} == {1, 2}
    key, rid = DataKey(bytes.fromhex(v["key"])), bytes.fromhex(v["record_id"])
    for case in v["cases"]:
        ct = bytes.fromhex(case["ciphertext"])
        assert ct[6] == case["suite"]
        assert int.from_bytes(ct[7:11], "big") == case["chunk_size"]
        assert decrypt_bytes(ct, key, rid).hex() == case["plaintext"]


def test_index_entry() -> None:
    v = load("index_entry")
    patient = PatientKeys(bytes.fromhex(v["patient_seed"]))
    author = MemberKeys(bytes.fromhex(v["author_seed"]))
    entry = IndexEntry.from_bytes(bytes.fromhex(v["encoding"]))
    assert entry.encode(minor=1).hex() == v["encoding"]
    assert entry.author == author.address
    assert entry.author_digest(patient.address).hex() == v["author_digest"]
    assert entry.author_signature.hex() == v["author_signature"]
    entry.verify_author(patient.address)
    # Re-signing gives the same bytes (RFC 6979 deterministic ECDSA).
    again = IndexEntry.create(
        patient=patient.address,
        record_id=entry.record_id,
        cid=entry.cid,
        data_key=entry.data_key,
        plaintext_sha256=entry.plaintext_sha256,
        size=entry.size,
        media_type=entry.media_type,
        category=entry.category,
        epoch=entry.epoch,
        created_at=entry.created_at,
        author_key=author.ethereum_key,
    )
    assert again.encode(minor=1).hex() == v["encoding"]
    sealed = SealedEntry.from_bytes(bytes.fromhex(v["sealed"]))
    assert bytes(sealed).hex() == v["sealed"]
    assert sealed.capsule_hash.hex() == v["capsule_hash"]
    assert open_entry(sealed, patient, v["category"], v["epoch"]) == entry


def test_compact_index_entry() -> None:
    """The 1.2 vector: the same entry as index_entry.json, without the record id, author,
    category and epoch, which its chain event and key supply."""
    v, old = load("index_entry_compact"), load("index_entry")
    patient = PatientKeys(bytes.fromhex(v["patient_seed"]))
    context = EntryContext(
        RecordId(bytes.fromhex(v["record_id"])), v["author"], v["category"], v["epoch"]
    )
    raw = bytes.fromhex(v["encoding"])
    assert raw[:6] == b"EMIE\x01\x02" and len(raw) == 180
    entry = IndexEntry.from_bytes(raw, context=context)
    assert entry == IndexEntry.from_bytes(bytes.fromhex(old["encoding"]))
    assert bytes(entry).hex() == v["encoding"]
    assert entry.author_digest(patient.address).hex() == v["author_digest"] == old["author_digest"]
    entry.verify_author(patient.address)
    sealed = SealedEntry.from_bytes(bytes.fromhex(v["sealed"]))
    assert len(bytes(sealed)) == 333 and bytes(sealed).hex() == v["sealed"]
    assert open_entry(sealed, patient, v["category"], v["epoch"], origin=context) == entry


@pytest.fixture(scope="module")
def grant_v() -> Any:
    return load("grant")


def test_grant_kfrags_and_cfrags(grant_v: Any) -> None:
    v, e = grant_v, load("index_entry")
    patient = PatientKeys(bytes.fromhex(e["patient_seed"]))
    grantee = MemberKeys(bytes.fromhex(v["grantee_seed"]))
    proxies = [MemberKeys(bytes.fromhex(s)) for s in v["proxy_seeds"]]
    for sealed, stored, proxy in zip(v["sealed_kfrags"], v["proxy_kfrags"], proxies, strict=True):
        pkf = open_sealed_kfrag(bytes.fromhex(sealed), proxy)
        assert bytes(pkf).hex() == stored
        verified = ProxyKeyFrag.from_bytes(bytes.fromhex(stored)).verify(
            patient_verifying_key=patient.verifying_key,
            policy_id=PolicyId(bytes.fromhex(v["policy_id"])),
            patient=patient.address,
            grantee=grantee.address,
            tag=patient.tag(v["category"], v["epoch"]),
            epoch=v["epoch"],
            grantee_receiving_key=grantee.receiving_public_key,
        )
        assert bytes(verified).hex() == stored
    gmap = open_grantee_map(
        bytes.fromhex(v["sealed_grantee_map"]),
        grantee,
        patient_verifying_key=patient.verifying_key,
    )
    assert (gmap.category, gmap.epoch, gmap.threshold) == (v["category"], v["epoch"], 2)
    sealed_entry = SealedEntry.from_bytes(bytes.fromhex(e["sealed"]))
    check = verify_cfrags(
        sealed_entry.capsule,
        {str(i): bytes.fromhex(c) for i, c in enumerate(v["cfrags"])},
        gmap,
        grantee.receiving_public_key,
    )
    assert not check.failed
    for c in v["cfrags"]:
        assert bytes(umbral_pre.CapsuleFrag.from_bytes(bytes.fromhex(c))).hex() == c
    entry = open_entry_as_grantee(sealed_entry, grantee, gmap, check.verified.values())
    assert entry.encode(minor=1).hex() == e["encoding"]


def test_writer_authorization(grant_v: Any) -> None:
    e = load("index_entry")
    patient = PatientKeys(bytes.fromhex(e["patient_seed"]))
    writer = MemberKeys(bytes.fromhex(grant_v["writer_seed"]))
    auth = open_writer_authorization(
        bytes.fromhex(grant_v["sealed_writer_authorization"]),
        writer,
        patient_verifying_key=patient.verifying_key,
    )
    assert auth.tag == patient.tag("labs", 0)
    assert auth.category_public_key_bytes == (
        patient.category_public_key("labs", 0).to_compressed_bytes()
    )


def test_release1_vectors_still_read() -> None:
    """The unpadded 1.0 encodings of release 1 (tests/vectors/release1, the vectors as
    they were before the 1.1 padding) still open and verify: data already on chain stays
    readable."""
    e = json.loads((VECTORS / "release1" / "index_entry.json").read_text())
    g = json.loads((VECTORS / "release1" / "grant.json").read_text())
    patient = PatientKeys(bytes.fromhex(e["patient_seed"]))
    assert bytes.fromhex(e["encoding"])[:6] == b"EMIE\x01\x00"
    entry = IndexEntry.from_bytes(bytes.fromhex(e["encoding"]))
    entry.verify_author(patient.address)
    sealed = SealedEntry.from_bytes(bytes.fromhex(e["sealed"]))
    assert open_entry(sealed, patient, e["category"], e["epoch"]) == entry
    # Re-encoding writes the compact 1.2 form (text/plain has a code), or 1.1 on request.
    assert entry.encode(minor=1)[:6] == b"EMIE\x01\x01"
    assert IndexEntry.from_bytes(entry.encode(minor=1)) == entry
    context = EntryContext(entry.record_id, entry.author, entry.category, entry.epoch)
    assert bytes(entry)[:6] == b"EMIE\x01\x02"
    assert IndexEntry.from_bytes(bytes(entry), context=context) == entry
    grantee = MemberKeys(bytes.fromhex(g["grantee_seed"]))
    assert bytes.fromhex(g["sealed_grantee_map"])[:6] == b"EMGM\x01\x00"
    gmap = open_grantee_map(
        bytes.fromhex(g["sealed_grantee_map"]), grantee, patient_verifying_key=patient.verifying_key
    )
    assert (gmap.category, gmap.epoch, gmap.threshold) == (g["category"], g["epoch"], 2)
    writer = MemberKeys(bytes.fromhex(g["writer_seed"]))
    assert bytes.fromhex(g["sealed_writer_authorization"])[:6] == b"EMWA\x01\x00"
    auth = open_writer_authorization(
        bytes.fromhex(g["sealed_writer_authorization"]),
        writer,
        patient_verifying_key=patient.verifying_key,
    )
    assert auth.tag == patient.tag("labs", 0)
