"""Writer authorizations: the patient tells a provider how to seal entries for a category.

The payload (patient, writer, tag, category, epoch, category public key), signed by the
patient's kfrag signer, is sealed to the writer's X25519 key (brand ``EMWA``) and carried
in the chain's writer-authorized event. The category name is only inside the box, and
the payload is padded to :data:`WRITER_PADDED_SIZE` bytes first, so the box's length does
not tell one category name from another.
"""

from __future__ import annotations

from dataclasses import dataclass

import umbral_pre

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare.crypto._signed import check_sig, open_signed, seal_signed, wire_category
from emrshare.crypto._wire import cbor_encode, expect_bytes, expect_int
from emrshare.crypto.keys import (
    MAX_EPOCH,
    MemberKeys,
    MemberPublicKeys,
    PatientKeys,
    _umbral_pk,
    validate_category,
)
from emrshare.errors import VerificationError
from emrshare.types import Address, CategoryTag

__all__ = [
    "WRITER_PADDED_SIZE",
    "WriterAuthorization",
    "open_writer_authorization",
    "seal_writer_authorization",
]

WRITER_BRAND = b"EMWA"
_SIG_DOMAIN = b"emrshare/writer-authorization/v1"
#: The signed payload is padded to this many bytes before sealing (version 1.1): the
#: longest one (a 64-byte category name, the largest epoch) takes 253, so every sealed
#: authorization is 316 bytes whatever the category (the chain's limit is 1024).
WRITER_PADDED_SIZE = 256


@dataclass(frozen=True, slots=True)
class WriterAuthorization:
    """A verified writer authorization (only from :func:`open_writer_authorization`)."""

    patient: Address
    writer: Address
    tag: CategoryTag
    category: str
    epoch: int
    category_public_key_bytes: bytes

    @property
    def category_public_key(self) -> umbral_pre.PublicKey:
        """Seal this category-epoch's entries to this key."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.category_public_key_bytes)

    def _fields(self) -> list[object]:
        return [
            _address_bytes(self.patient),
            _address_bytes(self.writer),
            bytes(self.tag),
            self.category,
            self.epoch,
            self.category_public_key_bytes,
        ]


def seal_writer_authorization(
    patient: PatientKeys, writer: MemberPublicKeys, category: str, epoch: int
) -> bytes:
    """Seal (category, epoch, category public key) to ``writer``'s box key, signed."""
    auth = WriterAuthorization(
        patient.address,
        writer.address,
        patient.tag(category, epoch),
        validate_category(category),
        epoch,
        patient.category_public_key(category, epoch).to_compressed_bytes(),
    )
    return seal_signed(
        writer.box_key,
        WRITER_BRAND,
        patient.signer(),
        _SIG_DOMAIN,
        auth._fields(),
        padded_size=WRITER_PADDED_SIZE,
    )


def open_writer_authorization(
    sealed: bytes, writer: MemberKeys, *, patient_verifying_key: umbral_pre.PublicKey
) -> WriterAuthorization:
    """Unseal and verify an authorization; ``patient_verifying_key`` comes from the chain.

    Raises :class:`DecryptionError` (not for this writer / tampered) or
    :class:`VerificationError` (not signed by that patient or not for this writer).
    """
    f = open_signed(
        writer.box_private_key,
        WRITER_BRAND,
        sealed,
        what="writer authorization",
        length=6,
        padded_size=WRITER_PADDED_SIZE,
    )
    category = wire_category(f[3], "writer authorization")
    auth = WriterAuthorization(
        _checksum(expect_bytes(f[0], "patient", 20)),
        _checksum(expect_bytes(f[1], "writer", 20)),
        CategoryTag(expect_bytes(f[2], "tag", 32)),
        category,
        expect_int(f[4], "epoch", 0, MAX_EPOCH),
        expect_bytes(f[5], "category public key", 33),
    )
    _umbral_pk(auth.category_public_key_bytes, "category public key")
    sig = expect_bytes(f[6], "signature", 64)
    if not check_sig(patient_verifying_key, _SIG_DOMAIN, cbor_encode(auth._fields()), sig):
        raise VerificationError(
            f"the writer authorization from {auth.patient} is not signed by the patient's "
            "registered verifying key; ignore it"
        )
    if auth.writer != writer.address:
        raise VerificationError(
            f"the writer authorization is for {auth.writer}, not {writer.address}; ignore it"
        )
    return auth
