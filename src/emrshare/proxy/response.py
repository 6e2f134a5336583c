"""Signed proxy responses: every answer a proxy gives is bound to the request it answers.

A proxy signs each answer, served or refused, with its Ethereum key (the key of its
registry account), so what it said can be attributed to it later: a cfrag that does not
verify becomes evidence (:mod:`emrshare.proxy.evidence`), and a false "revoked" is the
proxy's signed word.

The signed digest (documented in docs/proxy-operations.md, "Signed responses")::

    keccak256(0x19 || 0x00 || grantsContract(20) || abi.encode(
        RESPONSE_TYPEHASH, chainId, proxy, requestDigest, kind,
        outcome, block, keccak256(delegatingPk)))

EIP-191 version 0x00 ("data with intended validator", the grants contract): the prefix
makes it no Ethereum transaction, no ``personal_sign`` message and no EIP-712 message
(0x19 0x01), so the signature cannot be replayed as any of them. ``RESPONSE_TYPEHASH``
is ``keccak256("emrshare-proxy-response/1")``; ``requestDigest`` the grantee's EIP-712
``ProxyRequest`` digest; ``kind`` 0 for served, 1 for refused; ``outcome`` for a serve
``keccak256(keccak256(cfrag_0) || … || keccak256(cfrag_n))`` and for a refusal
``keccak256(reason)`` (the reason string, e.g. ``policy_revoked``); ``block`` the block
the proxy evaluated (0 when it refused before reading the chain); ``delegatingPk`` the
33-byte delegating (category) public key of the patient-signed kfrag binding the proxy
used (empty for a refusal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_keys.main import KeyAPI
from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from emrshare.errors import VerificationError

__all__ = [
    "Bound",
    "DigestSigner",
    "KIND_REFUSED",
    "KIND_SERVED",
    "RESPONSE_TYPEHASH",
    "cfrags_hash",
    "recover_response",
    "refused_digest",
    "response_digest",
    "served_digest",
    "sign_digest",
]

RESPONSE_TYPEHASH = keccak(b"emrshare-proxy-response/1")
KIND_SERVED = 0
KIND_REFUSED = 1


@dataclass(frozen=True, slots=True)
class Bound:
    """What every answer is bound to: the chain, grants contract, proxy and request."""

    chain_id: int
    grants_contract: str
    proxy: str
    request_digest: bytes


def cfrags_hash(cfrag_hashes: Sequence[bytes]) -> bytes:
    """``keccak256`` of the concatenated ``keccak256(cfrag)`` of a serve, in order."""
    return keccak(b"".join(cfrag_hashes))


def response_digest(
    *,
    chain_id: int,
    grants_contract: str,
    proxy: str,
    request_digest: bytes,
    kind: int,
    outcome: bytes,
    block: int,
    delegating_pk: bytes,
) -> bytes:
    """The digest a proxy signs for one answer (see the module docstring)."""
    body = abi_encode(
        ["bytes32", "uint256", "address", "bytes32", "uint8", "bytes32", "uint256", "bytes32"],
        [
            RESPONSE_TYPEHASH,
            chain_id,
            to_checksum_address(proxy),
            request_digest,
            kind,
            outcome,
            block,
            keccak(delegating_pk),
        ],
    )
    return keccak(b"\x19\x00" + to_canonical_address(grants_contract) + body)


def served_digest(
    bound: Bound,
    *,
    cfrag_hashes: Sequence[bytes],
    block: int,
    delegating_pk: bytes,
) -> bytes:
    """The digest of a serve: the cfrags (by their hashes), the block and delegating key."""
    return response_digest(
        chain_id=bound.chain_id,
        grants_contract=bound.grants_contract,
        proxy=bound.proxy,
        request_digest=bound.request_digest,
        kind=KIND_SERVED,
        outcome=cfrags_hash(cfrag_hashes),
        block=block,
        delegating_pk=delegating_pk,
    )


def refused_digest(
    bound: Bound,
    *,
    reason: str,
    block: int | None,
) -> bytes:
    """The digest of a refusal: the machine-readable reason and the block (0 if none)."""
    return response_digest(
        chain_id=bound.chain_id,
        grants_contract=bound.grants_contract,
        proxy=bound.proxy,
        request_digest=bound.request_digest,
        kind=KIND_REFUSED,
        outcome=keccak(reason.encode()),
        block=block or 0,
        delegating_pk=b"",
    )


def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """A 65-byte (r, s, v) signature of ``digest`` with the proxy's Ethereum key."""
    return bytes(Account.unsafe_sign_hash(digest, private_key).signature)


class DigestSigner:
    """:func:`sign_digest` with the key parsed once (a proxy signs every answer with the
    same key; parsing it and deriving its account per answer cost more than signing).
    Same signatures: RFC 6979 deterministic ECDSA, low s, ``v`` 27 or 28."""

    __slots__ = ("_key",)

    def __init__(self, private_key: bytes) -> None:
        self._key = KeyAPI.PrivateKey(private_key)

    def __repr__(self) -> str:
        return "DigestSigner(<key hidden>)"

    def sign(self, digest: bytes) -> bytes:
        sig = self._key.sign_msg_hash(digest)
        return sig.to_bytes()[:64] + bytes([sig.v + 27])


def recover_response(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest``; :class:`VerificationError` if the
    signature is malformed."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise VerificationError("the response signature is not a 65-byte (r, s, v) signature")
    try:
        sig = KeyAPI.Signature(signature[:64] + bytes([signature[64] - 27]))
        return str(sig.recover_public_key_from_msg_hash(digest).to_checksum_address())
    except Exception as exc:  # eth-keys raises several unrelated types
        raise VerificationError("the response signature is malformed") from exc
