"""The one ``BlobStore`` test suite every backend runs (subclass it, provide ``store``).

Backends: LocalStore (both profiles) and ReplicatedStore here in tests/unit/storage;
KuboStore (against the labelled Kubo RPC test double, and a real daemon when
EMRSHARE_KUBO_API is set) in tests/integration/storage.
"""

from __future__ import annotations

import io
import random

import pytest

from emrshare.errors import BlobNotFound, WireFormatError
from emrshare.storage import BlobStat, BlobStore, compute_cid, read_all
from emrshare.storage.cid import DAG_PB, CidInfo
from emrshare.types import Cid

# A CID nobody stored (a dag-pb CID over the bytes "absent").
ABSENT = CidInfo.for_block(b"absent", DAG_PB, 0).cid


def payload(n: int, seed: int = 7) -> bytes:
    return random.Random(seed * 1_000_003 + n).randbytes(n)


class BlobStoreContract:
    """Behaviour shared by every backend. Subclasses define the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> BlobStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def profile_cid(self, store: BlobStore, data: bytes) -> Cid:
        return compute_cid(data, store.profile)  # type: ignore[attr-defined]

    def test_is_a_blobstore(self, store: BlobStore) -> None:
        assert isinstance(store, BlobStore)

    @pytest.mark.parametrize("size", [0, 1, 1000, 262_144, 262_145, 1_048_577, 3_000_000])
    def test_put_get_round_trip(self, store: BlobStore, size: int) -> None:
        data = payload(size)
        cid = store.put(data)
        assert cid == self.profile_cid(store, data)
        assert read_all(store, cid) == data

    def test_put_stream_equals_put_bytes(self, store: BlobStore) -> None:
        data = payload(700_001)
        from_stream = store.put(io.BytesIO(data))
        from_iter = store.put(iter([data[:5], data[5:300_000], data[300_000:]]))
        assert from_stream == from_iter == store.put(data)

    def test_get_streams_in_pieces(self, store: BlobStore) -> None:
        data = payload(2_000_000)
        pieces = list(store.get(store.put(data)))
        assert len(pieces) > 1
        assert b"".join(pieces) == data

    def test_get_v1_form_of_same_dag(self, store: BlobStore) -> None:
        data = payload(600_000)
        cid = store.put(data)
        assert read_all(store, CidInfo.parse(cid).v1().cid) == data

    def test_missing_blob(self, store: BlobStore) -> None:
        assert not store.has(ABSENT)
        with pytest.raises(BlobNotFound) as err:
            read_all(store, ABSENT)
        assert ABSENT in str(err.value)

    def test_bad_cid_string(self, store: BlobStore) -> None:
        with pytest.raises(WireFormatError):
            read_all(store, Cid("not-a-cid"))

    def test_has_and_stat(self, store: BlobStore) -> None:
        data = payload(300_000)
        cid = store.put(data)
        assert store.has(cid)
        assert store.stat(cid) == BlobStat(cid, len(data), True)
        with pytest.raises(BlobNotFound):
            store.stat(ABSENT)

    def test_pin_unpin_and_gc(self, store: BlobStore) -> None:
        keep = store.put(payload(500_000, seed=1))
        drop = store.put(payload(500_000, seed=2))
        loose = store.put(payload(10, seed=3), pin=False)
        assert keep in store.pins()
        assert drop in store.pins()
        assert loose not in store.pins()
        store.unpin(drop)
        store.unpin(drop)  # twice is fine
        assert not store.stat(drop).pinned
        result = store.gc()
        assert result.removed_blocks >= 2
        assert not store.has(drop)
        assert not store.has(loose)
        assert read_all(store, keep) == payload(500_000, seed=1)
        store.pin(keep)  # re-pinning is idempotent
        assert store.stat(keep).pinned

    def test_unpin_orphans(self, store: BlobStore) -> None:
        on_chain = store.put(payload(100, seed=11))
        orphan = store.put(payload(100, seed=12))
        unrelated = store.put(payload(100, seed=13))
        # The journal names the CIDs it wrote; only those not on chain are unpinned.
        removed = store.unpin_orphans([on_chain], candidates=[on_chain, orphan])
        assert removed == [orphan]
        pins = store.pins()
        assert on_chain in pins
        assert unrelated in pins
        assert orphan not in pins
        # v0 and v1 spellings name the same blob.
        v1 = CidInfo.parse(unrelated).v1().cid
        assert store.unpin_orphans([v1, on_chain]) == []
