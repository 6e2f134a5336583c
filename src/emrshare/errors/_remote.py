"""The errors of storage, the chain, the proxies and the services (see
:mod:`emrshare.errors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emrshare.errors._local import EmrShareError

__all__ = [
    "AccessDenied",
    "BlobNotFound",
    "ChainError",
    "ClaimRefused",
    "ContractRevert",
    "DeploymentError",
    "EmergencyRefused",
    "GrantExpired",
    "GrantRevoked",
    "GuardianshipEnded",
    "IndexIntegrityError",
    "IntegrityError",
    "JournalError",
    "NonceTooLow",
    "NotAdmin",
    "NotDelegated",
    "NotGrantee",
    "PrescriptionRefused",
    "RelayError",
    "ReplicationError",
    "RotationInterrupted",
    "StorageError",
    "StoreUnavailable",
    "StudyRefused",
    "StudyServiceError",
    "SupplyRefused",
    "TransactionFailed",
    "TransactionMinedFailed",
    "Unavailable",
]


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
    """A contract call reverted.

    ``name`` is the decoded custom error (``"RecordIndex_NotAuthorized"``), ``args`` its
    decoded arguments by name; ``name`` is ``"Error"`` for a ``require`` string and
    ``"Panic"`` for an assertion/overflow, and ``"unknown"`` when the revert data could
    not be decoded.
    """

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


class StudyRefused(ContractRevert):
    """The Studies contract refused (``name``: ``Studies_Ended``, ``Studies_NotJoined`` …)."""


class SupplyRefused(ContractRevert):
    """The DrugTrace contract refused (``name``: ``Trace_InsufficientStock``,
    ``Trace_Recalled`` …; ``args_by_name``)."""


class TransactionFailed(ChainError):
    """A transaction was dropped, timed out waiting for a receipt, or failed."""


class TransactionMinedFailed(TransactionFailed):
    """A transaction was mined with status 0 and its revert could not be decoded.

    Typically it ran out of gas: nothing it would have written was written, and its nonce
    is spent. ``tx_hash``, ``block_number`` and ``gas_used`` say which and where.
    """

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


class StudyServiceError(EmrShareError):
    """A study's de-identification service refused a request or could not be reached.

    ``reason`` is machine-readable (``"unreachable"``, ``"not_granted"``, ``"bad_proof"``,
    ``"study_not_open"``, ``"not_researcher"``, ``"busy"``, ``"not_landed"`` …); the
    message says what to do. Nothing was done twice: the same call again is safe.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
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
