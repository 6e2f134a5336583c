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
    JournalError,
    KeystoreError,
    NotGrantee,
    ReplicationError,
    StorageError,
    StoreUnavailable,
    TransactionFailed,
    Unavailable,
    UnsupportedVersion,
    VerificationError,
    WireFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "BlobNotFound",
    "ChainError",
    "ConfigurationError",
    "ContractRevert",
    "CryptoError",
    "DecryptionError",
    "DeploymentError",
    "EmrShareError",
    "GrantExpired",
    "GrantRevoked",
    "IndexIntegrityError",
    "IntegrityError",
    "JournalError",
    "KeystoreError",
    "NotGrantee",
    "ReplicationError",
    "StorageError",
    "StoreUnavailable",
    "TransactionFailed",
    "Unavailable",
    "UnsupportedVersion",
    "VerificationError",
    "WireFormatError",
    "__version__",
]
