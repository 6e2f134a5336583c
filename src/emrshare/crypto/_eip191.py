"""EIP-191 ``personal_sign`` of 32-byte digests: the index-entry author signatures (and the
study consents that reuse them), fast paths over libsecp256k1 with eth-account's results."""

from __future__ import annotations

import coincurve
import umbral_pre
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.datatypes import PublicKey as EthPublicKey
from eth_utils.crypto import keccak

from emrshare._addresses import checksum as _checksum
from emrshare.types import Address

__all__ = ["recover_eip191", "sign_eip191"]

#: Half the secp256k1 group order: the largest ``s`` of a canonical (low-s) signature.
_SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def recover_eip191(digest: bytes, signature: bytes) -> Address | None:
    """The address that EIP-191-signed ``digest``, or None for a malformed signature."""
    # Fast path: secp256k1 recovery in umbral-pre's Rust code (eth-account's pure-Python
    # recovery costs ~7 ms, this ~0.8 ms). Both do standard ECDSA public-key recovery;
    # whatever the fast path cannot parse is left to eth-account to decide.
    if (
        len(signature) != 65
        or signature[64] not in (27, 28)
        or int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N
    ):
        # eth-account also reads v as 0/1 or EIP-155 (>= 35), and (r, n - s) with the
        # other v is the same signature: one signature would have many encodings.
        # Authors always write low s and v = 27/28 (see sign_eip191, EIP-2).
        return None
    prehash = _keccak(b"\x19Ethereum Signed Message:\n32" + digest)
    try:
        rec = umbral_pre.RecoverableSignature.from_be_bytes(
            signature[:64] + bytes([signature[64] - 27])
        )
        point = umbral_pre.PublicKey.recover_from_prehash(prehash, rec)
        full = EthPublicKey.from_compressed_bytes(point.to_compressed_bytes())
        return Address(full.to_checksum_address())
    except Exception:  # noqa: S110 - fall through to the authoritative slow path
        pass
    try:
        return Address(
            Account.recover_message(encode_defunct(primitive=digest), signature=signature)
        )
    except Exception:  # eth-account raises several types for malformed signatures
        return None


def _keccak(data: bytes) -> bytes:
    return bytes(keccak(data))


def sign_eip191(digest: bytes, key: bytes) -> tuple[bytes, Address]:
    """EIP-191 ``personal_sign`` of a 32-byte digest: 65 bytes (r, s, v = 27/28), and
    the signer's address.

    The same signature eth-account's ``sign_message`` makes (its coincurve backend signs
    with libsecp256k1's deterministic RFC 6979 nonces and low s), without its per-call
    key parsing and object layers, which dominated bulk writes.
    """
    prehash = _keccak(b"\x19Ethereum Signed Message:\n32" + digest)
    try:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("not a 32-byte key")
        private = coincurve.PrivateKey(key)
    except Exception:
        # Not a valid key: let eth-account raise its usual error.
        signed = Account.sign_message(encode_defunct(primitive=digest), key)
        return bytes(signed.signature), Address(Account.from_key(key).address)
    raw = private.sign_recoverable(prehash, hasher=None)
    address = _checksum(_keccak(private.public_key.format(compressed=False)[1:])[-20:])
    return raw[:64] + bytes([raw[64] + 27]), address
