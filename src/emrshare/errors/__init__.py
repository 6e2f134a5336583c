"""The emrshare error tree.

Every error a caller can cause or meet is an :class:`EmrShareError`. Third-party errors
are re-raised inside this tree with ``raise ... from exc``. Messages say what happened
and what to do next; they never contain secret material.

::

    EmrShareError
    ├── ConfigurationError          bad or missing configuration, profile, tool or file
    │   ├── InvalidInput            an argument is malformed (an id, a duration, a role)
    │   │   ├── NotFound            a well-formed id names nothing
    │   │   │   ├── RecordNotFound  no such record in the patient's index
    │   │   │   └── PatientNotFound a backup's patient is not registered on this network
    │   │   ├── AmbiguousId         an id prefix matches more than one record
    │   │   ├── UnknownCategory     a category outside the vocabulary (did you mean …)
    │   │   ├── UnknownPurpose      not a FHIR PurposeOfUse code (did you mean …)
    │   │   └── InvalidFhir         FHIR input refused: each problem's file, place, id, path
    │   │       └── MixedFhirVersions  one import holds resources of different FHIR versions
    │   ├── LocalStateError         a file or database in a data dir is damaged or unsafe
    │   ├── InvalidCategory         not a usable category name (also a ValueError)
    │   ├── InvalidMediaType        not a usable media type (also a ValueError)
    │   └── InvalidText             free text (a request reason) with control characters
    ├── CryptoError
    │   ├── VerificationError       a signature, kfrag, cfrag or binding did not verify
    │   │   ├── InvalidEvidence     a proxy report does not prove misbehaviour
    │   │   └── PrescriptionForged  a prescription fails its checks (``reason``)
    │   ├── DecryptionError         authenticated decryption failed (deliberately vague)
    │   └── KeystoreError           keystore unreadable, tampered with, or wrong password
    ├── WireFormatError             bytes that do not parse as the named format
    │   ├── UnsupportedVersion      a known format with an unknown major version
    │   └── InvalidBackup           words or SLIP-39 shares that restore no secret (``reason``)
    ├── StorageError
    │   ├── BlobNotFound            no blob/block under that CID
    │   ├── IntegrityError          stored bytes do not match their CID
    │   ├── StoreUnavailable        a storage backend could not be reached
    │   └── ReplicationError        fewer replicas than required stored or pinned a blob
    ├── ChainError
    │   ├── ContractRevert          a call reverted; carries the decoded custom error
    │   │   ├── ClaimRefused        the Claims contract refused (not the insurer, twice…)
    │   │   ├── EmergencyRefused    the Emergency contract refused a break-glass step
    │   │   ├── PrescriptionRefused the Prescriptions contract refused (fills used, expired…)
    │   │   ├── StudyRefused        the Studies contract refused (ended, not joined…)
    │   │   └── SupplyRefused       the DrugTrace contract refused (stock, recalled…)
    │   ├── TransactionFailed       a transaction was dropped, timed out or ran out of gas
    │   │   ├── TransactionMinedFailed  mined with status 0 and no decodable revert
    │   │   └── NonceTooLow         the node refused the nonce: another sender used the key
    │   ├── RelayError              a relayed patient operation did not land (``reason``)
    │   ├── DeploymentError         contracts missing or not matching the deployment file
    │   └── IndexIntegrityError     index events do not form the patient's hash chain
    ├── AccessDenied                the chain or the proxies say no
    │   ├── GrantRevoked
    │   ├── GrantExpired
    │   ├── NotAdmin                admitting members needs a consortium admin's key
    │   ├── GuardianshipEnded       a guardian's guardianship was withdrawn or has ended
    │   ├── NotDelegated            a guardian asked for what guardians may not do
    │   └── NotGrantee
    ├── Unavailable                 too few proxies answered to meet the threshold
    ├── StudyServiceError           a study's de-identification service refused or is down
    ├── JournalError                an interrupted write needs ``recover()``
    └── RotationInterrupted         a key rotation stopped part way; the same call resumes
"""

from __future__ import annotations

from emrshare.errors._local import (
    AmbiguousId,
    ConfigurationError,
    CryptoError,
    DecryptionError,
    EmrShareError,
    InvalidBackup,
    InvalidCategory,
    InvalidEvidence,
    InvalidFhir,
    InvalidInput,
    InvalidMediaType,
    InvalidText,
    KeystoreError,
    LocalStateError,
    MixedFhirVersions,
    NotFound,
    PatientNotFound,
    PrescriptionForged,
    ProfileExists,
    ProfileNotFound,
    RecordNotFound,
    UnknownCategory,
    UnknownPurpose,
    UnsupportedVersion,
    VerificationError,
    WireFormatError,
)
from emrshare.errors._remote import (
    AccessDenied,
    BlobNotFound,
    ChainError,
    ClaimRefused,
    ContractRevert,
    DeploymentError,
    EmergencyRefused,
    GrantExpired,
    GrantRevoked,
    GuardianshipEnded,
    IndexIntegrityError,
    IntegrityError,
    JournalError,
    NonceTooLow,
    NotAdmin,
    NotDelegated,
    NotGrantee,
    PrescriptionRefused,
    RelayError,
    ReplicationError,
    RotationInterrupted,
    StorageError,
    StoreUnavailable,
    StudyRefused,
    StudyServiceError,
    SupplyRefused,
    TransactionFailed,
    TransactionMinedFailed,
    Unavailable,
)

# fmt: off
__all__ = [
    "AccessDenied", "AmbiguousId", "BlobNotFound", "ChainError", "ClaimRefused",
    "ConfigurationError", "ContractRevert", "CryptoError", "DecryptionError", "DeploymentError",
    "EmergencyRefused", "EmrShareError", "GrantExpired", "GrantRevoked", "GuardianshipEnded",
    "IndexIntegrityError", "IntegrityError", "InvalidBackup", "InvalidCategory", "InvalidEvidence",
    "InvalidFhir", "InvalidInput", "InvalidMediaType", "InvalidText", "JournalError",
    "KeystoreError", "LocalStateError", "MixedFhirVersions", "NonceTooLow", "NotAdmin",
    "NotDelegated", "NotFound", "NotGrantee", "PatientNotFound", "PrescriptionForged",
    "PrescriptionRefused", "ProfileExists", "ProfileNotFound", "RecordNotFound", "RelayError",
    "ReplicationError", "RotationInterrupted", "StorageError", "StoreUnavailable", "StudyRefused",
    "StudyServiceError", "SupplyRefused", "TransactionFailed", "TransactionMinedFailed",
    "Unavailable", "UnknownCategory", "UnknownPurpose", "UnsupportedVersion", "VerificationError",
    "WireFormatError",
]
# fmt: on
