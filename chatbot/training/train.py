"""Train an intent classifier from intents and return it as a Bundle.

Every bot trains the Keras model (an LSTM over its own words, beside the pretrained sentence vector
where the encoder covers its language) and the n-gram model; the share of each in the served
probabilities is the one that does best on held-out data.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import ModelConfig
from chatbot.classifier.encoder import DIMENSION, SentenceEncoder, covers, shared_encoder
from chatbot.classifier.ngrams import Document, NgramModel, feature_families
from chatbot.classifier.ranker import Ranker, sentence
from chatbot.classifier.vocab import Vocabulary
from chatbot.data.intents import FALLBACK_TAG, Intent, fingerprint_data
from chatbot.data.slots import Domain
from chatbot.errors import IntentsError
from chatbot.text.languages import DEFAULT_LANGUAGE, fallback_response
from chatbot.text.tokens import stem, words
from chatbot.training.regression import fit_logistic_regression
from chatbot.training.tagger import with_tagger
from chatbot.training.threshold import IN_SCOPE_REFUSAL_BUDGET, calibrate, calibrate_in_scope, load_off_topic

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

ENCODE_BATCH = 256  # texts per call to the sentence encoder at training time: bounded memory
MIN_HELD_OUT = 20  # phrases a split of small intents (one each) must hold out to be used
SHARES = np.round(np.linspace(0.0, 1.0, 11), 2)  # deep_weight values tried on held-out data


@dataclass(frozen=True)
class Examples:
    """Training texts, as words and as stemmed tokens, with the index of their label."""

    texts: list[str]
    words: list[list[str]]
    tokens: list[list[str]]  # the stems of the words: what the LSTM reads
    label_ids: np.ndarray
    own: np.ndarray  # True for the bot's own patterns, False for generic off-topic queries
    vectors: np.ndarray  # (texts, 512) sentence vectors; (texts, 0) without the encoder

    def subset(self, indices: Sequence[int]) -> Examples:
        """Return the examples at the given positions."""
        rows = list(indices)
        return Examples(
            [self.texts[i] for i in rows],
            [self.words[i] for i in rows],
            [self.tokens[i] for i in rows],
            self.label_ids[rows],
            self.own[rows],
            self.vectors[rows],
        )

    def __add__(self, other: Examples) -> Examples:
        return Examples(
            self.texts + other.texts,
            self.words + other.words,
            self.tokens + other.tokens,
            np.concatenate([self.label_ids, other.label_ids]),
            np.concatenate([self.own, other.own]),
            np.concatenate([self.vectors, other.vectors]),
        )

    def documents(self) -> list[Document]:
        """Return each text's (words, stems): what the n-gram model reads."""
        return list(zip(self.words, self.tokens, strict=True))

    def with_vectors(self, encoder: SentenceEncoder | None) -> Examples:
        """Return the examples with their sentence vectors, encoded in batches (none without an encoder)."""
        if encoder is None:
            return self
        batches = [
            encoder.encode([sentence(text_words) for text_words in self.words[start : start + ENCODE_BATCH]])
            for start in range(0, len(self.words), ENCODE_BATCH)
        ]
        vectors = np.concatenate(batches) if batches else np.zeros((0, DIMENSION), dtype=np.float32)
        return dataclasses.replace(self, vectors=vectors)

    def inputs(self, max_length: int, vocabulary: Vocabulary) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Return what the Keras model reads: padded token ids, and the sentence vectors if any."""
        token_ids = vocabulary.encode_batch(self.tokens, max_length)
        return (token_ids, self.vectors) if self.vectors.shape[1] else token_ids

    def intents(self, labels: Sequence[str]) -> list[Intent]:
        """Return the examples as intents with their texts as patterns (no responses needed)."""
        return [
            Intent(label, tuple(t for t, i in zip(self.texts, self.label_ids, strict=True) if i == index), ())
            for index, label in enumerate(labels)
        ]

    def sample_weights(self, off_topic_weight: float) -> np.ndarray:
        """Weigh each own pattern 1 and all generic queries together like ``off_topic_weight``
        average intents, so that they cannot outweigh the bot's own data however many there are."""
        own_labels = len(np.unique(self.label_ids[self.own])) or 1
        generic = int((~self.own).sum()) or 1
        share = off_topic_weight * self.own.sum() / own_labels / generic
        return np.where(self.own, 1.0, share).astype(np.float32)


def default_config(intents: Sequence[Intent], language: str = DEFAULT_LANGUAGE) -> ModelConfig:
    """Return the defaults for these intents in this language: the small model, or the large one."""
    patterns = sum(len(intent.patterns) for intent in intents)
    return ModelConfig.for_dataset(patterns, language, sum(1 for intent in intents if intent.patterns))


def make_examples(
    intents: Sequence[Intent], labels: Sequence[str], strict: bool = False, language: str = DEFAULT_LANGUAGE
) -> Examples:
    """Tokenise every pattern of the intents that are labels; with ``strict``, all must be."""
    label_to_index = {label: index for index, label in enumerate(labels)}
    if strict and (unknown := sorted({i.tag for i in intents if i.patterns} - set(label_to_index))):
        raise IntentsError(f"validation intents not in the training data: {', '.join(unknown)}")
    pairs = [
        (pattern, label_to_index[intent.tag])
        for intent in intents
        if intent.tag in label_to_index
        for pattern in intent.patterns
    ]
    word_lists = [words(text, language) for text, _ in pairs]
    return Examples(
        [text for text, _ in pairs],
        word_lists,
        [[stem(word, language) for word in text_words] for text_words in word_lists],
        np.array([label for _, label in pairs], dtype=np.int32),
        np.ones(len(pairs), dtype=bool),
        np.zeros((len(pairs), 0), dtype=np.float32),
    )


def off_topic_examples(
    queries: Sequence[str], labels: Sequence[str], language: str = DEFAULT_LANGUAGE
) -> Examples:
    """Return generic off-topic queries as not-own examples of the fallback intent."""
    examples = make_examples([Intent(FALLBACK_TAG, tuple(queries), ())], labels, language=language)
    return dataclasses.replace(examples, own=np.zeros(len(examples.texts), dtype=bool))


def with_fallback_intent(intents: Sequence[Intent], language: str = DEFAULT_LANGUAGE) -> list[Intent]:
    """Return the intents with a fallback intent: the label that generic off-topic queries train."""
    if any(intent.tag == FALLBACK_TAG for intent in intents):
        return list(intents)
    return [*intents, Intent(FALLBACK_TAG, (), (fallback_response(language),))]


def stratified_split(
    label_ids: np.ndarray, share: float, seed: int, min_patterns: int = 1
) -> tuple[list[int], list[int]]:
    """Hold out about ``share`` of each label's examples (at least one) for validation; a label
    with fewer than ``min_patterns`` examples gives one, and a label with one keeps it."""
    rng = np.random.default_rng(seed)
    train_rows: list[int] = []
    validation_rows: list[int] = []
    for label in np.unique(label_ids):
        rows = rng.permutation(np.flatnonzero(label_ids == label)).tolist()
        held_out = max(1, round(len(rows) * share)) if len(rows) >= min_patterns else min(1, len(rows) - 1)
        validation_rows += rows[:held_out]
        train_rows += rows[held_out:]
    return sorted(train_rows), sorted(validation_rows)


def can_split(label_ids: np.ndarray, config: ModelConfig) -> bool:
    """Say whether the examples allow a held-out part: every label has ``min_patterns_for_validation``
    examples, or four fifths of the labels have two or more (MTOP's smallest intents have 2 or 3
    phrases, and choosing the share on one phrase of each beat keeping 0.5 in Hindi) and together
    they hold out at least MIN_HELD_OUT (fewer say too little to choose a share or a threshold by)."""
    counts = np.bincount(label_ids)
    counts = counts[counts > 0]  # a fallback intent with no patterns of its own has nothing to hold out
    if config.validation_split <= 0 or len(counts) < 2:
        return False
    if counts.min() >= config.min_patterns_for_validation:
        return True
    return bool(np.mean(counts >= 2) >= 0.8 and np.sum(counts >= 2) >= MIN_HELD_OUT)


def train(
    intents: Sequence[Intent],
    config: ModelConfig | None = None,
    validation: Sequence[Intent] | None = None,
    out_of_scope: Sequence[str] = (),
    domain: Domain | None = None,
    widget_strings: dict[str, str] | None = None,
) -> Bundle:
    """Train on the intents and return the bundle, its threshold fitted to held-out data.

    The bundle carries the data file's other sections too: its entities and slots (``domain``) and
    the widget's texts.

    The Keras model reads the sentence encoder's vectors when ``config.encoder`` is auto and the
    encoder covers the bot's language (``chatbot.classifier.encoder.covers``); otherwise its LSTM
    reads the words alone.

    With a validation set, the Keras model stops early on it and keeps its best epoch. Without one,
    when the data allows, a stratified split measures how well the model generalises and for how
    many epochs; the model is then refitted on every pattern for at least that many epochs, and on
    until it gives every pattern its own intent with ``config.fit_confidence``, so that the bot
    never misreads or hesitates over its own examples. The n-gram model is fitted beside it, and
    the share of each part (``deep_weight``) is the one that does best on the held-out queries.

    The threshold is chosen here, in one place. With a validation set and the author's
    ``out_of_scope`` queries (such as those the review inbox marks), it is the one that answers both
    best (``calibrate``). Otherwise it comes from the held-out queries (the validation set, or the
    split's held-out part as the split model answers it) and off-topic ones, the author's and
    generic ones: ``choose_threshold_in_scope``. With no held-out queries, the config's threshold
    and share stay.
    """
    from chatbot.training import fit  # TensorFlow: imported only now that a model is fitted

    started = time.perf_counter()
    config = config or default_config(intents)
    language = config.language
    encoder = chosen_encoder(config)
    data_sha256 = fingerprint_data(list(intents), domain, widget_strings)
    off_topic = load_off_topic()
    if config.off_topic_weight > 0:
        # Half of the generic off-topic queries train the fallback intent; the other half is left
        # for the threshold to measure how often off-topic messages get through.
        intents = with_fallback_intent(intents, language)
        labels = tuple(i.tag for i in intents if i.patterns or i.tag == FALLBACK_TAG)
        negatives = off_topic_examples(off_topic[::2], labels, language)
        off_topic = off_topic[1::2]
    else:
        labels = tuple(intent.tag for intent in intents if intent.patterns)
        negatives = make_examples([], labels, language=language)
    examples = make_examples(intents, labels, language=language).with_vectors(encoder)
    negatives = negatives.with_vectors(encoder)
    longest = max(len(tokens) for tokens in examples.tokens)
    config = config.replace(max_length=max(1, min(config.max_length, longest)))
    frequency = Counter(word for text_words in (examples + negatives).words for word in text_words)
    build = functools.partial(
        _bundle,
        labels=labels,
        intents=intents,
        data_sha256=data_sha256,
        spelling_words=tuple(word for word, _ in frequency.most_common()),
        domain=domain or Domain(),
        widget_strings=widget_strings or {},
        encoder=encoder,
    )
    held_out_model: Bundle | None = None
    held_out: Sequence[Intent] = validation or ()
    fit_history: dict[str, list[float]] = {}
    share_metrics: dict[str, float] = {}
    if validation is not None:
        validation_examples = make_examples(validation, labels, strict=True, language=language)
        validation_examples = validation_examples.with_vectors(encoder)
        model, vocabulary, fit_history = fit.fit_members(
            examples + negatives, len(labels), config, validation_examples
        )
        bundle = build(
            model, vocabulary, fit_ngram_model(examples + negatives, len(labels), config), config=config
        )
        share_metrics = choose_share(bundle, validation_examples)
    else:
        min_epochs = 1
        if can_split(examples.label_ids, config):
            train_rows, validation_rows = stratified_split(
                examples.label_ids, config.validation_split, config.seed, config.min_patterns_for_validation
            )
            part, rest = examples.subset(train_rows) + negatives, examples.subset(validation_rows)
            split_model, split_vocabulary, fit_history = fit.fit_members(
                part, len(labels), config.replace(ensemble_size=1), rest
            )
            min_epochs = int(np.argmax(fit_history["val_accuracy"])) + 1
            log.info(
                "Keras model validation accuracy %.4f at epoch %d; refitting on all patterns",
                fit_history["val_accuracy"][min_epochs - 1],
                min_epochs,
            )
            held_out_model = build(
                split_model, split_vocabulary, fit_ngram_model(part, len(labels), config), config=config
            )
            share_metrics = choose_share(held_out_model, rest)
            config = config.replace(deep_weight=share_metrics["deep_weight"])
            held_out_model = dataclasses.replace(held_out_model, config=config)
            held_out = rest.intents(labels)
        model, vocabulary, history = fit.fit_members(
            examples + negatives, len(labels), config, None, min_epochs
        )
        fit_history = fit_history or history
        bundle = build(
            model, vocabulary, fit_ngram_model(examples + negatives, len(labels), config), config=config
        )
    if share_metrics:
        bundle = dataclasses.replace(
            bundle, config=bundle.config.replace(deep_weight=share_metrics["deep_weight"])
        )
    metrics: dict[str, float] = dict(share_metrics)
    if validation is not None and out_of_scope:
        # A validation set and the author's own out-of-scope queries: the threshold that answers
        # both best, rather than a budget against generic off-topic ones.
        bundle, accuracy = calibrate(bundle, validation, out_of_scope)
        metrics["calibrated_accuracy"] = accuracy
        log.info(
            "threshold %.4f: accuracy %.4f on validation + out-of-scope", bundle.config.threshold, accuracy
        )
    elif held_out:
        bundle, summary = calibrate_in_scope(bundle, held_out, [*out_of_scope, *off_topic], held_out_model)
        metrics["validation_accuracy"] = summary["accuracy"]
        log.info(describe_threshold(bundle.config.threshold, summary))
    engine = Ranker.from_bundle(bundle, cache_size=0)
    predicted = engine.predict_proba(examples.words).argmax(axis=1)
    metrics["train_accuracy"] = float(np.mean(predicted == examples.label_ids))
    metrics["epochs"] = float(len(fit_history.get("loss", ())))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    bundle = with_tagger(bundle, intents)  # the entity tagger, when patterns are annotated
    return dataclasses.replace(
        bundle,
        metrics=metrics,
        history={name: [float(value) for value in values] for name, values in fit_history.items()},
    )


def chosen_encoder(config: ModelConfig) -> SentenceEncoder | None:
    """Return the sentence encoder when the config allows it and it covers the bot's language."""
    if config.encoder == "none":
        log.info("sentence encoder: none (the training settings opt out)")
        return None
    if not covers(config.language):
        log.info("sentence encoder: not used, it does not cover language %r", config.language)
        return None
    return shared_encoder()


def encoder_summary(bundle: Bundle) -> str:
    """Say whether the bundle's model reads sentence vectors, and why not, for the training output."""
    if bundle.encoder is not None:
        return f"with the sentence encoder {bundle.encoder.name} {bundle.encoder.version}"
    if bundle.config.encoder == "none":
        return "without the sentence encoder (encoder: none)"
    return f"without the sentence encoder (it does not cover language {bundle.config.language!r})"


def choose_share(bundle: Bundle, held_out: Examples) -> dict[str, float]:
    """Return the deep part's share that ranks the held-out examples best (the higher mean
    log-probability of the right intent breaks ties), with each part's accuracy alone."""
    deep, wide = Ranker.from_bundle(bundle, cache_size=0).part_probabilities(held_out.words)
    rows = np.arange(len(held_out.label_ids))
    scores = []
    for share in SHARES:
        probabilities = share * deep + (1.0 - share) * wide
        accuracy = float(np.mean(probabilities.argmax(axis=1) == held_out.label_ids))
        log_probability = float(np.mean(np.log(probabilities[rows, held_out.label_ids] + 1e-9)))
        scores.append((accuracy, log_probability))
    best = max(range(len(SHARES)), key=lambda index: scores[index])
    log.info(
        "share of the Keras model %.1f: held-out accuracy %.4f (Keras model alone %.4f, n-grams alone %.4f)",
        SHARES[best],
        scores[best][0],
        scores[-1][0],
        scores[0][0],
    )
    return {
        "deep_weight": float(SHARES[best]),
        "held_out_accuracy_mixed": scores[best][0],
        "held_out_accuracy_keras": scores[-1][0],
        "held_out_accuracy_ngrams": scores[0][0],
    }


def describe_threshold(threshold: float, summary: dict[str, float]) -> str:
    """Say how the threshold was chosen and what it does, for the training log."""
    return (
        f"threshold {threshold:.4f}: the highest that refuses at most {IN_SCOPE_REFUSAL_BUDGET:.1%} of the "
        f"{summary['held_out_right']:.0f} held-out queries the model gets right, then the best balance "
        f"below it; keeps {summary['right_answers_kept']:.1%} of them and refuses "
        f"{summary['off_topic_refused']:.1%} of {summary['off_topic_queries']:.0f} off-topic queries"
    )


def _bundle(
    model: keras.Model | None,
    vocabulary: Vocabulary,
    ngram_model: NgramModel,
    labels: tuple[str, ...],
    intents: Sequence[Intent],
    config: ModelConfig,
    data_sha256: str,
    spelling_words: tuple[str, ...],
    domain: Domain,
    widget_strings: dict[str, str],
    encoder: SentenceEncoder | None,
) -> Bundle:
    from chatbot.training import fit

    return Bundle(
        architecture=fit.json_architecture(model) if model is not None else None,
        weights=fit.extract_weights(model) if model is not None else {},
        vocabulary=vocabulary,
        labels=labels,
        intents=tuple(intents),
        config=config,
        data_sha256=data_sha256,
        versions=fit.library_versions(),
        ngram_model=ngram_model,
        spelling_words=spelling_words,
        domain=domain,
        widget_strings=widget_strings,
        encoder=encoder.identity if encoder is not None else None,
    )


def fit_ngram_model(examples: Examples, num_labels: int, config: ModelConfig) -> NgramModel:
    """Fit the n-gram model: TF-IDF features (vocabulary and idf from these texts) and a
    multinomial logistic regression (scikit-learn, imported here: serving never needs it)."""

    documents = examples.documents()
    families = [feature_families(document) for document in documents]
    features: list[str] = []
    document_frequency: list[float] = []
    word_features = 0
    for family in range(2):
        counts = Counter(gram for grams in families for gram in set(grams[family]))
        kept = sorted(gram for gram, count in counts.items() if count >= config.ngram_min_df)
        features += kept
        document_frequency += [counts[gram] for gram in kept]
        word_features = word_features or len(kept)
    # scikit-learn's smoothed idf: as if one extra document held every feature once.
    idf = np.log((1 + len(documents)) / (1 + np.asarray(document_frequency, dtype=np.float64))) + 1
    model = NgramModel(
        tuple(features),
        word_features,
        idf.astype(np.float32),
        np.zeros((len(features), num_labels), np.float32),
        np.zeros(num_labels, np.float32),
    )
    matrix = ngram_matrix(model, documents)
    coef, intercept = fit_logistic_regression(
        matrix,
        examples.label_ids,
        examples.sample_weights(config.off_topic_weight),
        num_labels,
        config.ngram_c,
        max_iter=1000,
    )
    return dataclasses.replace(model, coef=coef, intercept=intercept)


def ngram_matrix(model: NgramModel, documents: Sequence[Document]):  # -> scipy.sparse.csr_matrix
    """Return the n-gram model's TF-IDF features of the documents as a sparse matrix, for scikit-learn."""
    from scipy.sparse import csr_matrix

    rows = [model.vectorize(document) for document in documents]
    return csr_matrix(
        (
            np.concatenate([[], *(values for _, values in rows)]),
            np.concatenate([[], *(columns for columns, _ in rows)]).astype(np.int64),
            np.cumsum([0, *(len(columns) for columns, _ in rows)]),
        ),
        shape=(len(documents), len(model.features)),
    )
