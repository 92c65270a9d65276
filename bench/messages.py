"""Messages that never repeat, made of a bot's own words: what no cache can answer.

The one recipe for the in-process benchmarks and the open-loop HTTP load (bench/wrk_varied.lua
builds the same in Lua for wrk): a message spells a number unique to it in the bot's words (its
digits in base "number of words"), then adds 0 to 4 random words of the bot, so messages are 3 to 7
known words long, like a chat message, and every one differs from every other.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence

from chatbot.classifier.bundle import Bundle

DIGITS = 3  # words that spell a message's number: 260 words give 17 million messages
SPAN = 10_000_000  # messages one stream may send; a bot with fewer words spells with more digits
MAX_EXTRA_WORDS = 4


def pattern_words(bundle: Bundle) -> list[str]:
    """Return the words of the bot's patterns, sorted: what never-repeating messages are made of."""
    return sorted(
        {
            word
            for intent in bundle.intents
            for text in intent.patterns
            for word in re.findall(r"[a-z]+", text.lower())
        }
    )


def never_repeating(words: Sequence[str], first: int, seed: int = 0) -> Iterator[str]:
    """Yield messages numbered ``first``, ``first + 1``, ... (up to SPAN of them): none repeats.

    Every message of a stream spells its number with the same count of words (DIGITS, more for a
    bot with few words), so no message's number and extra words can spell another's number.
    """
    if len(words) < 2:
        raise ValueError("never-repeating messages need at least two words")
    count = DIGITS
    while len(words) ** count < first + SPAN:
        count += 1
    chooser = random.Random(seed)
    number = first
    while True:
        if number >= first + SPAN:
            raise ValueError(f"a stream of never-repeating messages holds at most {SPAN}")
        digits, rest = [], number
        for _ in range(count):
            rest, digit = divmod(rest, len(words))
            digits.append(words[digit])
        extra = [chooser.choice(words) for _ in range(chooser.randint(0, MAX_EXTRA_WORDS))]
        yield " ".join(digits + extra)
        number += 1


def take(words: Sequence[str], first: int, count: int, seed: int = 0) -> list[str]:
    """Return ``count`` never-repeating messages numbered from ``first``."""
    messages = never_repeating(words, first, seed)
    return [next(messages) for _ in range(count)]
