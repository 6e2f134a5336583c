"""Index entries: the encrypted pointer + data key a patient's on-chain index holds.

An :class:`IndexEntry` is encoded canonically: ``EMIE`` 1.2, a fixed
:data:`COMPACT_ENTRY_SIZE`-byte layout without the fields the chain event and the opening
key already give (record id, author, category, epoch; see
:mod:`emrshare.crypto._compact_entry`), whenever its CID and media type fit; else 1.1
(u16be length, canonical CBOR array, zero padding to :data:`ENTRY_SIZE` bytes). Either way
the sealed entry's length says nothing about the category name or CID; it tells only
whether the media type is one of :data:`emrshare._media.MEDIA_TYPE_CODES`. 1.0 (release 1,
unpadded) is still read. The entry is then sealed with Umbral to the patient's (category,
epoch) public key. The result, a
:class:`SealedEntry` (header ``EMSE`` 1.0 + capsule + ciphertext), is what goes on chain.
Anyone can parse a ``SealedEntry`` and hash its capsule; only the patient, or a grantee
holding M verified capsule fragments, can open it.

The entry's author signs (EIP-191 ``personal_sign`` over a 32-byte digest) a digest that
binds the patient address, record id, category, epoch, CID and plaintext SHA-256, so a
grantee can check who wrote the record and that it was written for this patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import umbral_pre
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare._media import MAX_MEDIA_TYPE_BYTES, validate_media_type
from emrshare.crypto._compact_entry import COMPACT_BODY_SIZE, CompactBody, EntryContext, EntryOrigin
from emrshare.crypto._eip191 import recover_eip191, sign_eip191
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
from emrshare.crypto.envelope import DataKey
from emrshare.crypto.keys import (
    MAX_EPOCH,
    PatientKeys,
    validate_category,
)
from emrshare.errors import (
    DecryptionError,
    InvalidInput,
    Unavailable,
    VerificationError,
    WireFormatError,
)
from emrshare.types import Address, Cid, RecordId

__all__ = [
    "COMPACT_ENTRY_SIZE",
    "ENTRY_SIZE",
    "EntryContext",
    "EntryOrigin",
    "MAX_MEDIA_TYPE_BYTES",
    "IndexEntry",
    "SealedEntry",
    "author_digest",
    "recover_eip191",
    "sign_eip191",
    "open_entry",
    "open_entry_reencrypted",
    "seal_entry",
    "validate_media_type",
]

ENTRY_BRAND = b"EMIE"
#: Index entries are written as version 1.2 (compact) when they fit, else 1.1 (padded);
#: 1.0 (release 1, unpadded) is still read.
ENTRY_MINOR = 2
#: Every 1.2 entry encoding (header included) is this many bytes (333 sealed).
COMPACT_ENTRY_SIZE = HEADER_SIZE + COMPACT_BODY_SIZE
#: The longest CID an entry carries, in bytes (a CIDv1 sha2-256 in base32 takes 59).
MAX_CID_BYTES = 256
#: Every entry encoding (header included) is padded to this many bytes: the longest valid
#: entry (256-byte CID, 127-byte media type, 64-byte category, largest integers) takes
#: 677, so a sealed entry's length says nothing about its category, media type or CID.
ENTRY_SIZE = 704
SEALED_BRAND = b"EMSE"
#: An Umbral capsule's serialized size (umbral-pre 0.11: two points and a scalar).
_CAPSULE_SIZE = 105
#: The shortest well-formed sealed entry: header, capsule length, capsule, one byte.
_SEALED_MIN = 6 + 2 + _CAPSULE_SIZE + 1
_AUTHOR_DOMAIN = keccak(b"emrshare.IndexEntry.author.v1")


def author_digest(
    *,
    patient: Address,
    record_id: bytes,
    category: str,
    epoch: int,
    cid: str,
    plaintext_sha256: bytes,
) -> bytes:
    """The 32-byte digest an author signs::

        keccak256(abi.encode(bytes32 domain, address patient, bytes32 record_id,
                             bytes32 keccak256(category), uint32 epoch,
                             bytes32 keccak256(cid), bytes32 plaintext_sha256))

    with ``domain = keccak256("emrshare.IndexEntry.author.v1")``.
    """
    return bytes(
        keccak(
            abi_encode(
                ["bytes32", "address", "bytes32", "bytes32", "uint32", "bytes32", "bytes32"],
                [
                    _AUTHOR_DOMAIN,
                    patient,
                    record_id,
                    keccak(category.encode()),
                    epoch,
                    keccak(cid.encode()),
                    plaintext_sha256,
                ],
            )
        )
    )


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One record's index entry (the plaintext inside a :class:`SealedEntry`).

    Build with :meth:`create` (which signs); check the author with :meth:`verify_author`.
    ``created_at`` is unix seconds; ``author_signature`` is 65 bytes (r, s, v).
    """

    record_id: RecordId
    cid: Cid
    data_key: DataKey
    plaintext_sha256: bytes
    size: int
    media_type: str
    category: str
    epoch: int
    created_at: int
    author: Address
    author_signature: bytes

    def __post_init__(self) -> None:
        expect_bytes(self.record_id, "record_id", 32)
        if len(expect_str(self.cid, "cid", MAX_CID_BYTES).encode()) > MAX_CID_BYTES:
            raise WireFormatError(f"index entry: the CID is longer than {MAX_CID_BYTES} bytes")
        expect_bytes(self.plaintext_sha256, "plaintext_sha256", 32)
        expect_int(self.size, "size")
        expect_str(self.media_type, "media_type", 255)
        try:
            validate_category(self.category)
        except ValueError as exc:
            raise WireFormatError(f"index entry: {exc}") from exc
        expect_int(self.epoch, "epoch", 0, MAX_EPOCH)
        expect_int(self.created_at, "created_at")
        try:
            _address_bytes(self.author)
        except ValueError as exc:
            raise WireFormatError(f"index entry author: {exc}") from exc
        expect_bytes(self.author_signature, "author_signature", 65)

    @classmethod
    def create(
        cls,
        *,
        patient: Address,
        record_id: RecordId,
        cid: Cid,
        data_key: DataKey,
        plaintext_sha256: bytes,
        size: int,
        media_type: str,
        category: str,
        epoch: int,
        created_at: int,
        author_key: bytes,
    ) -> IndexEntry:
        """Build an entry and sign it with the author's Ethereum private key.

        Raises :class:`InvalidMediaType` for a media type :func:`validate_media_type`
        refuses and :class:`InvalidCategory` for a bad category name.
        """
        validate_media_type(media_type)
        validate_category(category)
        digest = author_digest(
            patient=patient,
            record_id=record_id,
            category=category,
            epoch=epoch,
            cid=cid,
            plaintext_sha256=plaintext_sha256,
        )
        signature, author = sign_eip191(digest, author_key)
        return cls(
            record_id,
            cid,
            data_key,
            plaintext_sha256,
            size,
            media_type,
            category,
            epoch,
            created_at,
            author,
            signature,
        )

    def author_digest(self, patient: Address) -> bytes:
        """The digest the author signed, for ``patient``."""
        return author_digest(
            patient=patient,
            record_id=self.record_id,
            category=self.category,
            epoch=self.epoch,
            cid=self.cid,
            plaintext_sha256=self.plaintext_sha256,
        )

    def verify_author(self, patient: Address) -> None:
        """Check the author signature for ``patient``; raise :class:`VerificationError`."""
        signer = recover_eip191(self.author_digest(patient), self.author_signature)
        if signer is None:
            raise VerificationError(
                "the index entry's author signature is malformed; do not trust this record"
            )
        if signer != self.author:
            raise VerificationError(
                f"the index entry claims author {self.author} but was not signed by it for "
                f"patient {patient}; do not trust this record"
            )

    def __bytes__(self) -> bytes:
        """The encoding: 1.2 (:data:`COMPACT_ENTRY_SIZE` bytes) if the entry fits it, else
        1.1 (:data:`ENTRY_SIZE` bytes). See :meth:`encode`."""
        return self.encode()

    def encode(self, minor: int | None = None) -> bytes:
        """The encoding of version 1.``minor`` (1 or 2); None: 1.2 if the CID and media
        type fit it, else 1.1. Raises :class:`WireFormatError` if the entry does not fit
        1.2 and 1.2 was asked for, :class:`InvalidMediaType` if the media type is longer
        than :data:`MAX_MEDIA_TYPE_BYTES` (an entry read from a release-1 encoding may be).
        """
        validate_media_type(self.media_type)
        if minor in (None, 2):
            body = CompactBody(
                self.cid,
                self.data_key.key,
                self.plaintext_sha256,
                self.size,
                self.created_at,
                self.media_type,
                self.author_signature,
            ).encode()
            if body is not None:
                return header(ENTRY_BRAND, 1, 2) + body
            if minor == 2:
                raise WireFormatError(
                    "index entry: its CID, media type, size or time does not fit version 1.2"
                )
        elif minor != 1:
            raise WireFormatError(f"index entry: cannot write version 1.{minor}")
        return header(ENTRY_BRAND, 1, 1) + pad(
            self._body(), ENTRY_SIZE - HEADER_SIZE, "index entry"
        )

    def _body(self) -> bytes:
        return cbor_encode(
            [
                bytes(self.record_id),
                self.cid,
                self.data_key.key,
                self.plaintext_sha256,
                self.size,
                self.media_type,
                self.category,
                self.epoch,
                self.created_at,
                _address_bytes(self.author),
                self.author_signature,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, context: EntryContext | None = None) -> IndexEntry:
        """Parse the canonical encoding (does not check the author signature).

        A 1.2 encoding needs ``context`` (its record id, author, category and epoch);
        without it, :class:`InvalidInput`. Older encodings carry those fields themselves
        and ignore ``context`` (the opening functions compare them with it).
        """
        minor, body = split_header(data, ENTRY_BRAND, 1, "index entry", max_minor=ENTRY_MINOR)
        if minor == 2:
            if context is None:
                raise InvalidInput(
                    "a version 1.2 index entry leaves out its record id, author, category and "
                    "epoch: pass context=EntryContext(...) from its chain event and key"
                )
            c = CompactBody.decode(body)
            return cls(
                context.record_id,
                Cid(c.cid),
                DataKey(c.data_key),
                c.plaintext_sha256,
                c.size,
                c.media_type,
                context.category,
                context.epoch,
                c.created_at,
                context.author,
                c.author_signature,
            )
        if minor == 1:
            body = unpad(body, ENTRY_SIZE - HEADER_SIZE, "index entry")
        f = cbor_decode_list(body, "index entry", 11)
        return cls(
            RecordId(expect_bytes(f[0], "record_id", 32)),
            Cid(expect_str(f[1], "cid", MAX_CID_BYTES)),
            DataKey(expect_bytes(f[2], "data_key", 32)),
            f[3],
            f[4],
            f[5],
            expect_str(f[6], "category", 64),
            f[7],
            f[8],
            _checksum(expect_bytes(f[9], "author", 20)),
            f[10],
        )


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """An index entry sealed to a category-epoch key, as stored on chain (unverified).

    Encoding: header ``EMSE`` 1.0, u16be capsule length, Umbral capsule bytes, Umbral
    ciphertext (the DEM ciphertext of the entry encoding).
    """

    capsule: umbral_pre.Capsule
    ciphertext: bytes

    @property
    def capsule_bytes(self) -> bytes:
        """``bytes(capsule)`` as umbral-pre serializes it."""
        return bytes(self.capsule)

    @property
    def capsule_hash(self) -> bytes:
        """keccak256 of the capsule bytes: what proxy requests sign and proxies check."""
        return bytes(keccak(bytes(self.capsule)))

    def __bytes__(self) -> bytes:
        cap = bytes(self.capsule)
        return header(SEALED_BRAND, 1) + len(cap).to_bytes(2, "big") + cap + self.ciphertext

    @staticmethod
    def raw_capsule(data: bytes) -> bytes | None:
        """A sealed entry's capsule bytes, unparsed (parsing costs ~0.2 ms); else None."""
        if len(data) < _SEALED_MIN or data[:4] != SEALED_BRAND:
            return None
        try:
            _, body = split_header(data, SEALED_BRAND, 1, "sealed index entry")
        except WireFormatError:
            return None
        ok = int.from_bytes(body[:2], "big") == _CAPSULE_SIZE and len(body) > 2 + _CAPSULE_SIZE
        return bytes(body[2 : 2 + _CAPSULE_SIZE]) if ok else None

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedEntry:
        """Parse sealed-entry bytes (from chain). Raises :class:`WireFormatError`."""
        _, body = split_header(data, SEALED_BRAND, 1, "sealed index entry")
        if len(body) < 2:
            raise WireFormatError("sealed index entry is truncated")
        n = int.from_bytes(body[:2], "big")
        if len(body) < 2 + n:
            raise WireFormatError("sealed index entry is truncated")
        try:
            capsule = umbral_pre.Capsule.from_bytes(body[2 : 2 + n])
        except Exception as exc:
            raise WireFormatError("sealed index entry: the capsule does not parse") from exc
        if bytes(capsule) != body[2 : 2 + n]:
            raise WireFormatError("sealed index entry: the capsule is not canonical")
        return cls(capsule, body[2 + n :])


def seal_entry(entry: IndexEntry, category_public_key: umbral_pre.PublicKey) -> SealedEntry:
    """Encrypt ``entry`` to a (category, epoch) public key with Umbral."""
    capsule, ciphertext = umbral_pre.encrypt(category_public_key, bytes(entry))
    return SealedEntry(capsule, bytes(ciphertext))


def _opened(plain: bytes, category: str, epoch: int, origin: EntryOrigin | None) -> IndexEntry:
    plain = bytes(plain)
    if origin is None and plain[:6] == header(ENTRY_BRAND, 1, 2):
        raise InvalidInput(
            "a version 1.2 index entry takes its record id and author from its chain event: "
            "pass origin= (the EntryAppended event) to open it"
        )
    context = None if origin is None else EntryContext.of(origin, category, epoch)
    try:
        entry = IndexEntry.from_bytes(plain, context=context)
    except WireFormatError as exc:
        raise DecryptionError() from exc
    if entry.category != category or entry.epoch != epoch:
        # The entry decrypted under this key but names another category/epoch: someone
        # sealed a mislabelled entry. Treat it as a forgery.
        raise VerificationError(
            "the index entry names a different category or epoch than the key that "
            "opened it; do not trust this record"
        )
    if context is not None and (
        bytes(entry.record_id) != bytes(context.record_id) or entry.author != context.author
    ):
        # A 1.0/1.1 entry names its record id and author: they must be the event's.
        raise VerificationError(
            "the index entry names a different record id or author than its chain event; "
            "do not trust this record"
        )
    return entry


def open_entry(
    sealed: SealedEntry,
    patient: PatientKeys,
    category: str,
    epoch: int,
    *,
    origin: EntryOrigin | None = None,
) -> IndexEntry:
    """Open an entry as the patient, with the (category, epoch) key the tag names.

    ``origin`` is the chain event that carried it (its record id and author): a 1.2 entry
    does not repeat them, so it cannot be opened without (:class:`InvalidInput`); an older
    entry's own must equal it.

    Raises :class:`DecryptionError` if the entry was not sealed to that key or was tampered
    with, :class:`VerificationError` if it names another category, epoch, record id or
    author. The author signature is not checked here: call :meth:`IndexEntry.verify_author`.
    """
    try:
        plain = umbral_pre.decrypt_original(
            patient.delegating_secret_key(category, epoch), sealed.capsule, sealed.ciphertext
        )
    except Exception as exc:
        raise DecryptionError() from exc
    return _opened(plain, category, epoch, origin)


def open_entry_reencrypted(
    sealed: SealedEntry,
    receiving_secret_key: umbral_pre.SecretKey,
    category_public_key: umbral_pre.PublicKey,
    verified_cfrags: Iterable[umbral_pre.VerifiedCapsuleFrag],
    *,
    threshold: int,
    category: str,
    epoch: int,
    origin: EntryOrigin | None = None,
) -> IndexEntry:
    """Open an entry from at least ``threshold`` distinct verified capsule fragments
    (``origin``: as :func:`open_entry`).

    Duplicates count once; fewer than ``threshold`` distinct fragments raise
    :class:`Unavailable`; a failed decryption raises :class:`DecryptionError`.
    """
    distinct: dict[bytes, umbral_pre.VerifiedCapsuleFrag] = {}
    for cfrag in verified_cfrags:
        if not isinstance(cfrag, umbral_pre.VerifiedCapsuleFrag):
            raise TypeError("only VerifiedCapsuleFrag values can be combined; verify first")
        distinct.setdefault(bytes(cfrag), cfrag)
    if len(distinct) < threshold:
        raise Unavailable(
            f"need {threshold} distinct verified capsule fragments, got {len(distinct)}; "
            "ask more proxies",
            needed=threshold,
            got=len(distinct),
        )
    try:
        plain = umbral_pre.decrypt_reencrypted(
            receiving_secret_key,
            category_public_key,
            sealed.capsule,
            list(distinct.values())[:threshold],
            sealed.ciphertext,
        )
    except Exception as exc:
        raise DecryptionError() from exc
    if plain is None:
        raise DecryptionError()
    return _opened(plain, category, epoch, origin)
