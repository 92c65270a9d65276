"""Serve the "wide" half of the classifier: a linear model over word and character n-grams.

With 10-20 phrases per intent an LSTM trained from scratch has too little data to learn what words
mean (the sentence vector beside it brings that knowledge), while n-grams are exact on the bot's
own words and share strength across spellings, inflections and typos: word unigrams and
bigrams of the stemmed tokens, and character 2- to 5-grams of each word padded with spaces (like
scikit-learn's ``char_wb``). Each family is TF-IDF weighted with sublinear term frequency and scaled
to unit length; a multinomial logistic regression turns them into probabilities. train.py fits it
(with scikit-learn); this module runs it in numpy, for training-side and serving-side prediction alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

import numpy as np

from chatbot.text.tokens import MAX_WORD_CHARS

CHAR_NGRAMS = range(2, 6)  # character n-gram lengths
# Words recur across messages that never do: the known character n-grams of recent words are kept.
# An entry holds at most 4 x (MAX_WORD_CHARS + 2) columns (~1.4 KB), so a model's cache ~12 MB at most.
WORD_CACHE_WORDS = 8192
Document = tuple[Sequence[str], Sequence[str]]  # (words, their stems) of one text


def word_ngrams(stems: Sequence[str]) -> list[str]:
    """Return the unigrams and bigrams of a text's stemmed tokens."""
    return [*stems, *(f"{first} {second}" for first, second in pairwise(stems))]


def char_ngrams(words: Sequence[str]) -> list[str]:
    """Return the character n-grams of each word, padded with a space on both sides."""
    grams = []
    for word in words:
        padded = f" {word} "
        for size in CHAR_NGRAMS:
            grams += [padded[start : start + size] for start in range(len(padded) - size + 1)]
    return grams


def feature_families(document: Document) -> tuple[list[str], list[str]]:
    """Return a text's word n-grams and its character n-grams."""
    words, stems = document
    return word_ngrams(stems), char_ngrams(words)


@dataclass(frozen=True)
class NgramModel:
    """TF-IDF over two n-gram families, then a linear layer and a softmax over the labels."""

    features: tuple[str, ...]  # the word n-grams, then the character n-grams
    word_features: int  # how many of ``features`` are word n-grams
    idf: np.ndarray  # (features,) inverse document frequency of each feature in training
    coef: np.ndarray  # (features, labels) logistic-regression weights
    intercept: np.ndarray  # (labels,)
    _word_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _char_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _idf: list[float] = field(init=False, repr=False, compare=False)  # Python floats: read one at a time
    _cached_char_columns: Callable[[str], tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = {feature: i for i, feature in enumerate(self.features[: self.word_features])}
        chars = {
            feature: i for i, feature in enumerate(self.features[self.word_features :], self.word_features)
        }
        object.__setattr__(self, "_word_index", words)
        object.__setattr__(self, "_char_index", chars)
        object.__setattr__(self, "_idf", self.idf.tolist())
        object.__setattr__(self, "_cached_char_columns", lru_cache(WORD_CACHE_WORDS)(self._word_char_columns))

    def vectorize(self, document: Document) -> tuple[list[int], list[float]]:
        """Return the columns and TF-IDF values of a text's known features, each family unit-length."""
        words, stems = document
        word_columns = [self._word_index[gram] for gram in word_ngrams(stems) if gram in self._word_index]
        char_columns = [column for word in words for column in self._char_columns(word)]
        word_part, char_part = self._tfidf(word_columns), self._tfidf(char_columns)
        return [*word_part, *char_part], [*word_part.values(), *char_part.values()]

    def _char_columns(self, word: str) -> tuple[int, ...]:
        """Return the columns of a word's known character n-grams (long words are not cached)."""
        if len(word) > MAX_WORD_CHARS:
            return self._word_char_columns(word)
        return self._cached_char_columns(word)

    def _word_char_columns(self, word: str) -> tuple[int, ...]:
        return tuple(self._char_index[gram] for gram in char_ngrams([word]) if gram in self._char_index)

    def _tfidf(self, columns: list[int]) -> dict[int, float]:
        """Return the sublinear TF-IDF weight of each column, scaled to unit length."""
        weights = {  # 1 + log(1) is 1: most n-grams occur once in a message
            column: self._idf[column] if count == 1 else (1.0 + math.log(count)) * self._idf[column]
            for column, count in Counter(columns).items()
        }
        norm = math.hypot(*weights.values()) or 1.0
        return {column: weight / norm for column, weight in weights.items()}

    def predict_proba(self, documents: Sequence[Document]) -> np.ndarray:
        """Return (documents, labels) probabilities."""
        logits = np.tile(self.intercept, (len(documents), 1))
        for row, document in enumerate(documents):
            columns, values = self.vectorize(document)
            if columns:
                logits[row] += np.asarray(values, dtype=np.float32) @ self.coef[columns]
        return softmax(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return the softmax of each row."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
