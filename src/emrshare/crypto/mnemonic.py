"""BIP-39 mnemonics and SLIP-39 (Shamir) shares: how a patient's master secret is backed
up as words, and how it comes back.

Messages never repeat the words: an error about a backup must not become a copy of it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import shamir_mnemonic
from mnemonic import Mnemonic

from emrshare.errors import WireFormatError

__all__ = [
    "bip39_entropy_to_mnemonic",
    "bip39_mnemonic_to_entropy",
    "bip39_seed",
    "combine_shamir_shares",
    "split_shamir_shares",
]


def bip39_entropy_to_mnemonic(entropy: bytes, language: str = "english") -> str:
    """Encode ``entropy`` (16–32 bytes, multiple of 4) as a BIP-39 mnemonic."""
    try:
        return str(Mnemonic(language).to_mnemonic(entropy))
    except (ValueError, LookupError) as exc:
        raise ValueError(f"cannot encode entropy as a BIP-39 mnemonic: {exc}") from exc


def bip39_mnemonic_to_entropy(words: str, language: str = "english") -> bytes:
    """Decode a BIP-39 mnemonic back to its entropy, checking the checksum.

    Raises :class:`WireFormatError` for an unknown word, a wrong word count or a bad
    checksum; the message never repeats the words.
    """
    # Decode by hand against the NFKD-normalized wordlist: BIP-39 compares words after
    # NFKD, and some of the package's wordlists mix composed and decomposed forms.
    wordlist = [unicodedata.normalize("NFKD", w) for w in Mnemonic(language).wordlist]
    index = {w: i for i, w in enumerate(wordlist)}
    given = unicodedata.normalize("NFKD", words).split()
    invalid = WireFormatError(
        "the mnemonic is not valid BIP-39 (unknown word, wrong word count or bad "
        "checksum); check each word against the backup"
    )
    if len(given) not in (12, 15, 18, 21, 24) or any(w not in index for w in given):
        raise invalid
    bits = "".join(format(index[w], "011b") for w in given)
    n_checksum = len(bits) // 33
    entropy = int(bits[:-n_checksum], 2).to_bytes((len(bits) - n_checksum) // 8, "big")
    digest_bits = format(int.from_bytes(hashlib.sha256(entropy).digest(), "big"), "0256b")
    if bits[-n_checksum:] != digest_bits[:n_checksum]:
        raise invalid
    return entropy


def bip39_seed(words: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP-39 seed (PBKDF2) of a mnemonic, as wallets compute it."""
    return bytes(Mnemonic.to_seed(words, passphrase))


def split_shamir_shares(
    secret: bytes,
    threshold: int,
    count: int,
    *,
    passphrase: bytes = b"",
    iteration_exponent: int = 1,
) -> list[str]:
    """Split ``secret`` into ``count`` SLIP-39 mnemonics, any ``threshold`` of which recover it.

    **Warning:** the passphrase is part of the secret: a wrong passphrase recovers a
    different (valid-looking) secret, by SLIP-39's design.
    """
    if not 1 <= threshold <= count <= 16:
        raise ValueError("SLIP-39 needs 1 <= threshold <= count <= 16")
    if threshold == 1 and count > 1:
        raise ValueError("SLIP-39 does not allow a threshold of 1 with several shares")
    groups = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, count)], secret, passphrase, iteration_exponent=iteration_exponent
    )
    return list(groups[0])


def combine_shamir_shares(shares: Sequence[str], *, passphrase: bytes = b"") -> bytes:
    """Recover a secret from SLIP-39 mnemonics.

    Raises :class:`WireFormatError` if the shares are invalid, inconsistent or too few.
    """
    try:
        return bytes(shamir_mnemonic.combine_mnemonics(list(shares), passphrase))
    except shamir_mnemonic.MnemonicError as exc:
        # shamir-mnemonic quotes share words in its messages ('Invalid mnemonic word
        # "…"', 'checksum for "w1 w2 w3 w4 ..."'): keep the reason, drop the words, and
        # do not chain the original (its message would put them in tracebacks and logs).
        reason = re.sub(r"\"[^\"]*\"|'[^']*'", "(words withheld)", str(exc))
        raise WireFormatError(
            f"the SLIP-39 shares cannot be combined: {reason}; check the words and that "
            "enough shares of the same set were given"
        ) from None
