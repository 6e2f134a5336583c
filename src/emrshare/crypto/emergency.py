"""Sealed justifications of emergency (break-glass) declarations (issue 15).

The clinician's free-text reason never goes on chain in clear: it is sealed twice, to the
patient's box key (PatientProfiles) and to the regulator's (ConsortiumRegistry), padded to
one size so its length says nothing. The body binds the patient, the clinician and the
reason code, so a sealed justification copied into another declaration does not open as
that declaration's (the opener compares them with the ``EmergencyDeclared`` event).

**Warning:** a sealed box is anonymous: the binding to the clinician holds because the
declaration carrying it was sent by the clinician's key, not because of a signature here.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.public import PrivateKey, PublicKey

from emrshare._addresses import address_bytes, checksum
from emrshare._text import sanitize, unsafe_chars
from emrshare.crypto._wire import (
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
from emrshare.crypto.sealing import open_sealed, seal
from emrshare.errors import InvalidText, VerificationError, WireFormatError

__all__ = [
    "COSIGNATURE_BRAND",
    "JUSTIFICATION_BRAND",
    "MAX_JUSTIFICATION_BYTES",
    "SEALED_JUSTIFICATION_BRAND",
    "Cosignature",
    "Justification",
    "open_justification",
    "seal_justification",
]

COSIGNATURE_BRAND = b"EMCS"
JUSTIFICATION_BRAND = b"EMJU"
SEALED_JUSTIFICATION_BRAND = b"EMSJ"
#: Longest justification text, in UTF-8 bytes.
MAX_JUSTIFICATION_BYTES = 400
_PADDED = 480  # 2 + cbor(20 + 20 + reason + text) always fits


@dataclass(frozen=True, slots=True)
class Justification:
    """Why a clinician declared an emergency for a patient (``reason_code`` is the one on
    chain; ``text`` is free text, at most :data:`MAX_JUSTIFICATION_BYTES` bytes)."""

    patient: str
    clinician: str
    reason_code: int
    text: str

    def __bytes__(self) -> bytes:
        body = cbor_encode(
            [
                address_bytes(self.patient),
                address_bytes(self.clinician),
                self.reason_code,
                self.text,
            ]
        )
        return header(JUSTIFICATION_BRAND, 1) + pad(body, _PADDED, "justification")

    @classmethod
    def from_bytes(cls, data: bytes) -> Justification:
        """Parse :meth:`__bytes__` output (``WireFormatError`` otherwise)."""
        _, rest = split_header(data, JUSTIFICATION_BRAND, 1, "justification")
        items = cbor_decode_list(unpad(rest, _PADDED, "justification"), "justification", 4)
        return cls(
            checksum("0x" + expect_bytes(items[0], "patient", 20).hex()),
            checksum("0x" + expect_bytes(items[1], "clinician", 20).hex()),
            expect_int(items[2], "reason code", 0, 255),
            sanitize(expect_str(items[3], "text", MAX_JUSTIFICATION_BYTES)),
        )


def seal_justification(
    justification: Justification, *, patient_box_key: PublicKey, regulator_box_key: PublicKey
) -> tuple[bytes, bytes]:
    """The justification sealed to the patient and to the regulator: ``(for_patient,
    for_regulator)``, each the same size whatever the text. :class:`InvalidText` if the
    text is too long or holds control characters (it is shown in terminals)."""
    text = justification.text
    if len(text.encode()) > MAX_JUSTIFICATION_BYTES or not 0 <= justification.reason_code < 256:
        raise InvalidText(
            f"a justification is at most {MAX_JUSTIFICATION_BYTES} UTF-8 bytes with a reason "
            "code 0..255; shorten it"
        )
    bad = unsafe_chars(text)
    if bad:
        raise InvalidText(
            f"the justification holds control or format characters ({', '.join(bad[:3])}); "
            "remove them"
        )
    plain = bytes(justification)
    return (
        seal(patient_box_key, SEALED_JUSTIFICATION_BRAND, plain),
        seal(regulator_box_key, SEALED_JUSTIFICATION_BRAND, plain),
    )


def open_justification(
    box_private_key: PrivateKey, sealed: bytes, *, patient: str, clinician: str, reason_code: int
) -> Justification:
    """Open a sealed justification and check it belongs to the declaration (its patient,
    clinician and reason code): :class:`DecryptionError` if it is not sealed to this key,
    :class:`VerificationError` if it was made for another declaration."""
    plain = open_sealed(
        box_private_key, SEALED_JUSTIFICATION_BRAND, sealed, what="sealed justification"
    )
    j = Justification.from_bytes(plain)
    if (j.patient, j.clinician, j.reason_code) != (
        checksum(patient),
        checksum(clinician),
        reason_code,
    ):
        raise VerificationError(
            "this justification was sealed for another declaration (patient, clinician or "
            "reason differ); do not trust it"
        )
    return j


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A second clinician's EIP-712 co-signature of one emergency declaration
    (``Emergency.hashCosign``): ``cosigner`` backs ``clinician`` declaring for ``patient``
    with ``reason_code``, until ``deadline`` (chain time, at most 15 minutes ahead), once.
    Unverified: the contract checks it when the declaration is sent.

    Encoding: header ``EMCS`` 1.0, CBOR ``[cosigner, clinician, patient, reason_code,
    deadline, signature]`` (addresses as 20 bytes). ``hex()`` / :meth:`from_hex` for
    passing it between clinicians as text."""

    cosigner: str
    clinician: str
    patient: str
    reason_code: int
    deadline: int
    signature: bytes

    def __bytes__(self) -> bytes:
        return header(COSIGNATURE_BRAND, 1) + cbor_encode(
            [
                address_bytes(self.cosigner),
                address_bytes(self.clinician),
                address_bytes(self.patient),
                self.reason_code,
                self.deadline,
                self.signature,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Cosignature:
        """Decode (:class:`WireFormatError` if malformed; nothing is verified)."""
        _, body = split_header(data, COSIGNATURE_BRAND, 1, "emergency co-signature")
        items = cbor_decode_list(body, "emergency co-signature", 6)
        addrs = [expect_bytes(items[i], f"co-signature field {i}", 20) for i in range(3)]
        reason = expect_int(items[3], "co-signature reason code", 0, 255)
        deadline = expect_int(items[4], "co-signature deadline")
        signature = expect_bytes(items[5], "co-signature signature", 65)
        cosigner, clinician, patient = (checksum("0x" + a.hex()) for a in addrs)
        return cls(cosigner, clinician, patient, reason, deadline, signature)

    def hex(self) -> str:
        """The encoding as ``0x``-prefixed hex."""
        return "0x" + bytes(self).hex()

    @classmethod
    def from_hex(cls, text: str) -> Cosignature:
        """Decode :meth:`hex` output (:class:`WireFormatError` if it is not)."""
        t = text.strip().removeprefix("0x")
        try:
            raw = bytes.fromhex(t)
        except ValueError as exc:
            raise WireFormatError(
                "the co-signature is not hex; paste the whole text the co-signing "
                "clinician was given"
            ) from exc
        return cls.from_bytes(raw)
