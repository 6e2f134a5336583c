"""The shared BlobStore suite on the embedded store (both profiles) and on replicas of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from emrshare.storage import (
    DEFAULT_PROFILE,
    UNIXFS_V1_2025,
    BlobStore,
    LocalStore,
    ReplicatedStore,
    UnixfsProfile,
)
from tests.unit.storage.contract import BlobStoreContract


class TestLocalStoreDefault(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalStore(tmp_path / "store", DEFAULT_PROFILE)


class TestLocalStoreV1_2025(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalStore(tmp_path / "store", UNIXFS_V1_2025)


class TestLocalStoreTinyTree(BlobStoreContract):
    """Tiny chunks and fan-out make every test build a tree three or more levels deep."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalStore(tmp_path / "store", UnixfsProfile("tiny", 1, True, 4096, 3))


class TestReplicatedLocal(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        replicas = [LocalStore(tmp_path / f"r{i}") for i in range(3)]
        return ReplicatedStore(replicas, min_pins=2, names=["a", "b", "c"])
