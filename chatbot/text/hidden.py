"""Find characters that change how a text reads without showing: bidi controls, zero-width and control characters.

A phrase in intents.json or out_of_scope.txt is read by people (in review, in a diff) and matched
by the model. A right-to-left override or a zero-width space makes the two disagree: a diff shows
"refund" while the file holds "re\u200bfund", or a line reads backwards from what it stores (the
"Trojan Source" trick). Such characters are refused where data is written or validated.

Refused: every control character (Unicode category Cc) but tabs and line breaks, and every format
character (Cf: bidi embeddings, overrides and isolates, marks, zero-width space, word joiner, byte
order mark, soft hyphen), except the zero-width joiner and non-joiner
between two non-ASCII characters, where Persian, the Indic scripts and emoji sequences need them.
"""

from __future__ import annotations

import unicodedata

_JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner
_LAYOUT = frozenset("\t\n\r")  # visible as what they are; a phrase never holds them once split into lines


def find_hidden_character(text: str) -> tuple[int, str] | None:
    """Return the position and U+ name of the first refused character in a text, or None."""
    for position, character in enumerate(text):
        if unicodedata.category(character) not in ("Cc", "Cf") or character in _LAYOUT:
            continue
        if character in _JOINERS and _between_non_ascii(text, position):
            continue
        name = unicodedata.name(character, "a control character")
        return position, f"U+{ord(character):04X} ({name})"
    return None


def _between_non_ascii(text: str, position: int) -> bool:
    return (
        0 < position < len(text) - 1 and not text[position - 1].isascii() and not text[position + 1].isascii()
    )
