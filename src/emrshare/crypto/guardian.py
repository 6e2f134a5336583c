"""A guardian's key bundle: what a patient seals to a guardian so that it can grant, revoke
and answer requests in the patient's name without the master secret.

The patient (:func:`seal_guardian_bundle`) puts, for each category the guardianship
covers and each epoch up to the current one, the tag and the Umbral delegating secret key
of that (category, epoch); its kfrag signing key (so proxies accept the kfrags the
guardian makes); and its X25519 box private key (so the guardian can open the access
requests sealed to the patient, and seal answers). Never the master secret, the tag
blinding key, the operation-nonce key, the state-log key or the Ethereum key.

Encoding (``docs/formats.md``): header ``EMGB`` 1.0 + sealed box (to the guardian's X25519
key) of ``pad(cbor([patient, guardian, guardian_box_key, [[category, epoch, tag, sk],
...], signing_sk, box_sk, signature]))``, padded to a multiple of
:data:`BUNDLE_PAD_STEP` bytes. The signature is the patient's kfrag signer over
``"emrshare/guardian-bundle/v1" || cbor(fields)``: the guardian checks it against the
verifying key in the patient's on-chain profile (:func:`open_guardian_bundle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import umbral_pre
from nacl.public import PrivateKey, PublicKey

from emrshare._addresses import address_bytes, checksum
from emrshare.crypto._signed import check_sig, sign, wire_category
from emrshare.crypto._wire import (
    cbor_decode_list,
    cbor_encode,
    expect_bytes,
    expect_int,
    pad,
    unpad,
)
from emrshare.crypto.keys import MAX_EPOCH, PatientKeys, validate_category
from emrshare.crypto.sealing import open_sealed, seal
from emrshare.errors import InvalidInput, VerificationError, WireFormatError
from emrshare.types import Address, CategoryTag

__all__ = [
    "BUNDLE_PAD_STEP",
    "GUARDIAN_BUNDLE_BRAND",
    "MAX_BUNDLE_KEYS",
    "MAX_SEALED_BUNDLE_BYTES",
    "GrantingKeys",
    "GuardianKeys",
    "open_guardian_bundle",
    "seal_guardian_bundle",
]

GUARDIAN_BUNDLE_BRAND = b"EMGB"
_SIG_DOMAIN = b"emrshare/guardian-bundle/v1"
#: The chain's limit on ``setGuardian``'s ``sealedKeys`` (``MAX_GUARDIAN_KEYS_BYTES``).
MAX_SEALED_BUNDLE_BYTES = 8192
#: The signed body is padded to a multiple of this: its length tells only roughly how
#: many (category, epoch) keys it holds.
BUNDLE_PAD_STEP = 512
#: At most this many (category, epoch) keys in one bundle: with 64-byte names and the
#: largest epochs the sealed bundle still fits :data:`MAX_SEALED_BUNDLE_BYTES`.
MAX_BUNDLE_KEYS = 48
_SEAL_OVERHEAD = 6 + 6 + 48  # outer header, inner header, sealed box


class GrantingKeys(Protocol):
    """What :func:`make_grant` needs of a patient's keys: :class:`PatientKeys`, or the
    keys a guardian holds for a patient (:class:`GuardianKeys`)."""

    @property
    def address(self) -> Address: ...
    @property
    def verifying_key(self) -> umbral_pre.PublicKey: ...
    def signer(self) -> umbral_pre.Signer: ...
    def tag(self, category: str, epoch: int) -> CategoryTag: ...
    def category_public_key(self, category: str, epoch: int) -> umbral_pre.PublicKey: ...
    def delegating_secret_key(self, category: str, epoch: int) -> umbral_pre.SecretKey: ...


@dataclass(frozen=True, slots=True)
class _CategoryKey:
    category: str
    epoch: int
    tag: CategoryTag
    secret: bytes = field(repr=False)


def _signing_secret(keys: PatientKeys) -> bytes:
    # The kfrag signing key is a private field of PatientKeys (crypto/keys.py offers only a
    # Signer, which cannot be exported); read it here, the one place that hands it on.
    sk: umbral_pre.SecretKey = keys._signing_sk
    return bytes(sk.to_be_bytes())


def seal_guardian_bundle(
    keys: PatientKeys,
    *,
    guardian: str,
    guardian_box_key: PublicKey,
    epochs: Mapping[str, int],
) -> bytes:
    """The sealed bundle for ``guardian`` covering every epoch ``0..epochs[c]`` of each
    category ``c``. :class:`InvalidInput` for no category, or more than
    :data:`MAX_BUNDLE_KEYS` (category, epoch) keys: name fewer categories."""
    if not epochs:
        raise InvalidInput("a guardianship covers at least one category; name one")
    pairs = [(validate_category(c), e) for c, cur in sorted(epochs.items()) for e in range(cur + 1)]
    if len(pairs) > MAX_BUNDLE_KEYS:
        raise InvalidInput(
            f"the guardianship would carry {len(pairs)} category keys (one per category and "
            f"epoch), more than the {MAX_BUNDLE_KEYS} that fit on chain; name fewer categories"
        )
    entries = [
        [c, e, bytes(keys.tag(c, e)), bytes(keys.delegating_secret_key(c, e).to_be_bytes())]
        for c, e in pairs
    ]
    fields: list[object] = [
        address_bytes(keys.address),
        address_bytes(checksum(guardian)),
        bytes(guardian_box_key),
        entries,
        _signing_secret(keys),
        bytes(keys.box_private_key),
    ]
    body = cbor_encode([*fields, sign(keys.signer(), _SIG_DOMAIN, cbor_encode(fields))])
    size = -(-(len(body) + 2) // BUNDLE_PAD_STEP) * BUNDLE_PAD_STEP
    sealed = seal(guardian_box_key, GUARDIAN_BUNDLE_BRAND, pad(body, size, "guardian bundle"))
    if len(sealed) > MAX_SEALED_BUNDLE_BYTES:  # unreachable under MAX_BUNDLE_KEYS
        raise InvalidInput("the guardian bundle does not fit on chain; name fewer categories")
    return sealed


class GuardianKeys:
    """An opened, verified guardian bundle: the keys a guardian acts with for one patient.

    It offers what grants and requests need of a patient's keys (``address`` is the
    patient's; ``signer()``, ``verifying_key``, ``tag``, ``category_public_key``,
    ``delegating_secret_key`` for the covered (category, epoch) pairs only,
    ``box_private_key``/``box_public_key``), and nothing derived from the master.
    The repr shows no secret.
    """

    __slots__ = ("_box", "_by_name", "_signing", "address", "guardian")

    def __init__(
        self,
        patient: Address,
        guardian: Address,
        entries: list[_CategoryKey],
        signing_secret: bytes,
        box_secret: bytes,
    ) -> None:
        self.address = patient
        self.guardian = guardian
        self._by_name = {(k.category, k.epoch): k for k in entries}
        self._signing = umbral_pre.SecretKey.from_be_bytes(signing_secret)
        self._box = PrivateKey(box_secret)

    def __repr__(self) -> str:
        return f"GuardianKeys(patient={self.address}, guardian={self.guardian})"

    @property
    def epochs(self) -> dict[str, int]:
        """The covered categories and the newest epoch of each the bundle holds."""
        out: dict[str, int] = {}
        for c, e in self._by_name:
            out[c] = max(e, out.get(c, 0))
        return out

    def _key(self, category: str, epoch: int) -> _CategoryKey:
        key = self._by_name.get((category, epoch))
        if key is None:
            raise InvalidInput(
                f"the guardianship does not cover {category!r} at epoch {epoch}; ask the "
                "patient to name the guardian again for it"
            )
        return key

    def delegating_secret_key(self, category: str, epoch: int) -> umbral_pre.SecretKey:
        return umbral_pre.SecretKey.from_be_bytes(self._key(category, epoch).secret)

    def category_public_key(self, category: str, epoch: int) -> umbral_pre.PublicKey:
        return self.delegating_secret_key(category, epoch).public_key()

    def tag(self, category: str, epoch: int) -> CategoryTag:
        return self._key(category, epoch).tag

    def tags(self) -> dict[bytes, tuple[str, int]]:
        """Every covered tag, named (category, epoch)."""
        return {bytes(k.tag): (k.category, k.epoch) for k in self._by_name.values()}

    def signer(self) -> umbral_pre.Signer:
        """The patient's kfrag signer (a delegated signing key, not the master)."""
        return umbral_pre.Signer(self._signing)

    @property
    def verifying_key(self) -> umbral_pre.PublicKey:
        return self._signing.public_key()

    @property
    def box_private_key(self) -> PrivateKey:
        return self._box

    @property
    def box_public_key(self) -> PublicKey:
        return self._box.public_key


def open_guardian_bundle(
    sealed: bytes,
    guardian_box_key: PrivateKey,
    *,
    patient: str,
    guardian: str,
    patient_verifying_key: umbral_pre.PublicKey,
) -> GuardianKeys:
    """Open a bundle sealed to this guardian and check it: made by ``patient`` for
    ``guardian`` (this one) and signed by ``patient_verifying_key`` (from the patient's
    on-chain profile), whose secret it carries.

    Raises :class:`DecryptionError` (not sealed to this guardian, tampered with),
    :class:`WireFormatError`, or :class:`VerificationError` (another patient's or another
    guardian's bundle, or not signed by the patient).
    """
    payload = open_sealed(guardian_box_key, GUARDIAN_BUNDLE_BRAND, sealed, what="guardian bundle")
    if len(payload) % BUNDLE_PAD_STEP:
        raise WireFormatError("guardian bundle: the padding is not a multiple of 512 bytes")
    f = cbor_decode_list(unpad(payload, len(payload), "guardian bundle"), "guardian bundle", 7)
    fields = f[:6]
    who, to = expect_bytes(f[0], "patient", 20), expect_bytes(f[1], "guardian", 20)
    if expect_bytes(f[2], "guardian box key", 32) != bytes(guardian_box_key.public_key):
        raise VerificationError("this guardian bundle was sealed for another key; ignore it")
    if checksum(who) != checksum(patient) or checksum(to) != checksum(guardian):
        raise VerificationError(
            f"this bundle names patient {checksum(who)} and guardian {checksum(to)}, not "
            f"{checksum(patient)} and {checksum(guardian)}; ignore it"
        )
    signing = expect_bytes(f[4], "signing key", 32)
    try:
        signing_pk = umbral_pre.SecretKey.from_be_bytes(signing).public_key()
    except Exception as exc:  # umbral-pre raises ValueError for an invalid scalar
        raise WireFormatError("guardian bundle: the signing key does not parse") from exc
    expected = patient_verifying_key.to_compressed_bytes()
    if signing_pk.to_compressed_bytes() != expected or not check_sig(
        patient_verifying_key, _SIG_DOMAIN, cbor_encode(fields), expect_bytes(f[6], "sig", 64)
    ):
        raise VerificationError(
            f"the guardian bundle is not signed by patient {checksum(patient)}'s registered "
            "verifying key; ignore it"
        )
    if not isinstance(f[3], list) or not 1 <= len(f[3]) <= MAX_BUNDLE_KEYS:
        raise WireFormatError(f"guardian bundle: 1 to {MAX_BUNDLE_KEYS} category keys expected")
    entries = []
    for item in f[3]:
        if not isinstance(item, list) or len(item) != 4:
            raise WireFormatError("guardian bundle: a category key is [name, epoch, tag, key]")
        entries.append(
            _CategoryKey(
                wire_category(item[0], "guardian bundle"),
                expect_int(item[1], "epoch", 0, MAX_EPOCH),
                CategoryTag(expect_bytes(item[2], "tag", 32)),
                expect_bytes(item[3], "category key", 32),
            )
        )
    return GuardianKeys(
        checksum(who), checksum(to), entries, signing, expect_bytes(f[5], "box key", 32)
    )
