"""Split runs of a script written without spaces (Thai) into the words the bot was trained on.

Thai users type a sentence as one run of letters; training text may have been segmented with
spaces (as MTOP's is). Read as one "word", such a run shares only its character n-grams with the
training words and none of their word n-grams. Segmenting it against the training words by
dynamic programming (fewest letters left unknown, then fewest pieces) gives back those words;
letters no training word covers stay together as one piece, whose character n-grams still count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_WORD = 24  # longest training word tried as a piece, in characters: bounds the work per letter


class Segmenter:
    """Split unknown, space-free words into known words, with the unknown letters between them."""

    def __init__(self, known_words: Iterable[str]) -> None:
        self.known = frozenset(word for word in known_words if len(word) <= MAX_WORD)
        self.longest = max((len(word) for word in self.known), default=0)

    def segment(self, word: str) -> list[str]:
        """Return the known words and unknown runs that make up the word (the word if none fit)."""
        if word in self.known or word.isascii() or not self.known:
            return [word]
        # best[i]: (unknown letters, pieces) of the best split of word[:i]; start[i]: its last piece.
        best = [(0, 0)] + [(len(word) + 1, 0)] * len(word)
        start = [0] * (len(word) + 1)
        for end in range(1, len(word) + 1):
            unknown, pieces = best[end - 1]
            best[end], start[end] = (unknown + 1, pieces + 1), end - 1  # one unknown letter
            for begin in range(max(0, end - self.longest), end):
                if word[begin:end] in self.known:
                    candidate = (best[begin][0], best[begin][1] + 1)
                    if candidate < best[end]:
                        best[end], start[end] = candidate, begin
        if best[-1][0] == len(word):
            return [word]
        pieces: list[str] = []
        end = len(word)
        while end > 0:
            pieces.append(word[start[end] : end])
            end = start[end]
        return _join_unknown(pieces[::-1], self.known)

    def segment_all(self, words: Sequence[str]) -> list[str]:
        """Segment each word of a text."""
        return [piece for word in words for piece in self.segment(word)]


def _join_unknown(pieces: list[str], known: frozenset[str]) -> list[str]:
    """Join neighbouring unknown pieces (single letters) into one run."""
    joined: list[str] = []
    previous_known = True
    for piece in pieces:
        is_known = piece in known
        if joined and not is_known and not previous_known:
            joined[-1] += piece
        else:
            joined.append(piece)
        previous_known = is_known
    return joined
