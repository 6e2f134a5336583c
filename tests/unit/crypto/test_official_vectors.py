"""The official BIP-39 and SLIP-39 vectors (read from ../shared/vectors beside the checkout)."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from emrshare.crypto.mnemonic import (
    bip39_entropy_to_mnemonic,
    bip39_mnemonic_to_entropy,
    bip39_seed,
    combine_shamir_shares,
)
from emrshare.errors import WireFormatError

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "vectors"


def nfkd(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKD", text).split())


def _load(name: str) -> Any:
    path = SHARED / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"official vectors missing under CI: {path}")
        pytest.skip(f"official vectors not found at {path} (clone used on its own)")
    return json.loads(path.read_text())


def test_bip39_english_vectors() -> None:
    vectors = _load("bip39-vectors.json")["english"]
    assert vectors
    for entropy_hex, words, seed_hex, _xprv in vectors:
        entropy = bytes.fromhex(entropy_hex)
        assert bip39_entropy_to_mnemonic(entropy) == words
        assert bip39_mnemonic_to_entropy(words) == entropy
        assert bip39_seed(words, "TREZOR").hex() == seed_hex


@pytest.mark.parametrize(
    "language",
    [
        "chinese_simplified",
        "chinese_traditional",
        "czech",
        "french",
        "italian",
        "japanese",
        "korean",
        "portuguese",
        "spanish",
        "russian",
        "turkish",
    ],
)
def test_bip39_other_language_vectors(language: str) -> None:
    vectors = _load("bip39-vectors.json")[language]
    for entropy_hex, words, seed_hex, _xprv in vectors:
        entropy = bytes.fromhex(entropy_hex)
        # BIP-39 compares mnemonics after NFKD normalization.
        assert nfkd(bip39_entropy_to_mnemonic(entropy, language)) == nfkd(words)
        assert bip39_mnemonic_to_entropy(words, language) == entropy
        assert bip39_seed(words, "TREZOR").hex() == seed_hex


def test_slip39_vectors() -> None:
    vectors = _load("slip39-vectors.json")
    assert vectors
    for description, mnemonics, secret_hex, _xprv in vectors:
        if secret_hex:
            assert combine_shamir_shares(mnemonics, passphrase=b"TREZOR").hex() == secret_hex, (
                description
            )
        else:
            with pytest.raises(WireFormatError):
                combine_shamir_shares(mnemonics, passphrase=b"TREZOR")
