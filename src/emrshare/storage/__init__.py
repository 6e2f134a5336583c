"""Content-addressed storage: the ``BlobStore`` protocol and its backends.

* :class:`LocalStore` — embedded on-disk block store; CIDs identical to Kubo's ``ipfs add``.
* :class:`KuboStore` — a Kubo daemon or IPFS Cluster proxy over the HTTP RPC API.
* :class:`ReplicatedStore` — n replicas, writes succeed at k pins, reads verify.
* :func:`export_car` / :func:`import_car` — CARv1 to move DAGs between them.

See ``docs/storage.md``.
"""

from emrshare.storage.base import BlobSource, BlobStat, BlobStore, GcResult, read_all
from emrshare.storage.car import CarReader, export_car, import_car
from emrshare.storage.cid import CidInfo, parse_cid, to_v1
from emrshare.storage.kubo import KuboStore
from emrshare.storage.local import LocalStore
from emrshare.storage.replicated import ReplicaReport, ReplicatedStore
from emrshare.storage.unixfs import (
    DEFAULT_PROFILE,
    PROFILES,
    UNIXFS_V1_2025,
    UnixfsProfile,
    compute_cid,
)

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNIXFS_V1_2025",
    "BlobSource",
    "BlobStat",
    "BlobStore",
    "CarReader",
    "CidInfo",
    "GcResult",
    "KuboStore",
    "LocalStore",
    "UnixfsProfile",
    "ReplicaReport",
    "ReplicatedStore",
    "compute_cid",
    "export_car",
    "import_car",
    "parse_cid",
    "read_all",
    "to_v1",
]
