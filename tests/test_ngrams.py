"""The n-gram model: its features, and numpy serving that gives scikit-learn's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.classifier.config import ModelConfig
from chatbot.classifier.ngrams import char_ngrams, word_ngrams
from chatbot.data.intents import Intent
from chatbot.text.tokens import stem, words


def test_word_ngrams_are_unigrams_and_bigrams() -> None:
    assert word_ngrams(["where", "is", "it"]) == ["where", "is", "it", "where is", "is it"]
    assert word_ngrams([]) == []


def test_char_ngrams_pad_each_word_like_char_wb() -> None:
    assert char_ngrams(["hi"]) == [" h", "hi", "i ", " hi", "hi ", " hi "]
    assert " ca" in char_ngrams(["to", "cat"]) and "o c" not in char_ngrams(["to", "cat"])


INTENTS = [
    Intent("shipping", ("how long does shipping take", "do you ship abroad", "delivery cost"), ("r",)),
    Intent("returns", ("how do i return an item", "can i get a refund", "send it back"), ("r",)),
    Intent("hours", ("when are you open", "opening hours", "are you open sunday"), ("r",)),
]


@pytest.mark.parametrize("intents", [INTENTS, INTENTS[:2]], ids=["three labels", "two labels"])
def test_numpy_probabilities_equal_scikit_learns(intents: list[Intent]) -> None:
    from sklearn.linear_model import LogisticRegression

    from chatbot.training.train import fit_ngram_model, make_examples, ngram_matrix

    labels = [intent.tag for intent in intents]
    examples = make_examples(intents, labels)
    config = ModelConfig(off_topic_weight=0.0)
    model = fit_ngram_model(examples, len(labels), config)
    classifier = LogisticRegression(C=config.ngram_c, max_iter=1000).fit(
        ngram_matrix(model, examples.documents()), examples.label_ids
    )
    texts = ["shiping time?", "refund please", "open on sunday", "", "zzz", "how long for a refund"]
    documents = [(words(text), [stem(word) for word in words(text)]) for text in texts]
    expected = classifier.predict_proba(ngram_matrix(model, documents))
    assert np.abs(model.predict_proba(documents) - expected).max() <= 1e-5


def test_one_label_is_always_certain() -> None:
    from chatbot.training.train import fit_ngram_model, make_examples

    examples = make_examples(INTENTS[:1], ["shipping"])
    model = fit_ngram_model(examples, 1, ModelConfig())
    assert model.predict_proba([(["anything"], ["anyth"])]).tolist() == [[1.0]]


def test_the_word_cache_gives_the_same_vectors_and_stays_bounded() -> None:
    from chatbot.classifier import ngrams
    from chatbot.text.tokens import MAX_WORD_CHARS
    from chatbot.training.train import fit_ngram_model, make_examples

    labels = [intent.tag for intent in INTENTS]
    model = fit_ngram_model(make_examples(INTENTS, labels), len(labels), ModelConfig())
    document = (
        ["shipping", "refund", "x" * (MAX_WORD_CHARS + 1)],
        ["ship", "refund", "x" * (MAX_WORD_CHARS + 1)],
    )
    first, again = model.vectorize(document), model.vectorize(document)
    assert first == again and first[0]  # the cached words give what the uncached ones gave
    assert model._cached_char_columns.cache_info().currsize == 2  # the over-long word is not kept
    for number in range(ngrams.WORD_CACHE_WORDS + 100):
        model.vectorize(([f"word{number}"], [f"word{number}"]))
    assert model._cached_char_columns.cache_info().currsize == ngrams.WORD_CACHE_WORDS
