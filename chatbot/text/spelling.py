"""Correct one-letter slips in words the bot never saw, towards the words it was trained on.

A typo turns a known word into an unknown one: the LSTM then reads <unk> and the n-gram model
loses the word's n-grams. A word within one deletion, insertion, substitution or swap of a
training word is read as that word (the most frequent one, when several are that close). The
lookup is symmetric-delete (as in SymSpell): every training word is indexed under the strings it
gives with one letter deleted, so a query costs a dictionary lookup per letter of the unknown word.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_LENGTH = 4  # shorter words have too many neighbours one letter away to guess which was meant
SURE_LENGTH = 5  # below this length a correction must also keep the word's first letter
MAX_LENGTH = 40  # longer "words" are not words to correct (and would cost a deletion per letter)


def deletions(word: str) -> list[str]:
    """Return the strings the word gives with one letter deleted."""
    return [word[:position] + word[position + 1 :] for position in range(len(word))]


class SpellingCorrector:
    """Map unknown words one letter away from a training word to that word."""

    def __init__(self, words_by_frequency: Sequence[str]) -> None:
        self.rank = {word: rank for rank, word in enumerate(words_by_frequency)}
        self.by_deletion: dict[str, str] = {}  # a deletion -> the most frequent word giving it
        for word in words_by_frequency:
            if len(word) >= MIN_LENGTH - 1:
                for deleted in deletions(word):
                    self.by_deletion.setdefault(deleted, word)

    def correct(self, word: str) -> str:
        """Return the training word the word most likely misspells, or the word itself."""
        if word in self.rank or not MIN_LENGTH <= len(word) <= MAX_LENGTH or not word.isalpha():
            return word
        candidates = [self.by_deletion.get(word)]  # a letter left out
        for deleted in deletions(word):
            candidates.append(deleted if deleted in self.rank else None)  # a letter too many
            candidates.append(self.by_deletion.get(deleted))  # a letter changed, or two swapped
        known = [candidate for candidate in candidates if candidate is not None]
        if len(word) < SURE_LENGTH:  # short words have many neighbours: keep the first letter too
            known = [candidate for candidate in known if candidate[0] == word[0]]
        return min(known, key=self.rank.__getitem__) if known else word

    def correct_all(self, words: Sequence[str]) -> list[str]:
        """Correct each word of a text."""
        return [self.correct(word) for word in words]
