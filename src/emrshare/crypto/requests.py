"""Sealed access requests and their answers: what a requester asks for, in a box.

An access request names a category, a purpose and a reason. None of that may appear on
chain: a hash of a category name is confirmed by trying a short list of names. So the
request body is encoded canonically, **padded to a fixed size** and sealed to the
patient's X25519 box key; the chain carries only the sealed bytes. The answer (approved
or denied, and which policies) is sealed the same way, twice: to the requester and to the
patient's own box key, so every device of the patient reads its own answers.

Formats (see ``docs/formats.md`` for the shared header rules)::

    request plaintext  = header("EMRQ" 1.0) || u16be(n) || CBOR[n] || zeros   (384 bytes)
        CBOR = [patient(20), requester(20), category, purpose, reason, created_at]
    sealed request     = seal(patient box key, "EMSR", request plaintext)     (444 bytes)

    answer plaintext   = header("EMRA" 1.0) || u16be(n) || CBOR[n] || zeros   (384 bytes)
        CBOR = [request_id, patient(20), requester(20), decision, [policy_id(32)...], created_at]
    answer blob        = header("EMAB" 1.0) || seal(requester, "EMSA", plaintext)
                                             || seal(patient,   "EMSA", plaintext)   (894 bytes)

Every sealed request, and every answer, has the same length whatever the category,
purpose, reason or decision, so the ciphertext length says nothing about them.

Opening checks that the inner patient, requester (and request id) equal the ones the
chain event carries: a sealed blob copied from another request is refused with
:class:`VerificationError`.

**Warning:** the boxes are anonymous (sealed boxes). Their origin comes from the chain:
the request's sender is the requester the event names, the answer's is the patient. A
box that is not sealed to the reader's key is a :class:`DecryptionError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from eth_utils.address import to_canonical_address
from nacl.public import PrivateKey, PublicKey

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare._text import sanitize, unsafe_chars
from emrshare.crypto._wire import (
    HEADER_SIZE,
    cbor_decode_list,
    cbor_encode,
    expect_bytes,
    expect_int,
    expect_str,
    header,
    pad,
    split_header,
    unpad,
)
from emrshare.crypto.keys import MAX_CATEGORY_BYTES, validate_category
from emrshare.crypto.sealing import open_sealed, seal
from emrshare.errors import (
    ConfigurationError,
    DecryptionError,
    InvalidInput,
    InvalidText,
    VerificationError,
    WireFormatError,
)
from emrshare.types import Address, PolicyId

__all__ = [
    "ANSWER_BLOB_SIZE",
    "MAX_ANSWER_POLICIES",
    "MAX_REASON_BYTES",
    "PADDED_SIZE",
    "SEALED_REQUEST_SIZE",
    "AccessAnswer",
    "AccessRequestBody",
    "Decision",
    "open_answer",
    "open_request",
    "policy_ids_for_answer",
    "seal_answer",
    "seal_request",
    "validate_purpose",
]

REQUEST_BRAND = b"EMRQ"
SEALED_REQUEST_BRAND = b"EMSR"
ANSWER_BRAND = b"EMRA"
SEALED_ANSWER_BRAND = b"EMSA"
ANSWER_BLOB_BRAND = b"EMAB"

#: Every request and answer plaintext is padded to exactly this many bytes.
PADDED_SIZE = 384
#: A request's reason may be at most this many UTF-8 bytes (the rest of the bucket holds
#: the longest category and purpose, so every valid request fits the same size).
MAX_REASON_BYTES = 200
#: The longest FHIR PurposeOfUse code accepted (the v3 codes are at most 13 letters).
MAX_PURPOSE_CHARS = 32
#: An answer lists at most this many policy ids (one per granted epoch).
MAX_ANSWER_POLICIES = 8

_SEAL_OVERHEAD = HEADER_SIZE + 48 + HEADER_SIZE  # outer header, X25519 pk + MAC, inner header
SEALED_REQUEST_SIZE = _SEAL_OVERHEAD + PADDED_SIZE
ANSWER_BLOB_SIZE = HEADER_SIZE + 2 * (_SEAL_OVERHEAD + PADDED_SIZE)

_PURPOSE = re.compile(rf"[A-Z]{{1,{MAX_PURPOSE_CHARS}}}")

Decision = Literal["approved", "denied"]
_DECISIONS = ("approved", "denied")


def validate_purpose(purpose: str) -> str:
    """``purpose`` if it is an upper-case FHIR PurposeOfUse code (``TREAT``, ``HPAYMT``,
    ``HRESCH``, ``ETREAT``, …), else a :class:`InvalidInput`."""
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise InvalidInput(
            f"{purpose!r} is not a FHIR PurposeOfUse code: use 1 to {MAX_PURPOSE_CHARS} "
            "upper-case letters A-Z such as TREAT, HPAYMT, HRESCH or ETREAT"
        )
    return purpose


def _category(category: str) -> str:
    try:
        return validate_category(category)
    except ValueError as exc:
        raise InvalidInput(f"invalid category {category!r}: {exc}") from None


def _pad(brand: bytes, body: bytes, what: str) -> bytes:
    return header(brand, 1) + pad(body, PADDED_SIZE - HEADER_SIZE, what)


def _unpad(data: bytes, brand: bytes, what: str) -> bytes:
    _, rest = split_header(data, brand, 1, what)
    return unpad(rest, PADDED_SIZE - HEADER_SIZE, what)


# ------------------------------------------------------------------------ requests


@dataclass(frozen=True, slots=True)
class AccessRequestBody:
    """What a requester asks a patient for (the plaintext of a sealed request)."""

    patient: Address
    requester: Address
    category: str
    purpose: str
    reason: str
    created_at: int

    def __post_init__(self) -> None:
        _category(self.category)
        validate_purpose(self.purpose)
        if not isinstance(self.reason, str):
            raise InvalidInput("the reason of an access request must be text")
        bad = unsafe_chars(self.reason)
        if bad:
            raise InvalidText(
                f"the reason holds control, format (bidi, zero-width) or separator "
                f"characters ({', '.join(bad[:4])}); the patient reads it in a terminal: "
                "write it as one line of visible text"
            )
        if len(self.reason.encode()) > MAX_REASON_BYTES:
            raise InvalidInput(
                f"the reason is {len(self.reason.encode())} UTF-8 bytes; an access request "
                f"carries at most {MAX_REASON_BYTES} (every request is padded to one size so "
                "its length reveals nothing): shorten it"
            )
        expect_int(self.created_at, "created_at")

    def to_bytes(self) -> bytes:
        """The padded plaintext (always :data:`PADDED_SIZE` bytes)."""
        body = cbor_encode(
            [
                _address_bytes(self.patient),
                _address_bytes(self.requester),
                self.category,
                self.purpose,
                self.reason,
                self.created_at,
            ]
        )
        return _pad(REQUEST_BRAND, body, "access request")

    @classmethod
    def from_bytes(cls, data: bytes) -> AccessRequestBody:
        what = "access request"
        f = cbor_decode_list(_unpad(data, REQUEST_BRAND, what), what, 6)
        raw_reason = expect_str(f[4], "reason", MAX_REASON_BYTES)
        if len(raw_reason.encode()) > MAX_REASON_BYTES:
            raise WireFormatError(f"{what}: the reason is longer than {MAX_REASON_BYTES} bytes")
        try:
            body = cls(
                patient=_checksum(expect_bytes(f[0], "patient", 20)),
                requester=_checksum(expect_bytes(f[1], "requester", 20)),
                category=expect_str(f[2], "category", MAX_CATEGORY_BYTES),
                purpose=expect_str(f[3], "purpose", MAX_PURPOSE_CHARS),
                reason="",
                created_at=expect_int(f[5], "created_at"),
            )
        except ConfigurationError as exc:
            raise WireFormatError(f"{what}: {exc}") from None
        # The requester chose the reason and the patient reads it: a hostile requester's
        # control characters (ESC sequences, bidi overrides) are shown as U+FFFD, not
        # obeyed. The sanitized text may exceed the seal-time byte limit, so it is set
        # after the checks.
        object.__setattr__(body, "reason", sanitize(raw_reason))
        return body


def seal_request(patient_box_key: PublicKey, body: AccessRequestBody) -> bytes:
    """Seal ``body`` to the patient's box key (always :data:`SEALED_REQUEST_SIZE` bytes)."""
    return seal(patient_box_key, SEALED_REQUEST_BRAND, body.to_bytes())


def open_request(
    sealed: bytes, patient_box_key: PrivateKey, *, patient: str, requester: str
) -> AccessRequestBody:
    """Open a sealed request found in the chain event of ``requester`` to ``patient``.

    Raises :class:`DecryptionError` (not sealed to this key, or tampered with),
    :class:`WireFormatError` and :class:`VerificationError` when the inner patient or
    requester differ from the event's (a box copied from another request).
    """
    body = AccessRequestBody.from_bytes(
        open_sealed(patient_box_key, SEALED_REQUEST_BRAND, sealed, what="sealed access request")
    )
    if body.patient != _cs(patient) or body.requester != _cs(requester):
        raise VerificationError(
            "this sealed access request names another patient or requester than its chain "
            "event (copied from another request); ignore it"
        )
    return body


# ------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class AccessAnswer:
    """A patient's answer to one access request (the plaintext of an answer blob)."""

    request_id: int
    patient: Address
    requester: Address
    decision: Decision
    policy_ids: tuple[PolicyId, ...]
    created_at: int

    def __post_init__(self) -> None:
        expect_int(self.request_id, "request_id")
        if self.decision not in _DECISIONS:
            raise InvalidInput(f"decision must be 'approved' or 'denied', not {self.decision!r}")
        if len(self.policy_ids) > MAX_ANSWER_POLICIES:
            raise InvalidInput(
                f"an answer names at most {MAX_ANSWER_POLICIES} policies, not "
                f"{len(self.policy_ids)}"
            )
        if self.decision == "denied" and self.policy_ids:
            raise InvalidInput("a denied request names no policies")
        for p in self.policy_ids:
            expect_bytes(bytes(p), "policy id", 32)
        expect_int(self.created_at, "created_at")

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_bytes(self) -> bytes:
        """The padded plaintext (always :data:`PADDED_SIZE` bytes)."""
        body = cbor_encode(
            [
                self.request_id,
                _address_bytes(self.patient),
                _address_bytes(self.requester),
                self.decision,
                [bytes(p) for p in self.policy_ids],
                self.created_at,
            ]
        )
        return _pad(ANSWER_BRAND, body, "access answer")

    @classmethod
    def from_bytes(cls, data: bytes) -> AccessAnswer:
        what = "access answer"
        f = cbor_decode_list(_unpad(data, ANSWER_BRAND, what), what, 6)
        if not isinstance(f[4], list):
            raise WireFormatError(f"{what}: policy ids must be a list")
        try:
            return cls(
                request_id=expect_int(f[0], "request_id"),
                patient=_checksum(expect_bytes(f[1], "patient", 20)),
                requester=_checksum(expect_bytes(f[2], "requester", 20)),
                decision=expect_str(f[3], "decision", 16),  # type: ignore[arg-type]
                policy_ids=tuple(PolicyId(expect_bytes(p, "policy id", 32)) for p in f[4]),
                created_at=expect_int(f[5], "created_at"),
            )
        except ConfigurationError as exc:
            raise WireFormatError(f"{what}: {exc}") from None


def seal_answer(
    answer: AccessAnswer, *, requester_box_key: PublicKey, patient_box_key: PublicKey
) -> bytes:
    """Seal ``answer`` to the requester and to the patient, in one blob
    (always :data:`ANSWER_BLOB_SIZE` bytes, at most 1024)."""
    plain = answer.to_bytes()
    return (
        header(ANSWER_BLOB_BRAND, 1)
        + seal(requester_box_key, SEALED_ANSWER_BRAND, plain)
        + seal(patient_box_key, SEALED_ANSWER_BRAND, plain)
    )


def open_answer(
    blob: bytes,
    box_key: PrivateKey,
    *,
    request_id: int,
    patient: str,
    requester: str,
) -> AccessAnswer:
    """Open an answer blob as its requester or its patient (whichever ``box_key`` is).

    Raises :class:`DecryptionError` (sealed to neither key, or tampered with),
    :class:`WireFormatError` and :class:`VerificationError` when the inner request id,
    patient or requester differ from the chain event's.
    """
    _, body = split_header(blob, ANSWER_BLOB_BRAND, 1, "access answer blob")
    half = _SEAL_OVERHEAD + PADDED_SIZE
    if len(body) != 2 * half:
        raise WireFormatError(f"access answer blob: expected {ANSWER_BLOB_SIZE} bytes")
    plain: bytes | None = None
    for part in (body[:half], body[half:]):
        try:
            plain = open_sealed(box_key, SEALED_ANSWER_BRAND, part, what="sealed access answer")
            break
        except DecryptionError:
            continue
    if plain is None:
        raise DecryptionError()
    answer = AccessAnswer.from_bytes(plain)
    if (
        answer.request_id != request_id
        or answer.patient != _cs(patient)
        or answer.requester != _cs(requester)
    ):
        raise VerificationError(
            f"this sealed answer is not the answer to request #{request_id} (it names another "
            "request, patient or requester: copied from another answer); ignore it"
        )
    return answer


def _cs(address: str) -> Address:
    try:
        return _checksum(bytes(to_canonical_address(address)))
    except ValueError as exc:
        raise InvalidInput(f"{address!r} is not an Ethereum address") from exc


def policy_ids_for_answer(ids: Sequence[bytes]) -> tuple[PolicyId, ...]:
    """The first :data:`MAX_ANSWER_POLICIES` ids of ``ids`` (the caller puts the most
    important first: the current epoch's grant)."""
    return tuple(PolicyId(bytes(p)) for p in ids[:MAX_ANSWER_POLICIES])
