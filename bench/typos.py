"""Make a typo copy of labelled queries: one character edited in one word of each query, seeded.

The edit is a deletion, an insertion, a substitution or a swap of two neighbouring letters, the four
kinds of slip a keyboard user makes, in a word of at least three letters when the query has one.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Sequence

from chatbot.data.intents import Intent

EDITS = ("delete", "insert", "substitute", "swap")


def add_typo(text: str, rng: random.Random) -> str:
    """Return the text with one character edited in one of its words."""
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) >= 3 and word.isalpha()]
    candidates = candidates or [i for i, word in enumerate(words) if word]
    if not candidates:
        return text
    index = rng.choice(candidates)
    words[index] = edit_word(words[index], rng)
    return " ".join(words)


def edit_word(word: str, rng: random.Random) -> str:
    """Apply one random keyboard slip to a word."""
    edit = rng.choice(EDITS if len(word) >= 2 else ("insert", "substitute"))
    position = rng.randrange(len(word))
    letter = rng.choice(string.ascii_lowercase)
    if edit == "delete":
        return word[:position] + word[position + 1 :]
    if edit == "insert":
        return word[:position] + letter + word[position:]
    if edit == "substitute":
        letter = rng.choice([c for c in string.ascii_lowercase if c != word[position]])
        return word[:position] + letter + word[position + 1 :]
    position = min(position, len(word) - 2)  # swap this letter with the next
    return word[:position] + word[position + 1] + word[position] + word[position + 2 :]


def typo_copy(intents: Sequence[Intent], seed: int = 0) -> list[Intent]:
    """Return the intents with a typo in every pattern (the same typos for the same seed)."""
    rng = random.Random(seed)
    return [
        dataclasses.replace(intent, patterns=tuple(add_typo(pattern, rng) for pattern in intent.patterns))
        for intent in intents
    ]
