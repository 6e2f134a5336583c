"""Text that reaches a terminal: which characters are unsafe to show, and how to neutralize them.

Strings from the chain or from peers (category names, access-request reasons, refusal
messages of proxies) are shown to a patient who decides on them. A control character
(C0/C1: ESC sequences move the cursor, recolour or rewrite what is on screen), a format
character (bidi overrides U+202A-U+202E and isolates U+2066-U+2069 reorder text,
zero-width characters hide it) or a line/paragraph separator can make the screen say
"lab" while the data says "mental-health". This module is the one definition of those
characters, used by the crypto validators (refuse) and by the CLI (replace).
"""

from __future__ import annotations

import unicodedata

__all__ = ["REPLACEMENT", "is_unsafe_char", "sanitize", "unsafe_chars"]

#: What an unsafe character is shown as.
REPLACEMENT = "\ufffd"

# Cc: C0, DEL, C1 controls. Cf: format (bidi embeddings/overrides/isolates, zero-width
# space/joiners, word joiner, BOM, …). Cs: lone surrogates (not encodable). Co: private
# use (no agreed glyph). Zl/Zp: line and paragraph separators (break a one-line cell).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def is_unsafe_char(ch: str) -> bool:
    """Whether the one character ``ch`` must not reach a terminal as is."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def unsafe_chars(text: str) -> list[str]:
    """The unsafe characters of ``text`` as ``U+XXXX`` codes, in order (empty if none)."""
    return [f"U+{ord(c):04X}" for c in text if is_unsafe_char(c)]


def sanitize(text: str) -> str:
    """``text`` with every unsafe character replaced by U+FFFD."""
    return "".join(REPLACEMENT if is_unsafe_char(c) else c for c in text)
