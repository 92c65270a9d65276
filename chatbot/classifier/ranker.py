"""Rank a text's intents with a bundle's classifier, without TensorFlow: the public Ranker API.

A bundle's probabilities mix two models: the Keras model (the "deep" part, weight ``deep_weight``:
an LSTM over the bot's words beside the pretrained sentence vector of the text), run in numpy by
chatbot.classifier.numpy_layers, and the n-gram model (the "wide" part, chatbot.classifier.ngrams).
Words are segmented and spell-corrected as the model was trained to read them; the sentence
encoder reads those words too, once per message, and recent rankings are cached. A Keras forward pass (``backend="keras"``, in chatbot.classifier.model) stays
available for comparison and as a fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import ENGINES
from chatbot.classifier.encoder import SentenceEncoder, shared_encoder
from chatbot.classifier.encoder_batch import MessageBatcher
from chatbot.classifier.numpy_layers import Forward, numpy_forward
from chatbot.text.languages import LANGUAGES
from chatbot.text.segment import Segmenter
from chatbot.text.spelling import SpellingCorrector
from chatbot.text.tokens import stem, stemmer, words

Array = np.ndarray
RANKING_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Ranking:
    """Every label with its probability, best first, and how many words of the text were known."""

    label_probabilities: tuple[tuple[str, float], ...]  # (label, probability) pairs, best first
    known_words: int
    words: int  # tokens in the text, known or not

    @property
    def top(self) -> tuple[str, float]:
        """Return the best label and its confidence."""
        return self.label_probabilities[0]


class Ranker:
    """Classify texts with a bundle's model: the LSTM's probabilities mixed with the n-gram model's."""

    def __init__(
        self, bundle: Bundle, forward: Forward | None = None, cache_size: int = RANKING_CACHE_SIZE
    ) -> None:
        self.bundle = bundle
        self.labels = bundle.labels
        self._label_array = np.array(self.labels, dtype=object)  # reordered by one index per ranking
        self.max_length = bundle.config.max_length
        self.language = bundle.config.language
        stemmer(self.language)  # other languages' Snowball stemmer imports NLTK: at load, not on a message
        # The process's one encoder, refusing a bundle trained with another one ("retrain").
        self.encoder: SentenceEncoder | None = None
        if bundle.encoder is not None:
            self.encoder = shared_encoder()
            self.encoder.check(bundle.encoder)
        self.batcher: MessageBatcher | None = None  # serve() sets it: a server's concurrent requests
        self.forward = forward or (numpy_forward(bundle) if bundle.architecture is not None else None)
        self.ngram_model = bundle.ngram_model
        if self.forward is None or self.ngram_model is None:
            self.deep_weight = 1.0 if self.ngram_model is None else 0.0  # one part: all of it
        else:
            self.deep_weight = bundle.config.deep_weight
        self.spelling = SpellingCorrector(bundle.spelling_words) if bundle.spelling_words else None
        self.segmenter = None if LANGUAGES[self.language].spaced else Segmenter(bundle.spelling_words)
        # Chat traffic repeats itself ("hi", "thanks", quick-reply labels): the ranking of a word
        # sequence never changes for a loaded model, so recent ones are kept (per engine, bounded).
        self.rank_words = lru_cache(maxsize=cache_size)(self._rank_words)

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, backend: str = "numpy", cache_size: int = RANKING_CACHE_SIZE
    ) -> Ranker:
        """Prepare the forward pass of a loaded bundle in numpy (default) or Keras."""
        if backend not in ENGINES:
            raise ValueError(f"unknown engine {backend!r}; choose one of {', '.join(ENGINES)}")
        if backend == "keras" and bundle.architecture is not None:
            from chatbot.classifier.model import keras_forward  # imports TensorFlow: only when asked for

            return cls(bundle, keras_forward(bundle), cache_size)
        return cls(bundle, cache_size=cache_size)

    def serve(self) -> Ranker:
        """Prepare to answer a server's requests: fill the encoder's caches with the bot's words
        (in the master before gunicorn forks, so the workers share them), and encode the messages
        of requests that arrive together in one batch (chatbot.classifier.encoder_batch)."""
        if self.encoder is not None:
            self.encoder.prefill(self.bundle.spelling_words)
            self.batcher = MessageBatcher(self.encoder)
        return self

    def predict_proba(self, word_lists: Sequence[Sequence[str]]) -> Array:
        """Return (batch, labels) probabilities for texts split into words (chatbot.text.tokens.words)."""
        return self._predict_proba(*self._read(word_lists))

    def rank(self, text: str) -> Ranking:
        """Classify one text."""
        return self.rank_words(tuple(words(text, self.language)))

    def rank_batch(self, texts: Sequence[str]) -> list[Ranking]:
        """Classify several texts in one forward pass."""
        word_lists, token_lists = self._read([words(text, self.language) for text in texts])
        probabilities = self._predict_proba(word_lists, token_lists)
        return [self._ranking(tokens, row) for tokens, row in zip(token_lists, probabilities, strict=True)]

    def _rank_words(self, text_words: tuple[str, ...]) -> Ranking:
        word_lists, token_lists = self._read([text_words])
        return self._ranking(token_lists[0], self._predict_proba(word_lists, token_lists)[0])

    def _read(self, word_lists: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[list[str]]]:
        """Return the words as the model reads them (runs without spaces split into training words,
        slips in training words corrected), and their stems."""
        if self.segmenter is not None:
            word_lists = [self.segmenter.segment_all(text_words) for text_words in word_lists]
        if self.spelling is not None:
            word_lists = [self.spelling.correct_all(text_words) for text_words in word_lists]
        word_lists = [list(text_words) for text_words in word_lists]
        return word_lists, [[stem(word, self.language) for word in text_words] for text_words in word_lists]

    def part_probabilities(self, word_lists: Sequence[Sequence[str]]) -> tuple[Array | None, Array | None]:
        """Return the (batch, labels) probabilities of the deep and the wide part apart (None for a
        part the bundle lacks), for training to choose their shares."""
        word_lists, token_lists = self._read(word_lists)
        deep = self._deep(word_lists, token_lists) if self.forward is not None else None
        wide = self._wide(word_lists, token_lists) if self.ngram_model is not None else None
        return deep, wide

    def _predict_proba(
        self, word_lists: Sequence[Sequence[str]], token_lists: Sequence[Sequence[str]]
    ) -> Array:
        if self.deep_weight > 0.0:
            deep = self._deep(word_lists, token_lists)
            if self.deep_weight >= 1.0:
                return deep
        wide = self._wide(word_lists, token_lists)
        return wide if self.deep_weight <= 0.0 else self.deep_weight * deep + (1.0 - self.deep_weight) * wide

    def _deep(self, word_lists: Sequence[Sequence[str]], token_lists: Sequence[Sequence[str]]) -> Array:
        vectors = None
        if self.batcher is not None and len(word_lists) == 1:
            vectors = self.batcher.encode(sentence(word_lists[0]))[None, :]
        elif self.encoder is not None:
            vectors = self.encoder.encode([sentence(text_words) for text_words in word_lists])
        return self.forward(self.bundle.vocabulary.encode_batch(token_lists, self.max_length), vectors)

    def _wide(self, word_lists: Sequence[Sequence[str]], token_lists: Sequence[Sequence[str]]) -> Array:
        return self.ngram_model.predict_proba(list(zip(word_lists, token_lists, strict=True)))

    def _ranking(self, tokens: Sequence[str], probabilities: Array) -> Ranking:
        # Best first; equal probabilities keep the labels' order (a stable sort, as sorted() was).
        order = np.argsort(-probabilities, kind="stable")
        ranked = tuple(zip(self._label_array[order].tolist(), probabilities[order].tolist(), strict=True))
        return Ranking(ranked, self.bundle.vocabulary.count_known(tokens), len(tokens))


def sentence(text_words: Sequence[str]) -> str:
    """Return the text the sentence encoder reads: the words the model reads (normalised, segmented,
    spell-corrected), the same in training and serving, so one ranking cache entry fits both parts."""
    return " ".join(text_words)
