"""A proxy indexes an entry by its capsule bytes' hash without parsing them; a request for
a capsule in another encoding of the same points is refused when it is parsed."""

from __future__ import annotations

import pytest
import umbral_pre
from eth_utils.crypto import keccak

from emrshare.chain import EntryAppended
from emrshare.errors import WireFormatError
from emrshare.proxy.chainview import IndexedCapsule
from emrshare.proxy.node._caches import ServiceCaches


def _entry(capsule: bytes, ciphertext: bytes) -> EntryAppended:
    sealed = b"EMSE\x01\x00" + len(capsule).to_bytes(2, "big") + capsule + ciphertext
    return EntryAppended(
        block_number=1,
        tx_hash=b"\0" * 32,
        log_index=0,
        patient="0x" + "11" * 20,
        tag=b"\1" * 32,
        author="0x" + "22" * 20,
        record_id=b"\3" * 32,
        sequence=0,
        head=b"\0" * 32,
        entry=sealed,
    )


def test_a_non_canonical_capsule_is_refused_at_its_request() -> None:
    capsule, ciphertext = umbral_pre.encrypt(umbral_pre.SecretKey.random().public_key(), b"e")
    raw = bytes(capsule)
    variant = raw[:1] + b"\xd9" + raw[2:]  # msgpack str8 for bin8: same length, same points
    assert bytes(umbral_pre.Capsule.from_bytes(variant)) == raw  # umbral-pre accepts it
    indexed = IndexedCapsule.from_event(_entry(variant, bytes(ciphertext)))
    assert indexed is not None and indexed.capsule_hash == keccak(variant)
    caches = ServiceCaches(None, None)  # type: ignore[arg-type]  # capsules only
    with pytest.raises(WireFormatError, match="canonical"):
        caches.capsule(indexed.capsule_hash, variant)
    good = IndexedCapsule.from_event(_entry(raw, bytes(ciphertext)))
    assert good is not None and bytes(caches.capsule(good.capsule_hash, raw)) == raw


def test_what_is_not_shaped_like_a_sealed_entry_is_not_indexed() -> None:
    ev = _entry(b"\0" * 104, b"x")  # a capsule length no capsule has
    assert IndexedCapsule.from_event(ev) is None
