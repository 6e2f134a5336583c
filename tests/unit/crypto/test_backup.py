"""A patient's keys from its backup: one InvalidBackup per way the words or shares are
wrong, and never a word of the backup in the message."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from shamir_mnemonic.share import Share

from emrshare.crypto import PatientKeys
from emrshare.crypto.backup import keys_from_shares, keys_from_words
from emrshare.crypto.statelog import PatientState, epochs_digest, open_state, seal_state
from emrshare.errors import InvalidBackup

pytestmark = pytest.mark.unit

KEYS = PatientKeys(bytes(range(32)))


def _no_words(exc: InvalidBackup, words: list[str]) -> None:
    """No two consecutive words of the backup in the message (single words may be
    ordinary English: "list", "check")."""
    said = " ".join(str(exc).split())
    assert not any(f"{a} {b}" in said for a, b in itertools.pairwise(words)), said


def test_words_round_trip_and_each_wrong_count() -> None:
    words = KEYS.to_mnemonic()
    assert keys_from_words(f"  {words}\n").address == KEYS.address
    for bad in (words.split()[:12], words.split()[:23], [*words.split(), "abandon"]):
        with pytest.raises(InvalidBackup) as info:
            keys_from_words(" ".join(bad))
        assert info.value.reason == "words" and f"{len(bad)} were given" in str(info.value)


def test_words_outside_the_list_or_a_bad_checksum() -> None:
    words = KEYS.to_mnemonic().split()
    for bad in ([*words[:23], "qwertyuiop"], [words[1], words[0], *words[2:]]):
        with pytest.raises(InvalidBackup) as info:
            keys_from_words(" ".join(bad))
        assert info.value.reason == "words"
        _no_words(info.value, bad)


def test_shares_any_threshold_in_any_order_duplicates_ignored() -> None:
    shares = KEYS.to_shamir_shares(3, 5)
    assert keys_from_shares([shares[4], shares[0], shares[2]]).address == KEYS.address
    assert keys_from_shares([shares[1], shares[1], shares[3], shares[0]]).address == KEYS.address


def _last_word_changed(share: str) -> str:
    words = share.split()
    return " ".join([*words[:-1], "academic" if words[-1] != "academic" else "acid"])


def test_too_few_mixed_and_bad_share() -> None:
    shares = KEYS.to_shamir_shares(3, 5)
    other = PatientKeys.generate().to_shamir_shares(3, 5)
    cases = {
        "too_few": [shares[0], shares[1], shares[1]],
        "mixed": [shares[0], shares[1], other[2]],
        "words": [shares[0], shares[1], _last_word_changed(shares[2])],
    }
    for reason, given in cases.items():
        with pytest.raises(InvalidBackup) as info:
            keys_from_shares(given)
        assert info.value.reason == reason, (reason, str(info.value))
        _no_words(info.value, " ".join(given).split())
    with pytest.raises(InvalidBackup) as empty:
        keys_from_shares(["", "  "])
    assert empty.value.reason == "too_few"


def test_attack_share_altered_with_a_valid_checksum_fails_the_digest() -> None:
    shares = [Share.from_mnemonic(s) for s in KEYS.to_shamir_shares(2, 3)]
    # Another value under the same identifier, with a fresh checksum: only SLIP-39's
    # digest share catches it.
    forged = dataclasses.replace(shares[1], value=bytes(b ^ 1 for b in shares[1].value))
    with pytest.raises(InvalidBackup) as info:
        keys_from_shares([shares[0].mnemonic(), forged.mnemonic()])
    assert info.value.reason == "digest"


def test_a_wrong_passphrase_gives_another_patient() -> None:
    shares = KEYS.to_shamir_shares(2, 3, passphrase=b"tulip")
    assert keys_from_shares(shares[:2], passphrase=b"tulip").address == KEYS.address
    assert keys_from_shares(shares[:2], passphrase=b"tulips").address != KEYS.address


def test_epochs_digest_is_keyed_and_order_free() -> None:
    key = KEYS.state_log_key
    a = epochs_digest(key, {"lab-results": 1, "imaging": 0})
    assert a == epochs_digest(key, {"imaging": 0, "lab-results": 1})
    assert a != epochs_digest(key, {"imaging": 0, "lab-results": 2})
    assert a != epochs_digest(
        PatientKeys.generate().state_log_key, {"imaging": 0, "lab-results": 1}
    )


def test_entries_of_the_same_count_have_the_same_size() -> None:
    key = KEYS.state_log_key
    short = seal_state(key, PatientState({"a": 0, "b": 1}))
    long = seal_state(key, PatientState({"x" * 60: 3, "y" * 60: 99}))
    assert len(short) == len(long) == 256
    assert open_state(key, long).epochs == {"x" * 60: 3, "y" * 60: 99}
