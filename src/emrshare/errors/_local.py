"""The errors a caller, a configuration or local data cause (see :mod:`emrshare.errors`)."""

from __future__ import annotations

from collections.abc import Sequence

from emrshare.types import FhirProblem

__all__ = [
    "AmbiguousId",
    "ConfigurationError",
    "CryptoError",
    "DecryptionError",
    "EmrShareError",
    "InvalidBackup",
    "InvalidCategory",
    "InvalidEvidence",
    "InvalidFhir",
    "InvalidInput",
    "InvalidMediaType",
    "InvalidText",
    "KeystoreError",
    "LocalStateError",
    "MixedFhirVersions",
    "NotFound",
    "PatientNotFound",
    "PrescriptionForged",
    "ProfileExists",
    "ProfileNotFound",
    "RecordNotFound",
    "UnknownCategory",
    "UnknownPurpose",
    "UnsupportedVersion",
    "VerificationError",
    "WireFormatError",
]


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
    state) is damaged, of the wrong shape, unreadable, or not a plain file we own.

    ``path`` is the file. Nothing was written to it: restore it from a backup or move it
    aside (emrshare then starts afresh or re-derives what it can from the chain).
    """

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
