"""Patient and member keys, derived deterministically with domain separation.

A patient holds one 32-byte master secret (exported as a 24-word BIP-39 mnemonic or split
into SLIP-39 shares). Every other patient key is derived from it with HMAC-SHA256 under a
distinct label, so keys for different purposes never coincide:

* per-(category, epoch) Umbral delegating keys (``SecretKeyFactory.make_key``),
* one Umbral signing key for kfrags and policy bindings (never a delegating key),
* an X25519 box key, a category-tag blinding key, the Ethereum account key, and one
  participant key per research study. A member (hospital, proxy, insurer, …) holds an
  Umbral receiving key, an X25519 box key and an Ethereum key, derived from a 32-byte seed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import umbral_pre
from eth_account import Account
from nacl.public import PrivateKey as BoxPrivateKey
from nacl.public import PublicKey as BoxPublicKey

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare._text import unsafe_chars
from emrshare.crypto._wire import header, split_header
from emrshare.crypto.mnemonic import (
    bip39_entropy_to_mnemonic,
    bip39_mnemonic_to_entropy,
    bip39_seed,
    combine_shamir_shares,
    split_shamir_shares,
)
from emrshare.errors import InvalidCategory, WireFormatError
from emrshare.types import Address, CategoryTag

__all__ = [
    "MASTER_SECRET_SIZE",
    "MemberKeys",
    "MemberPublicKeys",
    "PatientKeys",
    "PatientPublicKeys",
    "Rng",
    "bip39_entropy_to_mnemonic",
    "bip39_mnemonic_to_entropy",
    "bip39_seed",
    "category_label",
    "combine_shamir_shares",
    "split_shamir_shares",
    "validate_category",
]

#: Size of a patient master secret and of a member seed, in bytes.
MASTER_SECRET_SIZE = 32
#: Longest category name, in UTF-8 bytes.
MAX_CATEGORY_BYTES = 64
#: Largest epoch number (a 32-bit counter).
MAX_EPOCH = 2**32 - 1

#: A source of randomness: ``rng(n)`` returns ``n`` random bytes (tests pass a seeded one).
Rng = Callable[[int], bytes]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _random(rng: Rng | None, n: int) -> bytes:
    return rng(n) if rng is not None else secrets.token_bytes(n)


def validate_category(category: str) -> str:
    """Return ``category`` if it is a usable category name, else raise ``ValueError``.

    A category name is a non-empty string in Unicode NFC form of at most 64 UTF-8 bytes
    (e.g. ``"lab-results"``) without control, format (bidi overrides, zero-width) or
    line/paragraph separator characters: a name is shown to the patient who approves
    access to it, and must look like what it is. Names are compared byte for byte, so
    ``"Lab"`` ≠ ``"lab"``. Raises :class:`~emrshare.errors.InvalidCategory` (a
    ``ValueError``).
    """
    if not isinstance(category, str) or not category:
        raise InvalidCategory("category must be a non-empty string such as 'lab-results'")
    if unicodedata.normalize("NFC", category) != category:
        raise InvalidCategory("category name must be in Unicode NFC form; normalize it first")
    bad = unsafe_chars(category)
    if bad:
        raise InvalidCategory(
            f"category name holds control, format (bidi, zero-width) or separator "
            f"characters ({', '.join(bad[:4])}): use visible characters only"
        )
    if len(category.encode()) > MAX_CATEGORY_BYTES:
        raise InvalidCategory(f"category name is longer than {MAX_CATEGORY_BYTES} UTF-8 bytes")
    return category


def _validate_epoch(epoch: int) -> int:
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be an integer in [0, {MAX_EPOCH}]")
    return epoch


def category_label(category: str, epoch: int) -> bytes:
    """The canonical encoding of (category, epoch) used for derivation and tags.

    ``b"emrshare/category/v1" || u16be(len(name)) || utf8(name) || u32be(epoch)``.
    """
    name = validate_category(category).encode()
    _validate_epoch(epoch)
    return b"emrshare/category/v1" + len(name).to_bytes(2, "big") + name + epoch.to_bytes(4, "big")


def _derive(secret: bytes, label: bytes) -> bytes:
    """Domain-separated 32-byte subkey: HMAC-SHA256(secret, "emrshare/v1/" || label)."""
    return hmac.new(secret, b"emrshare/v1/" + label, hashlib.sha256).digest()


def _derive_eth_key(secret: bytes, label: bytes) -> bytes:
    # A 32-byte string is a valid secp256k1 key unless it is 0 or >= n (probability
    # ~2^-128); retry with a counter so derivation is total and still deterministic.
    for counter in range(256):
        candidate = _derive(secret, label + bytes([counter]))
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_N:
            return candidate
    raise AssertionError("unreachable: no valid secp256k1 key in 256 tries")


def _check_secret(secret: bytes, what: str) -> bytes:
    if not isinstance(secret, bytes) or len(secret) != MASTER_SECRET_SIZE:
        raise ValueError(f"{what} must be exactly {MASTER_SECRET_SIZE} bytes")
    return secret


def _check_eth_key(key: bytes) -> bytes:
    if (
        not isinstance(key, bytes)
        or len(key) != 32
        or not 0 < int.from_bytes(key, "big") < _SECP256K1_N
    ):
        raise ValueError("ethereum_key must be a valid 32-byte secp256k1 private key")
    return key


def _address(eth_key: bytes) -> Address:
    return Address(Account.from_key(eth_key).address)


# --- public key bundles --------------------------------------------------------------


def _umbral_pk(raw: bytes, what: str) -> umbral_pre.PublicKey:
    try:
        return umbral_pre.PublicKey.from_compressed_bytes(raw)
    except Exception as exc:
        raise WireFormatError(f"{what} is not a compressed secp256k1 point") from exc


class _KeyBundle:
    """The layout both public bundles share: header (brand, 1.0), address (20), an Umbral
    key (33, compressed secp256k1), an X25519 box key (32). A subclass names its brand,
    what it is, and which of its fields is the Umbral key."""

    __slots__ = ()
    BRAND: ClassVar[bytes]
    WHAT: ClassVar[str]
    UMBRAL_FIELD: ClassVar[str]
    address: Address
    box_key_bytes: bytes

    def _umbral_bytes(self) -> bytes:
        value: bytes = getattr(self, self.UMBRAL_FIELD)
        return value

    def __post_init__(self) -> None:
        _address_bytes(self.address)
        _umbral_pk(self._umbral_bytes(), self.UMBRAL_FIELD.removesuffix("_bytes").replace("_", " "))
        if len(self.box_key_bytes) != 32:
            raise WireFormatError("box key must be 32 bytes")

    def __bytes__(self) -> bytes:
        body = _address_bytes(self.address) + self._umbral_bytes() + self.box_key_bytes
        return header(self.BRAND, 1) + body

    @property
    def box_key(self) -> BoxPublicKey:
        """The X25519 public key (sealed requests, kfrags and writer authorizations)."""
        return BoxPublicKey(self.box_key_bytes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse the encoding produced by ``bytes(x)``."""
        _, body = split_header(data, cls.BRAND, 1, cls.WHAT)
        if len(body) != 85:
            raise WireFormatError(f"{cls.WHAT}: expected 85 bytes after the header")
        return cls(_checksum(body[:20]), body[20:53], body[53:85])  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class PatientPublicKeys(_KeyBundle):
    """What a patient publishes: Ethereum address, kfrag verifying key, X25519 box key.

    Encoding (``bytes(x)``): header ``EMPP`` 1.0, address (20), verifying key (33,
    compressed secp256k1), box key (32).
    """

    address: Address
    verifying_key_bytes: bytes
    box_key_bytes: bytes

    BRAND: ClassVar[bytes] = b"EMPP"
    WHAT: ClassVar[str] = "patient public keys"
    UMBRAL_FIELD: ClassVar[str] = "verifying_key_bytes"

    @property
    def verifying_key(self) -> umbral_pre.PublicKey:
        """The Umbral key that verifies kfrags and policy bindings signed by the patient."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.verifying_key_bytes)


@dataclass(frozen=True, slots=True)
class MemberPublicKeys(_KeyBundle):
    """What a member registers: Ethereum address, Umbral receiving key, X25519 box key.

    Encoding (``bytes(x)``): header ``EMMP`` 1.0, address (20), receiving key (33,
    compressed secp256k1), box key (32).
    """

    address: Address
    receiving_key_bytes: bytes
    box_key_bytes: bytes

    BRAND: ClassVar[bytes] = b"EMMP"
    WHAT: ClassVar[str] = "member public keys"
    UMBRAL_FIELD: ClassVar[str] = "receiving_key_bytes"

    @property
    def receiving_key(self) -> umbral_pre.PublicKey:
        """The Umbral key grants re-encrypt to."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.receiving_key_bytes)


# --- secret key holders --------------------------------------------------------------


class PatientKeys:
    """All of a patient's keys, derived from one 32-byte master secret.

    >>> keys = PatientKeys.generate()
    >>> keys.tag("lab-results", 0)  # doctest: +SKIP

    ``ethereum_key`` overrides the derived Ethereum key (for funded development accounts);
    by default it is derived from the master secret like every other key.
    The repr never shows secret material.
    """

    __slots__ = (
        "_addr",
        "_blinding",
        "_box",
        "_eth",
        "_factory",
        "_master",
        "_operations",
        "_signing_sk",
        "_state",
    )

    def __init__(self, master_secret: bytes, *, ethereum_key: bytes | None = None) -> None:
        self._master = _check_secret(master_secret, "master secret")
        self._factory = umbral_pre.SecretKeyFactory.from_secure_randomness(
            _derive(master_secret, b"patient/umbral-delegating")
        )
        signing_factory = umbral_pre.SecretKeyFactory.from_secure_randomness(
            _derive(master_secret, b"patient/umbral-signing")
        )
        self._signing_sk = signing_factory.make_key(b"kfrag-signer")
        self._box = BoxPrivateKey(_derive(master_secret, b"patient/x25519-box"))
        self._blinding = _derive(master_secret, b"patient/category-tag-blinding")
        self._operations = _derive(master_secret, b"patient/operation-nonces")
        self._state = _derive(master_secret, b"patient/state-log")
        self._eth = (
            _check_eth_key(ethereum_key)
            if ethereum_key is not None
            else _derive_eth_key(master_secret, b"patient/ethereum")
        )
        self._addr = _address(self._eth)

    def __repr__(self) -> str:
        return f"PatientKeys(address={self.address})"

    @classmethod
    def generate(cls, *, rng: Rng | None = None) -> PatientKeys:
        """A patient with a fresh random master secret."""
        return cls(_random(rng, MASTER_SECRET_SIZE))

    # master secret import/export

    @property
    def master_secret(self) -> bytes:
        """**Warning:** the secret everything derives from; keep it out of logs."""
        return self._master

    @property
    def ethereum_key_overridden(self) -> bool:
        """True if the Ethereum key was given explicitly instead of derived."""
        return self._eth != _derive_eth_key(self._master, b"patient/ethereum")

    def to_mnemonic(self) -> str:
        """The master secret as a 24-word English BIP-39 mnemonic."""
        return bip39_entropy_to_mnemonic(self._master)

    @classmethod
    def from_mnemonic(cls, words: str, *, ethereum_key: bytes | None = None) -> PatientKeys:
        """Restore from a 24-word BIP-39 mnemonic (see :meth:`to_mnemonic`)."""
        entropy = bip39_mnemonic_to_entropy(words)
        if len(entropy) != MASTER_SECRET_SIZE:
            raise WireFormatError(
                "a patient mnemonic has 24 words (32 bytes of entropy); this one has "
                f"{len(words.split())}"
            )
        return cls(entropy, ethereum_key=ethereum_key)

    def to_shamir_shares(self, threshold: int, count: int, *, passphrase: bytes = b"") -> list[str]:
        """Split the master secret into SLIP-39 shares (``threshold`` of ``count``)."""
        return split_shamir_shares(self._master, threshold, count, passphrase=passphrase)

    @classmethod
    def from_shamir_shares(
        cls, shares: Sequence[str], *, passphrase: bytes = b"", ethereum_key: bytes | None = None
    ) -> PatientKeys:
        """Restore from SLIP-39 shares made by :meth:`to_shamir_shares`."""
        secret = combine_shamir_shares(shares, passphrase=passphrase)
        if len(secret) != MASTER_SECRET_SIZE:
            raise WireFormatError("these SLIP-39 shares do not hold a 32-byte master secret")
        return cls(secret, ethereum_key=ethereum_key)

    # category keys

    def delegating_secret_key(self, category: str, epoch: int) -> umbral_pre.SecretKey:
        """The Umbral secret key of one (category, epoch); index entries are sealed to it."""
        return self._factory.make_key(category_label(category, epoch))

    def category_public_key(self, category: str, epoch: int) -> umbral_pre.PublicKey:
        """The Umbral public key of one (category, epoch)."""
        return self.delegating_secret_key(category, epoch).public_key()

    def tag(self, category: str, epoch: int) -> CategoryTag:
        """The blinded on-chain tag: HMAC-SHA256(blinding key, category_label(category, epoch))."""
        return CategoryTag(
            hmac.new(self._blinding, category_label(category, epoch), hashlib.sha256).digest()
        )

    def operation_nonce(self, operation_id: bytes, step: int) -> bytes:
        """The grant nonce of step ``step`` of a logged operation (HMAC-SHA256 of the operation
        key over "grant-nonce" || id || step): a resumed operation derives the same nonce, hence
        the same policy id; without the master secret it looks random and links nothing."""
        if not 1 <= len(operation_id) <= 64 or not 0 <= step < 2**32:
            raise ValueError("an operation id is 1..64 bytes and a step a uint32")
        msg = b"grant-nonce" + bytes([len(operation_id)]) + operation_id + step.to_bytes(4, "big")
        return hmac.new(self._operations, msg, hashlib.sha256).digest()

    @property
    def state_log_key(self) -> bytes:
        """**Secret:** the 32-byte key that seals this patient's on-chain state log
        (categories and epochs; ``PatientProfiles.logState``)."""
        return self._state

    def drug_link_secret(self, index: int) -> bytes:
        """**Secret:** this patient's ``index``-th (uint32) dispense link secret (DrugTrace)."""
        return _derive(self._master, b"patient/drug-link/" + index.to_bytes(4, "big"))

    def study_participant_secret(self, study_id: bytes) -> bytes:
        """**Secret:** this patient's secp256k1 participant key of study ``study_id``."""
        return _derive_eth_key(self._master, b"patient/study-participant/" + bytes(study_id))

    # signing, box, ethereum

    def signer(self) -> umbral_pre.Signer:
        """The Umbral signer for kfrags and policy bindings (never a delegating key)."""
        return umbral_pre.Signer(self._signing_sk)

    @property
    def verifying_key(self) -> umbral_pre.PublicKey:
        """The public key of :meth:`signer`, registered in the patient profile."""
        return self._signing_sk.public_key()

    @property
    def box_private_key(self) -> BoxPrivateKey:
        """The patient's X25519 private key."""
        return self._box

    @property
    def box_public_key(self) -> BoxPublicKey:
        """The patient's X25519 public key."""
        return self._box.public_key

    @property
    def ethereum_key(self) -> bytes:
        """The 32-byte Ethereum private key of the patient account."""
        return self._eth

    @property
    def address(self) -> Address:
        """The patient's EIP-55 Ethereum address."""
        return self._addr

    def public_keys(self) -> PatientPublicKeys:
        """The public bundle to register on chain."""
        return PatientPublicKeys(
            self.address, self.verifying_key.to_compressed_bytes(), bytes(self.box_public_key)
        )


class MemberKeys:
    """A consortium member's keys (receiving, box, Ethereum), derived from a 32-byte seed.

    ``ethereum_key`` overrides the derived Ethereum key (e.g. a funded dev account).
    """

    __slots__ = ("_addr", "_box", "_eth", "_receiving_sk", "_seed")

    def __init__(self, seed: bytes, *, ethereum_key: bytes | None = None) -> None:
        self._seed = _check_secret(seed, "member seed")
        factory = umbral_pre.SecretKeyFactory.from_secure_randomness(
            _derive(seed, b"member/umbral-receiving")
        )
        self._receiving_sk = factory.make_key(b"receiving")
        self._box = BoxPrivateKey(_derive(seed, b"member/x25519-box"))
        self._eth = (
            _check_eth_key(ethereum_key)
            if ethereum_key is not None
            else _derive_eth_key(seed, b"member/ethereum")
        )
        self._addr = _address(self._eth)

    def __repr__(self) -> str:
        return f"MemberKeys(address={self.address})"

    @classmethod
    def generate(cls, *, rng: Rng | None = None, ethereum_key: bytes | None = None) -> MemberKeys:
        """A member with a fresh random seed."""
        return cls(_random(rng, MASTER_SECRET_SIZE), ethereum_key=ethereum_key)

    def rotated(self, *, rng: Rng | None = None) -> MemberKeys:
        """New receiving and box keys (a fresh seed) under the SAME Ethereum key: the
        address is the member's registry identity (``rotateKeys``). The Ethereum key is
        then an explicit override, as it no longer derives from the seed."""
        return MemberKeys(_random(rng, MASTER_SECRET_SIZE), ethereum_key=self._eth)

    @property
    def seed(self) -> bytes:
        """**Warning:** the secret every member key derives from."""
        return self._seed

    @property
    def ethereum_key_overridden(self) -> bool:
        """True if the Ethereum key was given explicitly instead of derived."""
        return self._eth != _derive_eth_key(self._seed, b"member/ethereum")

    @property
    def receiving_secret_key(self) -> umbral_pre.SecretKey:
        """The Umbral secret key that opens entries re-encrypted to this member."""
        return self._receiving_sk

    @property
    def receiving_public_key(self) -> umbral_pre.PublicKey:
        """The Umbral public key grants are made to."""
        return self._receiving_sk.public_key()

    @property
    def box_private_key(self) -> BoxPrivateKey:
        """The member's X25519 private key."""
        return self._box

    @property
    def box_public_key(self) -> BoxPublicKey:
        """The member's X25519 public key."""
        return self._box.public_key

    @property
    def ethereum_key(self) -> bytes:
        """The 32-byte Ethereum private key of the member account."""
        return self._eth

    @property
    def address(self) -> Address:
        """The member's EIP-55 Ethereum address."""
        return self._addr

    def public_keys(self) -> MemberPublicKeys:
        """The public bundle to register on chain."""
        return MemberPublicKeys(
            self.address,
            self.receiving_public_key.to_compressed_bytes(),
            bytes(self.box_public_key),
        )
