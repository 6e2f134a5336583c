"""emrshare: patient-owned sharing of encrypted medical records.

Records are encrypted and stored in IPFS; an EVM chain holds each patient's encrypted
index, grants, revocations and access log; Umbral threshold proxy re-encryption lets a
patient grant one category of records to a hospital without exposing a secret key.
"""

from emrshare.errors import (
    AccessDenied,
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
    NotFound,
    NotGrantee,
    RecordNotFound,
    ReplicationError,
    StorageError,
    StoreUnavailable,
    TransactionFailed,
    TransactionMinedFailed,
    Unavailable,
    UnsupportedVersion,
    VerificationError,
    WireFormatError,
)

__version__ = "0.1.0"

# The facades pull in web3, umbral and the proxy client: import them on first use, so
# `import emrshare` (and `emrshare.errors`) stays light for the layers below.
_LAZY = {
    "ConsortiumAdmin": "emrshare.roles",
    "Network": "emrshare.network",
    "Patient": "emrshare.roles",
    "Provider": "emrshare.roles",
    "Requester": "emrshare.roles",
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
    "BlobNotFound",
    "ChainError",
    "ConfigurationError",
    "ConsortiumAdmin",
    "ContractRevert",
    "CryptoError",
    "DecryptionError",
    "DeploymentError",
    "EmrShareError",
    "GrantExpired",
    "GrantRevoked",
    "IndexIntegrityError",
    "IntegrityError",
    "InvalidCategory",
    "InvalidEvidence",
    "InvalidInput",
    "InvalidMediaType",
    "InvalidText",
    "JournalError",
    "KeystoreError",
    "LocalStateError",
    "Network",
    "NonceTooLow",
    "NotFound",
    "NotGrantee",
    "Patient",
    "Provider",
    "RecordNotFound",
    "ReplicationError",
    "Requester",
    "StorageError",
    "StoreUnavailable",
    "TransactionFailed",
    "TransactionMinedFailed",
    "Unavailable",
    "UnsupportedVersion",
    "VerificationError",
    "WireFormatError",
    "__version__",
]
