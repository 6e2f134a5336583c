"""emrshare: patient-owned sharing of encrypted medical records.

Records are encrypted and stored in IPFS; an EVM chain holds each patient's encrypted
index, grants, revocations and access log; Umbral threshold proxy re-encryption lets a
patient grant one category of records to a hospital without exposing a secret key.
"""

from emrshare.categories import CATEGORIES, Category, normalize_category, normalize_purpose
from emrshare.errors import (
    AccessDenied,
    AmbiguousId,
    BlobNotFound,
    ChainError,
    ConfigurationError,
    ContractRevert,
    CryptoError,
    DecryptionError,
    DeploymentError,
    EmrShareError,
    GrantExpired,
    GrantRevoked,
    GuardianshipEnded,
    IndexIntegrityError,
    IntegrityError,
    InvalidCategory,
    InvalidEvidence,
    InvalidInput,
    InvalidMediaType,
    InvalidText,
    JournalError,
    KeystoreError,
    LocalStateError,
    NonceTooLow,
    NotAdmin,
    NotDelegated,
    NotFound,
    NotGrantee,
    ProfileExists,
    ProfileNotFound,
    RecordNotFound,
    ReplicationError,
    StorageError,
    StoreUnavailable,
    TransactionFailed,
    TransactionMinedFailed,
    Unavailable,
    UnknownCategory,
    UnknownPurpose,
    UnsupportedVersion,
    VerificationError,
    WireFormatError,
)

__version__ = "0.1.0"

# The facades pull in web3, umbral and the proxy client: import them on first use, so
# `import emrshare` (and `emrshare.errors`) stays light for the layers below.
_LAZY = {
    # the facades (the Async ones for code inside an event loop)
    "AsyncProvider": "emrshare.roles",
    "AsyncRequester": "emrshare.roles",
    "ConsortiumAdmin": "emrshare.roles",
    "Guardian": "emrshare.roles",
    "Patient": "emrshare.roles",
    "Provider": "emrshare.roles",
    "Requester": "emrshare.roles",
    # what they are built from
    "LocalNetwork": "emrshare.devnet",
    "MemberKeys": "emrshare.crypto",
    "Network": "emrshare.network",
    "NetworkConfig": "emrshare.network",
    "PatientKeys": "emrshare.crypto",
    "Role": "emrshare.chain",
    "StoreConfig": "emrshare.network",
    # what they return
    "AccessEvent": "emrshare.roles",
    "AccessRequestInfo": "emrshare.roles",
    "GrantInfo": "emrshare.roles",
    "GrantStatus": "emrshare.chain",
    "Operation": "emrshare.roles",
    "OperationResult": "emrshare.roles",
    "ReadEvent": "emrshare.roles",
    "RecordInfo": "emrshare.roles",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emrshare' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AccessDenied",
    "AccessEvent",
    "AccessRequestInfo",
    "AmbiguousId",
    "AsyncProvider",
    "AsyncRequester",
    "BlobNotFound",
    "CATEGORIES",
    "Category",
    "ChainError",
    "ConfigurationError",
    "ConsortiumAdmin",
    "ContractRevert",
    "CryptoError",
    "DecryptionError",
    "DeploymentError",
    "EmrShareError",
    "GrantExpired",
    "GrantInfo",
    "GrantRevoked",
    "Guardian",
    "GuardianshipEnded",
    "GrantStatus",
    "IndexIntegrityError",
    "IntegrityError",
    "InvalidCategory",
    "InvalidEvidence",
    "InvalidInput",
    "InvalidMediaType",
    "InvalidText",
    "JournalError",
    "KeystoreError",
    "LocalNetwork",
    "LocalStateError",
    "MemberKeys",
    "Network",
    "NetworkConfig",
    "NonceTooLow",
    "NotAdmin",
    "NotDelegated",
    "NotFound",
    "NotGrantee",
    "Operation",
    "OperationResult",
    "Patient",
    "PatientKeys",
    "ProfileExists",
    "ProfileNotFound",
    "Provider",
    "ReadEvent",
    "RecordInfo",
    "RecordNotFound",
    "ReplicationError",
    "Requester",
    "Role",
    "StorageError",
    "StoreConfig",
    "StoreUnavailable",
    "TransactionFailed",
    "TransactionMinedFailed",
    "Unavailable",
    "UnknownCategory",
    "UnknownPurpose",
    "UnsupportedVersion",
    "VerificationError",
    "WireFormatError",
    "normalize_category",
    "normalize_purpose",
    "__version__",
]
