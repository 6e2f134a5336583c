"""Password-protected key files for patients and members.

A keystore is a versioned JSON document written atomically with mode 0600::

    {"format": "emrshare-keystore", "version": 1, "kind": "patient" | "member",
     "address": "0x…",
     "kdf": {"name": "argon2id", "opslimit": 3, "memlimit": 268435456, "salt": "<hex 16>"},
     "cipher": {"name": "xchacha20poly1305-ietf", "nonce": "<hex 24>"},
     "ciphertext": "<hex>"}

The key is argon2id(password, salt) with the stored limits; the plaintext is the canonical
CBOR array ``[secret (32 bytes), ethereum key override (32 bytes) or null]`` (a patient who
rotated its master adds its identity (20 bytes) and its retired masters
``[[secret, {category: last epoch}], …]``, oldest first: :class:`RotatedPatientKeys`); the
associated data is the canonical JSON (sorted keys, no spaces) of every field except
``ciphertext``, so editing the address, the KDF limits or the kind is detected.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
from nacl.pwhash import argon2id

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare._files import loads_json, write_atomically
from emrshare.crypto._wire import cbor_decode_list, cbor_encode
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.rotated import RotatedPatientKeys
from emrshare.crypto.statelog import RetiredMaster
from emrshare.errors import KeystoreError, UnsupportedVersion, WireFormatError
from emrshare.types import Address

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "load_keystore",
    "load_member_keystore",
    "load_patient_keystore",
    "save_keystore",
]

FORMAT = "emrshare-keystore"
VERSION = 1
#: Default argon2id cost: libsodium's MODERATE profile (~256 MiB, a second or so).
DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_MODERATE
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_MODERATE
# Refuse to run a KDF a tampered file asks for that would exhaust the machine.
_MAX_MEMLIMIT = 4 * 1024**3
_MAX_OPSLIMIT = 64


def _password_bytes(password: str | bytes) -> bytes:
    pw = password.encode() if isinstance(password, str) else bytes(password)
    if not pw:
        raise ValueError("the keystore password must not be empty")
    return pw


def _ad(doc: dict[str, Any]) -> bytes:
    rest = {k: v for k, v in doc.items() if k != "ciphertext"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()


def save_keystore(
    path: str | os.PathLike[str],
    keys: PatientKeys | MemberKeys,
    password: str | bytes,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> Path:
    """Encrypt ``keys`` under ``password`` and write them to ``path`` (0600, atomically).

    Raises :class:`KeystoreError` if the file cannot be written. Lower ``opslimit`` and
    ``memlimit`` only in tests: they set the cost of guessing passwords.
    """
    if isinstance(keys, PatientKeys):
        kind, secret = "patient", keys.master_secret
    elif isinstance(keys, MemberKeys):
        kind, secret = "member", keys.seed
    else:
        raise TypeError("save_keystore takes PatientKeys or MemberKeys")
    override = keys.ethereum_key if keys.ethereum_key_overridden else None
    plain: list[Any] = [secret, override]
    if isinstance(keys, RotatedPatientKeys):  # the identity and every retired master
        retired = [[r.master_secret, dict(r.epochs)] for r in keys.retired_masters()]
        plain += [_address_bytes(keys.address), retired]
    salt = secrets.token_bytes(argon2id.SALTBYTES)
    nonce = secrets.token_bytes(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "address": keys.address,
        "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
        "cipher": {"name": "xchacha20poly1305-ietf", "nonce": nonce.hex()},
    }
    key = argon2id.kdf(32, _password_bytes(password), salt, opslimit=opslimit, memlimit=memlimit)
    doc["ciphertext"] = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        cbor_encode(plain), _ad(doc), nonce, key
    ).hex()
    target = Path(path)
    try:
        write_atomically(target, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise KeystoreError(
            f"cannot write the keystore to {target} ({exc.strerror or exc}); check that the "
            "directory exists and is writable"
        ) from exc
    return target


def _field(doc: Any, *names: str) -> Any:
    value = doc
    for name in names:
        if not isinstance(value, dict) or name not in value:
            raise KeystoreError(
                f"keystore is missing the field {'.'.join(names)}; the file is damaged"
            )
        value = value[name]
    return value


def load_keystore(path: str | os.PathLike[str], password: str | bytes) -> PatientKeys | MemberKeys:
    """Read and decrypt a keystore. Raises :class:`KeystoreError` for a wrong password, a
    tampered or damaged file, and :class:`UnsupportedVersion` for a newer format.
    """
    target = Path(path)
    try:
        doc = loads_json(target.read_text())
    except FileNotFoundError as exc:
        raise KeystoreError(f"no keystore at {target}; check the path") from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise KeystoreError(
            f"{target} is not a readable keystore JSON file; check the path, or restore the "
            "keystore from your mnemonic"
        ) from exc
    if _field(doc, "format") != FORMAT:
        raise KeystoreError(f"{target} is not an emrshare keystore; check the path")
    if _field(doc, "version") != VERSION:
        raise UnsupportedVersion(
            f"keystore version {doc['version']!r} is not supported (this release reads "
            f"{VERSION}); upgrade emrshare"
        )
    kind = _field(doc, "kind")
    try:
        if _field(doc, "kdf", "name") != "argon2id" or (
            _field(doc, "cipher", "name") != "xchacha20poly1305-ietf"
        ):
            raise KeystoreError(
                f"{target} uses an unknown KDF or cipher; open it with the emrshare release "
                "that wrote it, or restore the keystore from your mnemonic"
            )
        opslimit = int(_field(doc, "kdf", "opslimit"))
        memlimit = int(_field(doc, "kdf", "memlimit"))
        salt = bytes.fromhex(_field(doc, "kdf", "salt"))
        nonce = bytes.fromhex(_field(doc, "cipher", "nonce"))
        ciphertext = bytes.fromhex(_field(doc, "ciphertext"))
    except (TypeError, ValueError, OverflowError) as exc:
        raise KeystoreError(
            f"{target} has malformed KDF or cipher fields; the file is damaged"
        ) from exc
    if not (
        argon2id.OPSLIMIT_MIN <= opslimit <= _MAX_OPSLIMIT
        and argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT
        and len(salt) == argon2id.SALTBYTES
    ):
        raise KeystoreError(
            f"{target} has out-of-range KDF parameters; the file was tampered with: restore "
            "the keystore from your mnemonic"
        )
    wrong = KeystoreError(
        f"cannot open {target}: wrong password, or the file was modified; try again or "
        "restore the keystore from your mnemonic"
    )
    try:
        key = argon2id.kdf(
            32, _password_bytes(password), salt, opslimit=opslimit, memlimit=memlimit
        )
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, _ad(doc), nonce, key)
        items = _plaintext(plain)
        secret, override = items[0], items[1]
        keys: PatientKeys | MemberKeys
        if kind == "patient" and len(items) == 4:
            retired = [RetiredMaster(bytes(m), dict(e)) for m, e in items[3]]
            identity = Address(_checksum(bytes(items[2])))
            keys = RotatedPatientKeys(
                secret, identity=identity, retired=retired, ethereum_key=override
            )
        elif kind == "patient":
            keys = PatientKeys(secret, ethereum_key=override)
        elif kind == "member":
            keys = MemberKeys(secret, ethereum_key=override)
        else:
            raise wrong
    except (nacl.exceptions.CryptoError, WireFormatError, ValueError, TypeError) as exc:
        raise wrong from exc
    if keys.address != doc.get("address"):
        raise wrong
    return keys


def _plaintext(plain: bytes) -> list[Any]:
    # [secret, override], or for a rotated patient [secret, override, identity, retired].
    try:
        return cbor_decode_list(plain, "keystore secret", 2)
    except WireFormatError:
        return cbor_decode_list(plain, "keystore secret", 4)


def load_patient_keystore(path: str | os.PathLike[str], password: str | bytes) -> PatientKeys:
    """:func:`load_keystore` for a patient keystore (a member keystore is an error)."""
    keys = load_keystore(path, password)
    if not isinstance(keys, PatientKeys):
        raise KeystoreError(f"{path} holds member keys, not patient keys; pass a patient keystore")
    return keys


def load_member_keystore(path: str | os.PathLike[str], password: str | bytes) -> MemberKeys:
    """:func:`load_keystore` for a member keystore (a patient keystore is an error)."""
    keys = load_keystore(path, password)
    if not isinstance(keys, MemberKeys):
        raise KeystoreError(f"{path} holds patient keys, not member keys; pass a member keystore")
    return keys
