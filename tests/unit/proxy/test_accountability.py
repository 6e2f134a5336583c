"""Signed proxy responses, the evidence format and its checks, and the store's reorg
rollback and layout upgrade (pure: no sockets)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import umbral_pre
from eth_account import Account
from eth_utils.crypto import keccak

from emrshare.errors import InvalidEvidence, UnsupportedVersion, WireFormatError
from emrshare.proxy import response
from emrshare.proxy.evidence import Evidence
from emrshare.proxy.node.store import EntryRecord, PolicyRecord, ProxyStore, Serve, StoredKfrag
from emrshare.proxy.request import ReencryptRequest, SignedRequest, capsule_hash

CHAIN_ID = 31337
GRANTS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GRANTEE_KEY = bytes(range(1, 33))
PROXY_KEY = bytes(range(2, 34))
GRANTEE = str(Account.from_key(GRANTEE_KEY).address)
PROXY = str(Account.from_key(PROXY_KEY).address)


def _serve(corrupt: bool) -> tuple[Evidence, bytes, bytes]:
    """A real signed serve of one capsule; returns (evidence, verifying pk, receiving pk)."""
    delegating = umbral_pre.SecretKey.random()
    signer = umbral_pre.Signer(umbral_pre.SecretKey.random())
    receiving = umbral_pre.SecretKey.random()
    (kfrag,) = umbral_pre.generate_kfrags(
        delegating, receiving.public_key(), signer, 1, 1, True, True
    )
    capsule, _ = umbral_pre.encrypt(delegating.public_key(), b"entry")
    cfrag = bytes(umbral_pre.reencrypt(capsule, kfrag))
    if corrupt:
        cfrag = cfrag[:-1] + bytes([cfrag[-1] ^ 1])
    req = ReencryptRequest.new(PROXY, b"\x07" * 32, [capsule_hash(bytes(capsule))], 10**10)
    signed = SignedRequest(
        request=req,
        chain_id=CHAIN_ID,
        verifying_contract=GRANTS,  # type: ignore[arg-type]
        signature=req.sign(GRANTEE_KEY, CHAIN_ID, GRANTS),
        capsules=(bytes(capsule),),
    )
    dpk = delegating.public_key().to_compressed_bytes()
    bound = response.Bound(CHAIN_ID, GRANTS, PROXY, req.digest(CHAIN_ID, GRANTS))
    digest = response.served_digest(bound, cfrag_hashes=[keccak(cfrag)], block=9, delegating_pk=dpk)
    vpk = signer.verifying_key().to_compressed_bytes()
    rpk = receiving.public_key().to_compressed_bytes()
    ev = Evidence.build(
        signed,
        block=9,
        delegating_pk=dpk,
        cfrags=(cfrag,),
        response_signature=response.sign_digest(digest, PROXY_KEY),
        index=0,
        verifying_pk=vpk,
        receiving_pk=rpk,
    )
    return ev, vpk, rpk


def _check(ev: Evidence, vpk: bytes, rpk: bytes, **kw: str) -> None:
    args = {"proxy": PROXY, "grantee": GRANTEE, "grants_contract": GRANTS, **kw}
    ev.check(chain_id=CHAIN_ID, verifying_pk=vpk, receiving_pk=rpk, **args)


def test_response_signatures_bind_the_request_and_outcome() -> None:
    bound = response.Bound(CHAIN_ID, GRANTS, PROXY, b"\x01" * 32)
    served = response.served_digest(bound, cfrag_hashes=[b"\x02" * 32], block=5, delegating_pk=b"k")
    refused = response.refused_digest(bound, reason="policy_revoked", block=5)
    other = response.served_digest(
        replace(bound, request_digest=b"\x03" * 32),
        cfrag_hashes=[b"\x02" * 32],
        block=5,
        delegating_pk=b"k",
    )
    assert len({served, refused, other}) == 3
    sig = response.sign_digest(served, PROXY_KEY)
    assert response.recover_response(served, sig) == PROXY
    assert response.recover_response(refused, sig) != PROXY


def test_evidence_of_a_corrupt_cfrag_proves_misbehaviour() -> None:
    ev, vpk, rpk = _serve(corrupt=True)
    data = bytes(ev)
    assert data[:6] == b"EMEV\x01\x00"
    assert Evidence.from_bytes(data) == ev
    _check(Evidence.from_bytes(data), vpk, rpk)


def test_evidence_against_an_honest_proxy_is_refused() -> None:
    honest, vpk, rpk = _serve(corrupt=False)
    with pytest.raises(InvalidEvidence, match="the cfrag verifies"):
        _check(honest, vpk, rpk)
    bad = honest.cfrag[:-1] + bytes([honest.cfrag[-1] ^ 1])
    with pytest.raises(InvalidEvidence, match="not the one the proxy signed"):
        _check(replace(honest, cfrag=bad), vpk, rpk)
    with pytest.raises(InvalidEvidence, match="not signed by the reported proxy"):
        _check(replace(honest, delegating_pk=rpk), vpk, rpk)
    with pytest.raises(InvalidEvidence, match="not the one the request names"):
        _check(
            replace(honest, capsule=honest.capsule[:-1] + bytes([honest.capsule[-1] ^ 1])), vpk, rpk
        )


def test_evidence_checks_the_public_data() -> None:
    ev, vpk, rpk = _serve(corrupt=True)
    with pytest.raises(InvalidEvidence, match="not signed by the policy's grantee"):
        _check(ev, vpk, rpk, grantee=PROXY)
    with pytest.raises(InvalidEvidence, match="not the reported"):
        _check(ev, vpk, rpk, proxy=GRANTEE)
    with pytest.raises(InvalidEvidence, match="another chain"):
        _check(ev, vpk, rpk, grants_contract=GRANTEE)
    with pytest.raises(InvalidEvidence, match="not the one the grant was made with"):
        _check(ev, rpk, rpk)


def test_evidence_encoding_is_strict() -> None:
    ev, _, _ = _serve(corrupt=True)
    data = bytes(ev)
    with pytest.raises(UnsupportedVersion):
        Evidence.from_bytes(data[:4] + b"\x02\x00" + data[6:])
    with pytest.raises(WireFormatError):
        Evidence.from_bytes(b"EMEX" + data[4:])
    with pytest.raises(WireFormatError):
        Evidence.from_bytes(data[:-1])
    with pytest.raises(InvalidEvidence, match="over 16384"):
        Evidence.from_bytes(data + bytes(16384))


def _store(tmp: Path) -> ProxyStore:
    return ProxyStore(tmp / "proxy.sqlite3", b"\x05" * 32)


def test_rollback_undoes_orphaned_blocks(tmp_path: Path) -> None:
    store = _store(tmp_path)
    kfrag = StoredKfrag(b"k", b"v" * 33, b"d" * 33, b"r" * 33)
    with store.transaction() as tx:
        for pid, block in ((b"\x01" * 32, 10), (b"\x02" * 32, 20)):
            store.put_policy(tx, PolicyRecord(pid, "0xp", "0xg", b"t", 0, 2, ("0xa",), block))
            store.put_kfrag(tx, pid, kfrag)
        store.revoke_policy(tx, b"\x01" * 32, 21)
        store.put_entry(tx, EntryRecord(b"\x03" * 32, "0xp", b"t", b"r", 12))
        store.put_entry(tx, EntryRecord(b"\x04" * 32, "0xp", b"t", b"r", 19))
        for n in (10, 15, 20, 21):
            store.record_block(tx, n, bytes([n]) * 32)
        store.set_cursor(tx, 21)
    undone = store.rollback(15)
    assert undone.dropped_policies == (b"\x02" * 32,)
    assert undone.unrevoked_policies == (b"\x01" * 32,)
    assert undone.dropped_entries == 1
    assert store.cursor() == 15
    assert [n for n, _ in store.recent_blocks()] == [15, 10]
    assert store.policy(b"\x02" * 32) is None and store.kfrag(b"\x02" * 32) is None
    revived = store.policy(b"\x01" * 32)
    assert revived is not None and revived.revoked_block is None
    # The kfrag the revocation deleted is not resurrected: the proxy fails closed.
    assert store.kfrag(b"\x01" * 32) is None
    assert set(store.entries([b"\x03" * 32, b"\x04" * 32])) == {b"\x03" * 32}
    store.close()


def test_repeat_digest_is_kept_with_the_nonce_and_layout_2_is_upgraded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.journal_many([Serve(b"\x01" * 32, "0xg", (), 1, nonce=7, deadline=9, digest=b"D" * 32)])
    assert store.nonce_digest("0xg", 7) == b"D" * 32
    assert store.nonce_digest("0xg", 8) is None
    store.close()
    # Make it a layout-2 database (no digest column, no block table) and reopen it.
    db = sqlite3.connect(tmp_path / "proxy.sqlite3")
    db.execute("ALTER TABLE nonces DROP COLUMN digest")
    db.execute("DROP TABLE blocks")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.commit()
    db.close()
    store = _store(tmp_path)
    assert store.nonce_digest("0xg", 7) == b""  # spent before the upgrade: no digest known
    assert store.recent_blocks() == []
    store.close()
    db = sqlite3.connect(tmp_path / "proxy.sqlite3")
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("4",)
    db.close()


def test_layout_3_is_upgraded_with_the_emergency_columns(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.close()
    # Make it a layout-3 database (no emergency columns or opt-in table) and reopen it.
    db = sqlite3.connect(tmp_path / "proxy.sqlite3")
    for column in ("declaration_id", "tag", "proxies"):
        db.execute(f"ALTER TABLE journal DROP COLUMN {column}")
    db.execute("DROP TABLE emergency_policies")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.commit()
    db.close()
    store = _store(tmp_path)
    store.journal_many(
        [Serve(b"\x02" * 32, "0xc", (), 1, nonce=1, deadline=9, declaration_id=4, tag=b"t" * 32)]
    )
    (entry,) = store.unbatched(10)
    assert (entry.declaration_id, entry.tag) == (4, b"t" * 32)
    assert store.emergency_policy("0x" + "00" * 20) is None
    store.close()
