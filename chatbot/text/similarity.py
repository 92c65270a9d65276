"""Say how alike two short texts are, by their character n-grams: near-duplicate phrases and messages.

Character trigrams of the normalised text catch what people vary in a phrase (a typo, a plural, an
extra word) without a model; the review inbox groups messages with it and ``chatbot validate``
flags phrases of two intents that are nearly the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from chatbot.text.tokens import normalize

NGRAM_SIZE = 3
NEAR_DUPLICATE = 0.8  # Jaccard similarity of trigram sets from which two texts count as one
_NOT_WORD = re.compile(r"[^\w]+")


def canonical(text: str) -> str:
    """Fold case, compatibility forms, punctuation and spacing: "What's up?!" -> "what s up"."""
    return " ".join(_NOT_WORD.sub(" ", normalize(text)).split())


def ngrams(text: str, size: int = NGRAM_SIZE) -> frozenset[str]:
    """Return the character n-grams of the canonical text, padded so short words count too."""
    padded = f" {canonical(text)} "
    if len(padded) <= size:
        return frozenset({padded})
    return frozenset(padded[start : start + size] for start in range(len(padded) - size + 1))


def jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    """Return the Jaccard similarity of two n-gram sets (1.0: the same set)."""
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


def similarity(first: str, second: str) -> float:
    """Return the trigram Jaccard similarity of two texts."""
    return jaccard(ngrams(first), ngrams(second))


def similar_pairs(texts: Sequence[str], threshold: float = NEAR_DUPLICATE) -> list[tuple[int, int, float]]:
    """Return every pair (i, j, similarity), i < j, whose trigram similarity reaches the threshold.

    Prefix filtering keeps this far below all-pairs on large data (15,000 CLINC150 phrases): order
    each text's n-grams rarest first; two sets with Jaccard similarity >= t must share one of the
    first ``len - ceil(t * len) + 1`` of them, so only texts sharing such a prefix n-gram are compared.
    """
    grams = [ngrams(text) for text in texts]
    frequency: dict[str, int] = {}
    for text_grams in grams:
        for gram in text_grams:
            frequency[gram] = frequency.get(gram, 0) + 1
    index: dict[str, list[int]] = {}
    pairs = []
    for position, text_grams in enumerate(grams):
        ordered = sorted(text_grams, key=lambda gram: (frequency[gram], gram))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]
        candidates: set[int] = set()
        for gram in prefix:
            candidates.update(index.setdefault(gram, []))
            index[gram].append(position)
        for other in sorted(candidates):
            score = jaccard(grams[other], text_grams)
            if score >= threshold:
                pairs.append((other, position, score))
    return pairs


class NearDuplicateIndex:
    """Name the group of each new text among many groups without comparing it with every group.

    A group is known by its first text (its founder). A text joins the most similar founder whose
    trigram similarity reaches the threshold. The search is exact prefix filtering on a full
    inverted index: two sets with Jaccard >= t share at least ``ceil(t * len)`` n-grams of the
    shorter, so probing with any ``len - ceil(t * len) + 1`` of the new text's n-grams (the rarest,
    whose posting lists are shortest) finds every founder that can reach the threshold. At most
    ``max_candidates`` founders are compared per text (the newest), which bounds the work a crafted
    stream of look-alike texts can cause; past that a text may found a group of its own.
    Memory is bounded too: past ``capacity`` founders the oldest are forgotten.
    """

    def __init__(self, threshold: float, capacity: int = 50_000, max_candidates: int = 32) -> None:
        self.threshold = threshold
        self.capacity = capacity
        self.max_candidates = max_candidates
        self.founders: dict[int, tuple[str, ...]] = {}  # group id -> its founder's n-grams, oldest first
        self.by_canonical: dict[str, int] = {}  # a founder's canonical text -> its group id
        self.postings: dict[str, list[int]] = {}  # n-gram -> group ids whose founder holds it
        self._last_text, self._last_grams = "", frozenset()

    def __len__(self) -> int:
        return len(self.founders)

    def find(self, text: str) -> int | None:
        """Return the id of the group the text belongs to, or None when it is unlike every founder."""
        known = self.by_canonical.get(canonical(text))
        if known is not None:
            return known
        grams = ngrams(text)
        self._last_text, self._last_grams = text, grams  # add() usually follows with the same text
        size = len(grams)
        # N-grams no founder holds are the rarest of all: each one probed finds nothing.
        held = [posting for posting in map(self.postings.get, grams) if posting is not None]
        probes = size - math.ceil(self.threshold * size) + 1 - (size - len(held))
        if probes <= 0:
            return None
        held.sort(key=len)
        candidates: set[int] = set()
        for posting in held[:probes]:
            candidates.update(posting[-self.max_candidates :])
            if len(candidates) >= self.max_candidates:
                break  # the rarest n-grams first: the founders most likely to match are in already
        best, best_score = None, self.threshold
        shortest, longest = self.threshold * size, size / self.threshold
        for group_id in candidates:
            founder = self.founders.get(group_id)
            if founder is None or not shortest <= len(founder) <= longest:
                continue
            shared = len(grams.intersection(founder))
            score = shared / (size + len(founder) - shared)
            if score >= best_score:
                best, best_score = group_id, score
        return best

    def add(self, group_id: int, text: str) -> None:
        """Make a text the founder of a group."""
        grams = tuple(self._last_grams if text == self._last_text else ngrams(text))
        self.founders[group_id] = grams
        self.by_canonical.setdefault(canonical(text), group_id)
        for gram in grams:
            self.postings.setdefault(gram, []).append(group_id)
        if len(self.founders) > self.capacity:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Drop the oldest tenth of the founders and rebuild the lookups (amortised over many adds)."""
        keep = list(self.founders.items())[len(self.founders) // 10 :]
        self.founders = dict(keep)
        self.by_canonical = {key: group for key, group in self.by_canonical.items() if group in self.founders}
        self.postings = {}
        for group_id, grams in keep:
            for gram in grams:
                self.postings.setdefault(gram, []).append(group_id)
