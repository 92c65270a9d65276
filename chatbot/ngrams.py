"""Serve the "wide" half of the classifier: a linear model over word and character n-grams.

With 10-20 phrases per intent an LSTM trained from scratch has too little data to learn what words
mean, while n-grams share strength across spellings, inflections and typos: word unigrams and
bigrams of the stemmed tokens, and character 2- to 5-grams of each word padded with spaces (like
scikit-learn's ``char_wb``). Each family is TF-IDF weighted with sublinear term frequency and scaled
to unit length; a multinomial logistic regression turns them into probabilities. train.py fits it
(with scikit-learn); this module runs it in numpy, for training-side and serving-side prediction alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

CHAR_NGRAMS = range(2, 6)  # character n-gram lengths
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
    _indexes: tuple[dict[str, int], dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = {feature: i for i, feature in enumerate(self.features[: self.word_features])}
        chars = {
            feature: i for i, feature in enumerate(self.features[self.word_features :], self.word_features)
        }
        object.__setattr__(self, "_indexes", (words, chars))

    def vectorize(self, document: Document) -> tuple[list[int], list[float]]:
        """Return the columns and TF-IDF values of a text's known features, each family unit-length."""
        columns: list[int] = []
        values: list[float] = []
        for grams, index in zip(feature_families(document), self._indexes, strict=True):
            counts = Counter(index[gram] for gram in grams if gram in index)
            weights = [(1.0 + math.log(count)) * float(self.idf[column]) for column, count in counts.items()]
            norm = math.sqrt(sum(weight * weight for weight in weights)) or 1.0
            columns += counts
            values += [weight / norm for weight in weights]
        return columns, values

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
