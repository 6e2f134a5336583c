"""A patient's master secret from its backup (24 BIP-39 words, or M SLIP-39 shares), with
one :class:`~emrshare.errors.InvalidBackup` per way a backup can be wrong.

Messages never repeat a word of the backup; they number the shares instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import shamir_mnemonic
from shamir_mnemonic.share import Share

from emrshare.crypto.keys import MASTER_SECRET_SIZE, PatientKeys
from emrshare.errors import InvalidBackup, WireFormatError

__all__ = ["keys_from_shares", "keys_from_words"]


def keys_from_words(words: str) -> PatientKeys:
    """The patient keys a 24-word mnemonic holds (``InvalidBackup("words")`` otherwise)."""
    count = len(words.split())
    if count != 24:
        raise InvalidBackup(
            "words",
            f"a patient's backup has 24 words; {count} were given: check that none is "
            "missing or extra",
        )
    try:
        return PatientKeys.from_mnemonic(words)
    except WireFormatError:
        raise InvalidBackup(
            "words",
            "the 24 words are not a valid backup (a word is not in the BIP-39 English list, "
            "or the checksum does not match): check each word and their order",
        ) from None


def keys_from_shares(shares: Sequence[str], *, passphrase: bytes = b"") -> PatientKeys:
    """The patient keys that ``shares`` (SLIP-39 mnemonics) recover.

    Checked share by share first, so the error says which share is wrong, whether the
    shares come from different backups, or how many more are needed. **Warning:** a wrong
    passphrase is not detectable here (SLIP-39 by design): it recovers another secret,
    whose patient the network does not know.
    """
    shares = [" ".join(s.split()) for s in shares if s.strip()]
    if not shares:
        raise InvalidBackup("too_few", "no SLIP-39 share was given: give one share per line")
    parsed: list[Share] = []
    for i, text in enumerate(shares, 1):
        try:
            parsed.append(Share.from_mnemonic(text))
        except shamir_mnemonic.MnemonicError:
            raise InvalidBackup(
                "words",
                f"share {i} is not a valid SLIP-39 share (a word outside the list, a wrong "
                "word count, or a bad checksum): check its words",
            ) from None
    first = parsed[0].common_parameters()
    others = [i for i, s in enumerate(parsed, 1) if s.common_parameters() != first]
    if others:
        raise InvalidBackup(
            "mixed",
            f"share(s) {', '.join(map(str, others))} belong to another backup than share 1 "
            "(their first words differ): give shares of one backup only",
        )
    needed = parsed[0].member_threshold
    distinct = len({s.index for s in parsed})
    if distinct < needed or parsed[0].group_threshold > 1:
        raise InvalidBackup(
            "too_few",
            f"this backup needs {needed} different shares; {distinct} were given: add "
            "the missing ones",
        )
    unique = list({s.index: text for s, text in zip(parsed, shares, strict=True)}.values())
    try:
        secret = bytes(shamir_mnemonic.combine_mnemonics(unique, passphrase))
    except shamir_mnemonic.MnemonicError:
        raise InvalidBackup(
            "digest",
            "the shares do not combine into their secret (SLIP-39 digest check failed): a "
            "share was altered or mistyped in a way its checksum missed; try another set",
        ) from None
    if len(secret) != MASTER_SECRET_SIZE:
        raise InvalidBackup("words", "these SLIP-39 shares do not hold a patient's master secret")
    return PatientKeys(secret)
