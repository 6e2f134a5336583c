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
    │   │   └── PrescriptionRefused the Prescriptions contract refused (fills used, expired…)
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
    ├── JournalError                an interrupted write needs ``recover()``
    └── RotationInterrupted         a key rotation stopped part way; the same call resumes
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from emrshare.types import FhirProblem

# fmt: off
__all__ = [
    "AccessDenied", "AmbiguousId", "BlobNotFound", "ChainError", "ClaimRefused",
    "ConfigurationError",
    "ContractRevert", "CryptoError", "DecryptionError", "DeploymentError", "EmergencyRefused",
    "EmrShareError", "GrantExpired", "GrantRevoked", "GuardianshipEnded", "IndexIntegrityError",
    "IntegrityError", "InvalidBackup", "InvalidCategory", "InvalidEvidence", "InvalidFhir",
    "InvalidInput", "InvalidMediaType", "InvalidText", "JournalError", "KeystoreError",
    "LocalStateError", "MixedFhirVersions", "NonceTooLow", "NotAdmin", "NotDelegated", "NotFound",
    "NotGrantee", "PatientNotFound", "PrescriptionForged", "PrescriptionRefused", "ProfileExists",
    "ProfileNotFound", "RecordNotFound", "RelayError", "ReplicationError", "StorageError",
    "StoreUnavailable", "TransactionFailed", "TransactionMinedFailed", "Unavailable",
    "UnknownCategory", "UnknownPurpose", "UnsupportedVersion", "VerificationError",
    "WireFormatError",
]
# fmt: on


class EmrShareError(Exception):
    """Root of every error raised by emrshare."""


class ConfigurationError(EmrShareError):
    """Configuration, a profile, a required tool or a file is missing or invalid."""


class InvalidInput(ConfigurationError, ValueError):
    """An argument a caller passed is malformed: an id that is not 32 bytes of hex, a
    duration, a role or a threshold out of range. The message names the argument and the
    accepted form."""


class NotFound(InvalidInput):
    """A well-formed identifier names nothing: no such member, grant, request or profile."""


class ProfileExists(InvalidInput):
    """A local profile of that name is already in the data directory (``name``)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class PatientNotFound(NotFound):
    """Valid words or shares whose patient (``address``) has no profile and no state on
    this network: another network, a mistyped passphrase, or a patient never registered."""

    def __init__(self, address: str, message: str) -> None:
        self.address = address
        super().__init__(message)


class ProfileNotFound(NotFound):
    """No local profile of that name in the data directory. ``name`` is the name asked
    for, ``known`` the profiles there are, ``suggestion`` the closest known name (a
    typo's likely meaning) or ``None``, and ``reference`` tells a name given for another
    identity (a patient to act on) from the profile to act as."""

    def __init__(
        self,
        name: str,
        message: str,
        *,
        known: tuple[str, ...] = (),
        suggestion: str | None = None,
        reference: bool = False,
    ) -> None:
        self.name = name
        self.known = known
        self.suggestion = suggestion
        self.reference = reference
        super().__init__(message)


class RecordNotFound(NotFound):
    """No record with that id is in the patient's index (or in the categories the caller
    can read). ``record_id`` is the id asked for."""

    def __init__(self, record_id: object, message: str) -> None:
        self.record_id = str(record_id)
        super().__init__(message)


class AmbiguousId(InvalidInput):
    """An id prefix (8 or more hex digits, ``prefix``) matches more than one id the caller
    can list (``candidates``, full ``0x…`` ids): give more digits, or the full id."""

    def __init__(self, prefix: str, candidates: Sequence[str], message: str) -> None:
        self.prefix = prefix
        self.candidates = tuple(candidates)
        super().__init__(message)


class UnknownCategory(InvalidInput):
    """A category name that is neither in the vocabulary (:mod:`emrshare.categories`), an
    alias of one, nor a category the caller already uses. ``name`` is the name given,
    ``suggestion`` the closest known category (or ``None``)."""

    def __init__(self, name: str, suggestion: str | None) -> None:
        self.name = name
        self.suggestion = suggestion
        near = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(
            f"unknown category {name!r}{near} (emrshare.categories.CATEGORIES lists the "
            "categories; a new one must be asked for explicitly, with new_category=True)"
        )


class UnknownPurpose(InvalidInput):
    """Not a FHIR PurposeOfUse code (:data:`emrshare.categories.PURPOSES`). ``suggestion``
    is the closest code (or ``None``)."""

    def __init__(self, purpose: str, suggestion: str | None) -> None:
        self.purpose = purpose
        self.suggestion = suggestion
        near = f"; did you mean {suggestion}?" if suggestion else ""
        super().__init__(
            f"{purpose!r} is not a FHIR PurposeOfUse code{near} (e.g. TREAT, ETREAT, "
            "HPAYMT, HOPERAT, HRESCH, PUBHLTH)"
        )


class InvalidFhir(InvalidInput):
    """FHIR input refused: each resource is a :class:`~emrshare.types.FhirProblem` in
    ``problems`` (file, place, ``Type/id``, element path, reason; the message names the
    first). Nothing was written: fix them, or import with ``on_invalid="skip"``."""

    def __init__(self, problems: Sequence[FhirProblem], message: str | None = None) -> None:
        self.problems = tuple(problems)
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        shown = "; ".join(str(p) for p in self.problems[:3]) + more
        super().__init__(
            message
            or f"{len(self.problems)} FHIR resource(s) refused: {shown}; fix them, or import "
            "with on_invalid='skip' to write the others"
        )


class MixedFhirVersions(InvalidFhir):
    """Resources only one FHIR version accepts beside resources only another accepts
    (``problems`` names the minority): import each version on its own, naming it."""


class LocalStateError(ConfigurationError):
    """A local file or database (profile, patient state, journal, proxy database, devnet
    state) is damaged, of the wrong shape, unreadable, or not a plain file we own. ``path``
    is the file. Nothing was written to it: restore it from a backup or move it aside
    (emrshare then starts afresh or re-derives what it can from the chain)."""

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        super().__init__(message)


class InvalidCategory(ConfigurationError, ValueError):
    """A category name is empty, not NFC, longer than 64 UTF-8 bytes or holds control,
    format (bidi, zero-width) or separator characters. Choose a plain name such as
    ``lab-results``."""


class InvalidMediaType(ConfigurationError, ValueError):
    """A media type is empty, longer than 127 bytes or not printable ASCII."""


class InvalidText(ConfigurationError, ValueError):
    """Free text (an access request's reason) holds control, format or separator
    characters, which could rewrite what the reader's terminal shows."""


class CryptoError(EmrShareError):
    """A cryptographic operation failed."""


class VerificationError(CryptoError):
    """A signature, key fragment, capsule fragment or policy binding did not verify."""


class PrescriptionForged(VerificationError):
    """A prescription record fails a pharmacy's checks; ``reason``: ``not_a_prescription``,
    ``unknown_commitment``, ``wrong_prescriber``, ``not_prescriber_at_issue``,
    ``wrong_patient`` or ``terms_differ``. Do not dispense it."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class InvalidEvidence(VerificationError):
    """Evidence against a proxy does not prove it misbehaved (malformed, not signed by
    the proxy or the grantee, keys other than the grant's, or the cfrag verifies)."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed. The message never says which check failed (wrong
    key, tampering, truncation, reordering): like Fernet's ``InvalidToken``, one error."""

    def __init__(
        self,
        message: str = "decryption failed: the data was tampered with, "
        "truncated, or the key is wrong",
    ) -> None:
        super().__init__(message)


class KeystoreError(CryptoError):
    """A keystore could not be opened: wrong password, tampered or unreadable file."""


class WireFormatError(EmrShareError):
    """Bytes do not parse as the format they claim to be."""


class UnsupportedVersion(WireFormatError):
    """A known format carries a major version this release cannot read."""


class InvalidBackup(WireFormatError):
    """A mnemonic or a set of SLIP-39 shares that restores no master secret. ``reason``:
    ``words`` (not BIP-39 / SLIP-39 words, a bad checksum or word count), ``too_few``,
    ``mixed`` (shares of different backups), ``digest`` (the shares do not combine)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class StorageError(EmrShareError):
    """A storage backend failed."""


class BlobNotFound(StorageError):
    """No blob or block is stored under the requested CID."""

    def __init__(self, cid: str, message: str | None = None) -> None:
        self.cid = cid
        super().__init__(
            message
            or f"no blob stored under CID {cid}; check the CID or "
            "fetch it from a replica that pinned it"
        )


class IntegrityError(StorageError):
    """Stored bytes do not hash to their CID (corruption or tampering)."""

    def __init__(self, cid: str, message: str | None = None) -> None:
        self.cid = cid
        super().__init__(
            message
            or f"block {cid} failed its integrity check; the store is "
            "corrupted or was tampered with: restore it from a replica"
        )


class StoreUnavailable(StorageError):
    """A storage backend could not be reached."""


class ReplicationError(StorageError):
    """Fewer than the required number of replicas stored (or pinned) a blob.

    ``failures`` maps each failed replica to why it failed; ``needed`` and ``got`` count
    the replicas required and the ones that succeeded.
    """

    def __init__(
        self, message: str, failures: Mapping[str, str] | None = None, needed: int = 0, got: int = 0
    ) -> None:
        self.failures: dict[str, str] = dict(failures or {})
        self.needed = needed
        self.got = got
        super().__init__(message)


class ChainError(EmrShareError):
    """An interaction with the chain failed."""


class ContractRevert(ChainError):
    """A contract call reverted. ``name`` is the decoded custom error
    (``"RecordIndex_NotAuthorized"``), ``args`` its decoded arguments by name; ``name`` is
    ``"Error"`` for a ``require`` string and ``"Panic"`` for an assertion/overflow, and
    ``"unknown"`` when the revert data could not be decoded."""

    def __init__(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        message: str | None = None,
        data: bytes = b"",
    ) -> None:
        self.name = name
        self.args_by_name: dict[str, Any] = dict(args or {})
        self.data = data
        if message is None:
            rendered = ", ".join(f"{k}={_short(v)}" for k, v in self.args_by_name.items())
            message = f"contract reverted with {name}({rendered})"
        super().__init__(message)


def _short(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        h = bytes(value).hex()
        return "0x" + (h if len(h) <= 16 else h[:16] + "…")
    return repr(value) if isinstance(value, str) else str(value)


class ClaimRefused(ContractRevert):
    """The Claims contract refused (``name``: ``Claims_NotInsurer`` …; ``args_by_name``)."""


class EmergencyRefused(ContractRevert):
    """The Emergency contract refused a break-glass step (``name``: which custom error)."""


class PrescriptionRefused(ContractRevert):
    """The Prescriptions contract refused (``name``: ``Prescriptions_AlreadyDispensed`` …)."""


class TransactionFailed(ChainError):
    """A transaction was dropped, timed out waiting for a receipt, or failed."""


class TransactionMinedFailed(TransactionFailed):
    """A transaction was mined with status 0 and its revert could not be decoded.
    Typically it ran out of gas: nothing it would have written was written, and its nonce
    is spent. ``tx_hash``, ``block_number`` and ``gas_used`` say which and where."""

    def __init__(self, message: str, *, tx_hash: bytes, block_number: int, gas_used: int) -> None:
        self.tx_hash = tx_hash
        self.block_number = block_number
        self.gas_used = gas_used
        super().__init__(message)


class NonceTooLow(TransactionFailed):
    """The node refused a transaction's nonce as already used: another process sent with
    the same key (a crashed writer, the CLI beside a library). The client re-reads the
    account's nonce before raising, so sending again succeeds."""


class RelayError(ChainError):
    """A relayed patient operation could not be brought on chain: the relay refused it,
    could not be reached, or said it sent something the chain does not hold.

    ``reason`` is machine-readable (``"unreachable"``, ``"rate_limited"``, ``"refused"``,
    ``"not_landed"``, …). Nothing was done twice: the same call again is safe.
    """

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after  # seconds the relay asked to wait (``rate_limited``)
        super().__init__(message)


class DeploymentError(ChainError):
    """Contracts are missing, or the deployment file does not match the chain."""


class IndexIntegrityError(ChainError):
    """Index events read from a node do not form the patient's hash chain (missing,
    reordered or forged): query another node."""


class AccessDenied(EmrShareError):
    """The chain or the proxies refused access; ``reasons`` maps a proxy (or ``"chain"``)
    to the machine-readable reason it gave."""

    def __init__(self, message: str, reasons: Mapping[str, str] | None = None) -> None:
        self.reasons: dict[str, str] = dict(reasons or {})
        super().__init__(message)


class GrantRevoked(AccessDenied):
    """The grant was revoked; ask the patient for a new one."""


class GrantExpired(AccessDenied):
    """The grant expired by chain time; ask the patient to renew it."""


class NotAdmin(AccessDenied):
    """The account (``account``) asked to admit a member is not an active consortium
    admin. Nothing was created, funded or sent."""

    def __init__(self, account: str) -> None:
        self.account = account
        super().__init__(
            f"{account} is not a consortium admin; admit members with an admin's key",
            {"chain": "not admin"},
        )


class GuardianshipEnded(AccessDenied):
    """The guardian's guardianship was withdrawn or its date passed (``reasons["chain"]``)."""


class NotDelegated(AccessDenied):
    """A guardian may only grant, revoke and answer requests in the patient's name."""


class NotGrantee(AccessDenied):
    """The caller is not the grantee of that policy."""


class Unavailable(EmrShareError):
    """Too few proxies answered to meet the threshold; ``failures`` maps each failed
    proxy to why it failed (down, timeout, bad fragment)."""

    def __init__(
        self, message: str, failures: Mapping[str, str] | None = None, needed: int = 0, got: int = 0
    ) -> None:
        self.failures: dict[str, str] = dict(failures or {})
        self.needed = needed
        self.got = got
        super().__init__(message)


class JournalError(EmrShareError):
    """A journaled write was interrupted; the facade's ``recover()`` finishes it (the
    CLI's ``emrshare recover``)."""


class RotationInterrupted(EmrShareError):
    """A patient's master-secret rotation stopped part way (``step`` of ``total`` done);
    the same call (``Patient.rotate``, the CLI's ``emrshare rotate``) resumes it."""

    def __init__(self, message: str, step: int = 0, total: int = 0) -> None:
        self.step = step
        self.total = total
        super().__init__(message)
