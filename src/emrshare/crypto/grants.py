"""Threshold grants: kfrags sealed to proxies, the grantee map, cfrag checks.

Making a grant (patient side, :func:`make_grant`): generate N kfrags from the
(category, epoch) delegating key to the grantee's receiving key, threshold M, signed with
``sign_delegating_key`` and ``sign_receiving_key``. Each kfrag is wrapped with the
:class:`PolicyBinding` (policy id, patient, grantee, tag, epoch, category public key,
grantee receiving key), signed by the patient's kfrag signer over the binding and the
kfrag, and sealed to one proxy's X25519 key. The grantee gets a sealed, signed
:class:`GranteeMap` (category, epoch, category public key, patient verifying key, M),
padded to :data:`GRANTEE_MAP_PADDED_SIZE` bytes so its length hides the category name.

Proxy side: :func:`open_sealed_kfrag` → :class:`ProxyKeyFrag` (unverified) →
:meth:`ProxyKeyFrag.verify` against what the chain says → :class:`VerifiedProxyKeyFrag`
→ :func:`reencrypt`. ``bytes(VerifiedProxyKeyFrag)`` can be stored (encrypted at rest)
and reloaded with ``ProxyKeyFrag.from_bytes(...).verify(...)``.

Requester side: :func:`verify_cfrags` sorts the proxies' answers into verified and
failed (with a reason); :func:`open_entry_as_grantee` combines M distinct verified ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import umbral_pre

from emrshare._addresses import address_bytes as _address_bytes
from emrshare._addresses import checksum as _checksum
from emrshare.crypto._signed import check_sig, open_signed, seal_signed, sign, wire_category
from emrshare.crypto._wire import (
    cbor_decode_list,
    cbor_encode,
    expect_bytes,
    expect_int,
    header,
    split_header,
)
from emrshare.crypto.entry import EntryOrigin, IndexEntry, SealedEntry, open_entry_reencrypted
from emrshare.crypto.guardian import GrantingKeys
from emrshare.crypto.keys import (
    MAX_EPOCH,
    MemberKeys,
    MemberPublicKeys,
    _umbral_pk,
)
from emrshare.crypto.sealing import open_sealed, seal
from emrshare.errors import VerificationError, WireFormatError
from emrshare.types import Address, CategoryTag, PolicyId

__all__ = [
    "GRANTEE_MAP_PADDED_SIZE",
    "CfragCheck",
    "Grant",
    "GranteeMap",
    "PolicyBinding",
    "ProxyKeyFrag",
    "VerifiedProxyKeyFrag",
    "make_grant",
    "open_entry_as_grantee",
    "open_grantee_map",
    "open_sealed_kfrag",
    "reencrypt",
    "verify_cfrags",
]

PROXY_KFRAG_BRAND = b"EMPK"
SEALED_KFRAG_BRAND = b"EMSK"
GRANTEE_MAP_BRAND = b"EMGM"
_KFRAG_SIG_DOMAIN = b"emrshare/kfrag-binding/v1"
_MAP_SIG_DOMAIN = b"emrshare/grantee-map/v1"
#: The signed grantee map is padded to this many bytes before sealing (version 1.1): the
#: longest one (a 64-byte category name, the largest epoch and threshold) takes 302, so
#: every sealed map is 380 bytes whatever the category (the chain's limit is 2048).
GRANTEE_MAP_PADDED_SIZE = 320


@dataclass(frozen=True, slots=True)
class PolicyBinding:
    """What one kfrag is for. The proxy compares every field with the chain."""

    policy_id: PolicyId
    patient: Address
    grantee: Address
    tag: CategoryTag
    epoch: int
    category_public_key_bytes: bytes
    grantee_receiving_key_bytes: bytes

    def __post_init__(self) -> None:
        expect_bytes(self.policy_id, "policy_id", 32)
        expect_bytes(self.tag, "tag", 32)
        expect_int(self.epoch, "epoch", 0, MAX_EPOCH)
        _umbral_pk(self.category_public_key_bytes, "category public key")
        _umbral_pk(self.grantee_receiving_key_bytes, "grantee receiving key")

    @property
    def category_public_key(self) -> umbral_pre.PublicKey:
        """The (category, epoch) delegating public key the kfrag was made from."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.category_public_key_bytes)

    @property
    def grantee_receiving_key(self) -> umbral_pre.PublicKey:
        """The grantee's Umbral receiving key the kfrag re-encrypts to."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.grantee_receiving_key_bytes)

    def _fields(self) -> list[object]:
        return [
            bytes(self.policy_id),
            _address_bytes(self.patient),
            _address_bytes(self.grantee),
            bytes(self.tag),
            self.epoch,
            self.category_public_key_bytes,
            self.grantee_receiving_key_bytes,
        ]

    @classmethod
    def _parse(cls, f: list[object]) -> PolicyBinding:
        return cls(
            PolicyId(expect_bytes(f[0], "policy_id", 32)),
            _checksum(expect_bytes(f[1], "patient", 20)),
            _checksum(expect_bytes(f[2], "grantee", 20)),
            CategoryTag(expect_bytes(f[3], "tag", 32)),
            expect_int(f[4], "epoch", 0, MAX_EPOCH),
            expect_bytes(f[5], "category public key", 33),
            expect_bytes(f[6], "grantee receiving key", 33),
        )


@dataclass(frozen=True, slots=True)
class ProxyKeyFrag:
    """A kfrag with its policy binding and the patient's signature (unverified).

    Encoding: header ``EMPK`` 1.0 + canonical CBOR array
    ``[policy_id, patient, grantee, tag, epoch, category_pk, receiving_pk, kfrag, sig]``.
    """

    binding: PolicyBinding
    kfrag: umbral_pre.KeyFrag
    signature: bytes

    def __repr__(self) -> str:
        return f"ProxyKeyFrag(policy_id=0x{bytes(self.binding.policy_id).hex()}, unverified)"

    def _signed_part(self) -> bytes:
        return cbor_encode([*self.binding._fields(), bytes(self.kfrag)])

    def __bytes__(self) -> bytes:
        return header(PROXY_KFRAG_BRAND, 1) + cbor_encode(
            [*self.binding._fields(), bytes(self.kfrag), self.signature]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ProxyKeyFrag:
        """Parse (no checks beyond the format; call :meth:`verify`)."""
        _, body = split_header(data, PROXY_KFRAG_BRAND, 1, "proxy kfrag")
        f = cbor_decode_list(body, "proxy kfrag", 9)
        binding = PolicyBinding._parse(f)
        raw = expect_bytes(f[7], "kfrag")
        try:
            kfrag = umbral_pre.KeyFrag.from_bytes(raw)
        except Exception as exc:
            raise WireFormatError("proxy kfrag: the kfrag does not parse") from exc
        if bytes(kfrag) != raw:  # umbral-pre ignores trailing bytes; one kfrag, one encoding
            raise WireFormatError("proxy kfrag: the kfrag is not canonical")
        return cls(binding, kfrag, expect_bytes(f[8], "signature", 64))

    def verify(
        self,
        *,
        patient_verifying_key: umbral_pre.PublicKey,
        policy_id: PolicyId,
        patient: Address,
        grantee: Address,
        tag: CategoryTag,
        epoch: int,
        grantee_receiving_key: umbral_pre.PublicKey,
    ) -> VerifiedProxyKeyFrag:
        """Check the patient's signature, that the binding matches what the chain says
        (every keyword but the first comes from the grant event and the member registry),
        and the kfrag itself. Raises :class:`VerificationError`.
        """
        if not check_sig(
            patient_verifying_key, _KFRAG_SIG_DOMAIN, self._signed_part(), self.signature
        ):
            raise VerificationError(
                f"the kfrag for policy 0x{bytes(self.binding.policy_id).hex()} is not signed "
                f"by patient {patient}'s verifying key; ignore it"
            )
        expected = (
            bytes(policy_id),
            patient,
            grantee,
            bytes(tag),
            epoch,
            grantee_receiving_key.to_compressed_bytes(),
        )
        b = self.binding
        actual = (
            bytes(b.policy_id),
            b.patient,
            b.grantee,
            bytes(b.tag),
            b.epoch,
            b.grantee_receiving_key_bytes,
        )
        if actual != expected:
            raise VerificationError(
                f"the kfrag is bound to policy 0x{bytes(b.policy_id).hex()} "
                f"(patient {b.patient}, grantee {b.grantee}, epoch {b.epoch}), not to the "
                "policy the chain announced; ignore it"
            )
        try:
            verified = self.kfrag.verify(
                patient_verifying_key, b.category_public_key, grantee_receiving_key
            )
        except Exception as exc:
            raise VerificationError(
                f"the kfrag for policy 0x{bytes(b.policy_id).hex()} failed Umbral "
                "verification; ignore it"
            ) from exc
        return VerifiedProxyKeyFrag(b, verified, self.signature)


@dataclass(frozen=True, slots=True)
class VerifiedProxyKeyFrag:
    """A kfrag that passed :meth:`ProxyKeyFrag.verify`. No ``from_bytes``: reload through
    ``ProxyKeyFrag.from_bytes(b).verify(...)``.

    **Warning:** ``bytes(x)`` contains the kfrag; store it encrypted at rest.
    """

    binding: PolicyBinding
    kfrag: umbral_pre.VerifiedKeyFrag
    signature: bytes

    def __bytes__(self) -> bytes:
        return bytes(self.unverify())

    def __repr__(self) -> str:
        return f"VerifiedProxyKeyFrag(policy_id=0x{bytes(self.binding.policy_id).hex()})"

    def unverify(self) -> ProxyKeyFrag:
        """The unverified form (for serialization)."""
        return ProxyKeyFrag(self.binding, self.kfrag.unverify(), self.signature)


def reencrypt(
    capsule: umbral_pre.Capsule, kfrag: VerifiedProxyKeyFrag
) -> umbral_pre.VerifiedCapsuleFrag:
    """Re-encrypt one capsule with a verified kfrag (proxy side)."""
    if not isinstance(kfrag, VerifiedProxyKeyFrag):
        raise TypeError("reencrypt needs a VerifiedProxyKeyFrag; verify the kfrag first")
    return umbral_pre.reencrypt(capsule, kfrag.kfrag)


def open_sealed_kfrag(sealed: bytes, proxy: MemberKeys) -> ProxyKeyFrag:
    """Unseal a kfrag sealed to this proxy (from the grant event). Verify it next."""
    return ProxyKeyFrag.from_bytes(
        open_sealed(proxy.box_private_key, SEALED_KFRAG_BRAND, sealed, what="sealed kfrag")
    )


@dataclass(frozen=True, slots=True)
class GranteeMap:
    """What a grantee needs to use a grant; obtained only from :func:`open_grantee_map`."""

    policy_id: PolicyId
    patient: Address
    tag: CategoryTag
    category: str
    epoch: int
    category_public_key_bytes: bytes
    patient_verifying_key_bytes: bytes
    threshold: int

    @property
    def category_public_key(self) -> umbral_pre.PublicKey:
        """The (category, epoch) public key (the cfrags' delegating key)."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.category_public_key_bytes)

    @property
    def patient_verifying_key(self) -> umbral_pre.PublicKey:
        """The patient's kfrag verifying key."""
        return umbral_pre.PublicKey.from_compressed_bytes(self.patient_verifying_key_bytes)

    def _fields(self) -> list[object]:
        return [
            bytes(self.policy_id),
            _address_bytes(self.patient),
            bytes(self.tag),
            self.category,
            self.epoch,
            self.category_public_key_bytes,
            self.patient_verifying_key_bytes,
            self.threshold,
        ]


def open_grantee_map(
    sealed: bytes, grantee: MemberKeys, *, patient_verifying_key: umbral_pre.PublicKey
) -> GranteeMap:
    """Unseal and verify a grantee map. ``patient_verifying_key`` comes from the chain.

    Raises :class:`DecryptionError` (not for this grantee / tampered) or
    :class:`VerificationError` (not signed by that patient).
    """
    f = open_signed(
        grantee.box_private_key,
        GRANTEE_MAP_BRAND,
        sealed,
        what="grantee map",
        length=8,
        padded_size=GRANTEE_MAP_PADDED_SIZE,
    )
    category = wire_category(f[3], "grantee map")
    gmap = GranteeMap(
        PolicyId(expect_bytes(f[0], "policy_id", 32)),
        _checksum(expect_bytes(f[1], "patient", 20)),
        CategoryTag(expect_bytes(f[2], "tag", 32)),
        category,
        expect_int(f[4], "epoch", 0, MAX_EPOCH),
        expect_bytes(f[5], "category public key", 33),
        expect_bytes(f[6], "patient verifying key", 33),
        expect_int(f[7], "threshold", 1, 255),
    )
    _umbral_pk(gmap.category_public_key_bytes, "category public key")
    if gmap.patient_verifying_key_bytes != patient_verifying_key.to_compressed_bytes() or (
        not check_sig(
            patient_verifying_key,
            _MAP_SIG_DOMAIN,
            cbor_encode(gmap._fields()),
            expect_bytes(f[8], "signature", 64),
        )
    ):
        raise VerificationError(
            f"the grantee map for policy 0x{bytes(gmap.policy_id).hex()} is not signed by "
            "the patient's registered verifying key; ignore this grant"
        )
    return gmap


@dataclass(frozen=True, slots=True)
class Grant:
    """Everything the patient puts in the grant transaction."""

    binding: PolicyBinding
    threshold: int
    proxies: tuple[Address, ...]
    sealed_kfrags: tuple[bytes, ...]
    sealed_grantee_map: bytes

    def __repr__(self) -> str:
        return (
            f"Grant(policy_id=0x{bytes(self.binding.policy_id).hex()}, "
            f"grantee={self.binding.grantee}, threshold={self.threshold}/{len(self.proxies)})"
        )


def make_grant(
    patient: GrantingKeys,
    *,
    category: str,
    epoch: int,
    policy_id: PolicyId,
    grantee: MemberPublicKeys,
    proxies: Sequence[MemberPublicKeys],
    threshold: int,
) -> Grant:
    """Make the kfrags (M = ``threshold`` of N = ``len(proxies)``) and seal them.

    ``sealed_kfrags[i]`` is for ``proxies[i]``.
    """
    n = len(proxies)
    if not 1 <= threshold <= n <= 255:
        raise ValueError("a grant needs 1 <= threshold <= number of proxies <= 255")
    if len({p.address for p in proxies}) != n:
        raise ValueError("the proxies of a grant must be distinct")
    expect_bytes(policy_id, "policy_id", 32)
    signer = patient.signer()
    category_pk = patient.category_public_key(category, epoch)
    binding = PolicyBinding(
        policy_id,
        patient.address,
        grantee.address,
        patient.tag(category, epoch),
        epoch,
        category_pk.to_compressed_bytes(),
        grantee.receiving_key_bytes,
    )
    kfrags = umbral_pre.generate_kfrags(
        delegating_sk=patient.delegating_secret_key(category, epoch),
        receiving_pk=grantee.receiving_key,
        signer=signer,
        threshold=threshold,
        shares=n,
        sign_delegating_key=True,
        sign_receiving_key=True,
    )
    sealed = []
    for proxy, vkfrag in zip(proxies, kfrags, strict=True):
        kfrag = vkfrag.unverify()
        signed = cbor_encode([*binding._fields(), bytes(kfrag)])
        pkf = ProxyKeyFrag(binding, kfrag, sign(signer, _KFRAG_SIG_DOMAIN, signed))
        sealed.append(seal(proxy.box_key, SEALED_KFRAG_BRAND, bytes(pkf)))
    gmap = GranteeMap(
        policy_id,
        patient.address,
        binding.tag,
        category,
        epoch,
        binding.category_public_key_bytes,
        patient.verifying_key.to_compressed_bytes(),
        threshold,
    )
    return Grant(
        binding,
        threshold,
        tuple(p.address for p in proxies),
        tuple(sealed),
        seal_signed(
            grantee.box_key,
            GRANTEE_MAP_BRAND,
            signer,
            _MAP_SIG_DOMAIN,
            gmap._fields(),
            padded_size=GRANTEE_MAP_PADDED_SIZE,
        ),
    )


@dataclass(frozen=True, slots=True)
class CfragCheck:
    """The outcome of :func:`verify_cfrags`: verified fragments and failures, by proxy."""

    verified: dict[str, umbral_pre.VerifiedCapsuleFrag]
    failed: dict[str, str]


def verify_cfrags(
    capsule: umbral_pre.Capsule,
    cfrags: Mapping[str, bytes | umbral_pre.CapsuleFrag],
    grantee_map: GranteeMap,
    receiving_public_key: umbral_pre.PublicKey,
) -> CfragCheck:
    """Verify each proxy's capsule fragment; report which proxies returned bad ones.

    ``cfrags`` maps a proxy name or address to the bytes it returned.
    """
    verified: dict[str, umbral_pre.VerifiedCapsuleFrag] = {}
    failed: dict[str, str] = {}
    for proxy, raw in cfrags.items():
        try:
            cfrag = (
                raw
                if isinstance(raw, umbral_pre.CapsuleFrag)
                else (umbral_pre.CapsuleFrag.from_bytes(bytes(raw)))
            )
        except Exception:
            failed[proxy] = "malformed capsule fragment"
            continue
        if not isinstance(raw, umbral_pre.CapsuleFrag) and bytes(cfrag) != bytes(raw):
            # umbral-pre ignores trailing bytes: refuse them, one cfrag has one encoding.
            failed[proxy] = "malformed capsule fragment"
            continue
        try:
            verified[proxy] = cfrag.verify(
                capsule,
                grantee_map.patient_verifying_key,
                grantee_map.category_public_key,
                receiving_public_key,
            )
        except Exception:
            failed[proxy] = "capsule fragment failed verification"
    return CfragCheck(verified, failed)


def open_entry_as_grantee(
    sealed: SealedEntry,
    grantee: MemberKeys,
    grantee_map: GranteeMap,
    verified_cfrags: Iterable[umbral_pre.VerifiedCapsuleFrag],
    *,
    origin: EntryOrigin | None = None,
) -> IndexEntry:
    """Open a sealed entry from M distinct verified cfrags (requester side); ``origin``:
    as :func:`~emrshare.crypto.entry.open_entry`. Raises :class:`Unavailable` (too few
    distinct fragments), :class:`DecryptionError` or :class:`VerificationError`."""
    return open_entry_reencrypted(
        sealed,
        grantee.receiving_secret_key,
        grantee_map.category_public_key,
        verified_cfrags,
        threshold=grantee_map.threshold,
        category=grantee_map.category,
        epoch=grantee_map.epoch,
        origin=origin,
    )
