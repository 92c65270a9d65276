"""Train an intent classifier from intents and return it as a Bundle."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import keras
import nltk
import numpy as np
import tensorflow as tf

import chatbot
from chatbot.bundle import Bundle
from chatbot.config import ModelConfig
from chatbot.data import Intent, fingerprint_intents
from chatbot.errors import IntentsError
from chatbot.model import average_models, build_model
from chatbot.text import tokenize
from chatbot.vocab import UNK_ID, Vocabulary, build_vocabulary

log = logging.getLogger(__name__)

BUCKET_BATCHES = 50  # batches per chunk within which rows are sorted by length


@dataclass(frozen=True)
class Examples:
    """Tokenised training texts with the index of their label."""

    tokens: list[list[str]]
    label_ids: np.ndarray

    def subset(self, indices: Sequence[int]) -> Examples:
        """Return the examples at the given positions."""
        return Examples([self.tokens[i] for i in indices], self.label_ids[list(indices)])


class WordDropoutBatches:
    """Shuffled batches in which some known words become <unk>, so the <unk> embedding is trained.

    Rows of similar length share a batch (sorted within shuffled chunks of BUCKET_BATCHES batches)
    and each batch is cut to its longest row: the LSTM then runs over far fewer padding steps.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, rate: float, seed: int) -> None:
        self.x, self.y, self.batch_size, self.rate = x, y, batch_size, rate
        self.lengths = np.maximum((x != 0).sum(axis=1), 1)
        self.rng = np.random.default_rng(seed)

    def epoch(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield one epoch of batches, in a new order each time."""
        order = self.rng.permutation(len(self.x))
        chunk = BUCKET_BATCHES * self.batch_size
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        for index in self.rng.permutation(len(batches)):
            rows = batches[index]
            x = self.x[rows, : self.lengths[rows].max()].copy()
            x[(x > UNK_ID) & (self.rng.random(x.shape) < self.rate)] = UNK_ID
            yield x, self.y[rows]

    def dataset(self) -> tf.data.Dataset:
        """Return the batches as a dataset that declares their varying width (Keras would guess it)."""
        signature = (
            tf.TensorSpec(shape=(None, None), dtype=tf.int32),
            tf.TensorSpec(shape=(None, self.y.shape[1]), dtype=tf.float32),
        )
        batches = -(-len(self.x) // self.batch_size)
        dataset = tf.data.Dataset.from_generator(self.epoch, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(batches))  # Keras counts epochs by it


class EpochLogger(keras.callbacks.Callback):
    """Log one line every few epochs, so a long training shows progress without flooding."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            figures = "  ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items())
            log.info("epoch %d  %s", epoch + 1, figures)


def one_hot(label_ids: np.ndarray, num_labels: int) -> np.ndarray:
    """Return one-hot float targets for label ids."""
    return np.eye(num_labels, dtype=np.float32)[label_ids]


def default_config(intents: Sequence[Intent]) -> ModelConfig:
    """Return the defaults for these intents: the small model, or the large one for big data."""
    return ModelConfig.for_dataset(sum(len(intent.patterns) for intent in intents))


def make_examples(intents: Sequence[Intent], labels: Sequence[str], strict: bool = False) -> Examples:
    """Tokenise every pattern of the intents that are labels; with ``strict``, all must be."""
    label_to_index = {label: index for index, label in enumerate(labels)}
    if strict and (unknown := sorted({i.tag for i in intents if i.patterns} - set(label_to_index))):
        raise IntentsError(f"validation intents not in the training data: {', '.join(unknown)}")
    pairs = [
        (tokenize(pattern), label_to_index[intent.tag])
        for intent in intents
        if intent.tag in label_to_index
        for pattern in intent.patterns
    ]
    return Examples([tokens for tokens, _ in pairs], np.array([label for _, label in pairs], dtype=np.int32))


def stratified_split(label_ids: np.ndarray, share: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out about ``share`` of each label's examples (at least one each) for validation."""
    rng = np.random.default_rng(seed)
    train_rows: list[int] = []
    validation_rows: list[int] = []
    for label in np.unique(label_ids):
        rows = rng.permutation(np.flatnonzero(label_ids == label)).tolist()
        held_out = max(1, round(len(rows) * share))
        validation_rows += rows[:held_out]
        train_rows += rows[held_out:]
    return sorted(train_rows), sorted(validation_rows)


def can_split(label_ids: np.ndarray, config: ModelConfig) -> bool:
    """Say whether every label has enough examples to hold some out."""
    counts = np.bincount(label_ids)
    return config.validation_split > 0 and counts.min() >= config.min_patterns_for_validation


def train(
    intents: Sequence[Intent], config: ModelConfig | None = None, validation: Sequence[Intent] | None = None
) -> Bundle:
    """Train on the intents and return the bundle.

    With a validation set, the model stops early on it and keeps its best epoch. Without one, when
    the data allows, a stratified split measures how well the model generalises and for how many
    epochs; the model is then refitted on every pattern for at least that many epochs, and on until
    it gives every pattern its own intent with ``config.fit_confidence``, so that the bot never
    misreads or hesitates over its own examples.
    """
    started = time.perf_counter()
    labels = tuple(intent.tag for intent in intents if intent.patterns)
    examples = make_examples(intents, labels)
    config = config or default_config(intents)
    longest = max(len(tokens) for tokens in examples.tokens)
    config = config.replace(max_length=max(1, min(config.max_length, longest)))
    metrics: dict[str, float] = {}
    if validation is not None:
        held_out = make_examples(validation, labels, strict=True)
        model, vocabulary, history = _fit_members(examples, len(labels), config, held_out)
        x_validation = vocabulary.encode_batch(held_out.tokens, config.max_length)
        metrics["validation_accuracy"] = accuracy(model, x_validation, held_out.label_ids)
        fit_history = history
    else:
        min_epochs = 1
        fit_history = {}
        if can_split(examples.label_ids, config):
            train_rows, validation_rows = stratified_split(
                examples.label_ids, config.validation_split, config.seed
            )
            _, _, fit_history = _fit(
                examples.subset(train_rows), len(labels), config, examples.subset(validation_rows)
            )
            min_epochs = int(np.argmax(fit_history["val_accuracy"])) + 1
            metrics["validation_accuracy"] = float(fit_history["val_accuracy"][min_epochs - 1])
            log.info(
                "validation accuracy %.4f at epoch %d; refitting on all patterns",
                metrics["validation_accuracy"],
                min_epochs,
            )
        model, vocabulary, history = _fit_members(examples, len(labels), config, None, min_epochs)
        fit_history = fit_history or history
    x = vocabulary.encode_batch(examples.tokens, config.max_length)
    metrics["train_accuracy"] = accuracy(model, x, examples.label_ids)
    metrics["epochs"] = float(len(history["loss"]))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return Bundle(
        architecture=json_architecture(model),
        weights=extract_weights(model),
        vocabulary=vocabulary,
        labels=labels,
        intents=tuple(intents),
        config=config,
        data_sha256=fingerprint_intents(list(intents)),
        versions=library_versions(),
        metrics=metrics,
        history={name: [float(value) for value in values] for name, values in fit_history.items()},
    )


class StopWhenFitted(keras.callbacks.Callback):
    """Stop once past ``min_epochs`` and every example gets its own label with ``confidence``.

    The weights that passed are the ones kept: with weight averaging, Keras would otherwise end
    the training on the raw weights of the last step.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, min_epochs: int, confidence: float) -> None:
        super().__init__()
        self.x, self.y, self.min_epochs, self.confidence = x, y, min_epochs, confidence
        self.fitted_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 < self.min_epochs:
            return
        probabilities = np.asarray(self.model(self.x, training=False))
        own = probabilities[np.arange(len(self.y)), self.y]
        if (probabilities.argmax(axis=1) == self.y).all() and own.min() >= self.confidence:
            self.fitted_weights = self.model.get_weights()
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.fitted_weights is not None:
            self.model.set_weights(self.fitted_weights)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Return the share of examples whose top prediction is their label, with dropout off."""
    return float(np.mean(np.argmax(model(x, training=False), axis=1) == y))


def _fit_members(
    examples: Examples, num_labels: int, config: ModelConfig, validation: Examples | None, min_epochs: int = 1
) -> tuple[keras.Model, Vocabulary, dict[str, list[float]]]:
    """Fit ``config.ensemble_size`` models with consecutive seeds and join them into one."""
    fits = [
        _fit(examples, num_labels, config.replace(seed=config.seed + member), validation, min_epochs)
        for member in range(config.ensemble_size)
    ]
    model, vocabulary, history = fits[0]  # every member builds the same sorted vocabulary
    if len(fits) > 1:
        model = average_models([member_model for member_model, _, _ in fits])
    return model, vocabulary, history


def _fit(
    examples: Examples,
    num_labels: int,
    config: ModelConfig,
    validation: Examples | None,
    min_epochs: int = 1,
) -> tuple[keras.Model, Vocabulary, dict[str, list[float]]]:
    """Fit a new model; with validation data, stop early on it, else once all examples fit."""
    keras.utils.set_random_seed(config.seed)
    vocabulary = build_vocabulary(examples.tokens)  # fitted on training text only
    model = build_model(len(vocabulary), num_labels, config)
    x = vocabulary.encode_batch(examples.tokens, config.max_length)
    y = one_hot(examples.label_ids, num_labels)
    batches = WordDropoutBatches(x, y, config.batch_size, config.word_dropout, config.seed)
    callbacks: list[keras.callbacks.Callback] = [EpochLogger(every=1 if len(x) > 2000 else 25)]
    if config.ema_momentum:
        # First, so that the callbacks after it (and validation) see the averaged weights.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    validation_data = None
    if validation is not None:
        validation_data = (
            vocabulary.encode_batch(validation.tokens, config.max_length),
            one_hot(validation.label_ids, num_labels),
        )
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.patience, restore_best_weights=True
            )
        )
    else:
        # Label smoothing caps what the targets teach: (1 - smoothing + smoothing / labels) at most.
        highest = 1.0 - config.label_smoothing + config.label_smoothing / num_labels
        callbacks.append(StopWhenFitted(x, examples.label_ids, min_epochs, config.fit_confidence * highest))
    history = model.fit(
        batches.dataset(),
        epochs=config.epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,  # the batches shuffle themselves, by length bucket
        verbose=0,
    )
    return model, vocabulary, history.history


def json_architecture(model: keras.Model) -> dict:
    """Return the model's Keras config as plain JSON data."""
    return json.loads(model.to_json())


def extract_weights(model: keras.Model) -> dict[str, dict[str, np.ndarray]]:
    """Return each layer's weights by the names Keras gives them in an HDF5 file."""
    return {
        layer.name: {variable.path: np.asarray(variable.numpy()) for variable in layer.weights}
        for layer in model.layers
    }


def library_versions() -> dict[str, str]:
    """Return the versions that produced a model, for the bundle's record."""
    return {
        "chatbot": chatbot.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "nltk": nltk.__version__,
    }
