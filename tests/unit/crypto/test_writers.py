"""Writer authorizations and the generic sealed box."""

from __future__ import annotations

import pytest

from emrshare.crypto import (
    PatientKeys,
    open_sealed,
    open_writer_authorization,
    seal,
    seal_writer_authorization,
)
from emrshare.errors import DecryptionError, UnsupportedVersion, VerificationError, WireFormatError

from .conftest import World, seed


def test_writer_authorization_round_trip(world: World) -> None:
    sealed = seal_writer_authorization(world.patient, world.writer.public_keys(), "labs", 2)
    auth = open_writer_authorization(
        sealed, world.writer, patient_verifying_key=world.patient.verifying_key
    )
    assert (auth.category, auth.epoch, auth.patient, auth.writer) == (
        "labs",
        2,
        world.patient.address,
        world.writer.address,
    )
    assert auth.tag == world.patient.tag("labs", 2)
    assert auth.category_public_key_bytes == (
        world.patient.category_public_key("labs", 2).to_compressed_bytes()
    )
    assert b"labs" not in sealed  # the category name is only inside the box


def test_writer_authorization_is_checked(world: World) -> None:
    sealed = seal_writer_authorization(world.patient, world.writer.public_keys(), "labs", 0)
    with pytest.raises(DecryptionError):
        open_writer_authorization(
            sealed, world.stranger, patient_verifying_key=world.patient.verifying_key
        )
    impostor = PatientKeys(seed("impostor"))
    with pytest.raises(VerificationError):
        open_writer_authorization(
            sealed, world.writer, patient_verifying_key=impostor.verifying_key
        )
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_writer_authorization(
            bytes(bad), world.writer, patient_verifying_key=world.patient.verifying_key
        )


def test_sealed_box_header_binds_the_purpose(world: World) -> None:
    box = seal(world.grantee.box_public_key, b"TEST", b"payload")
    assert box[:6] == b"TEST\x01\x00"
    assert open_sealed(world.grantee.box_private_key, b"TEST", box, what="test") == b"payload"
    # Relabelling the outer header does not turn a TEST box into another format.
    relabelled = b"OTHR" + box[4:]
    with pytest.raises(DecryptionError):
        open_sealed(world.grantee.box_private_key, b"OTHR", relabelled, what="other")
    with pytest.raises(WireFormatError):
        open_sealed(world.grantee.box_private_key, b"OTHR", box, what="other")
    with pytest.raises(UnsupportedVersion):
        open_sealed(world.grantee.box_private_key, b"TEST", b"TEST\x02\x00" + box[6:], what="t")
    with pytest.raises(DecryptionError):
        open_sealed(world.stranger.box_private_key, b"TEST", box, what="test")
