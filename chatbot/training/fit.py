"""Fit the Keras model: length-bucketed batches with word dropout, early stopping, and the record
of what was fitted.

The one training module that imports TensorFlow, and only when a model is fitted: validating,
evaluating or serving a bot never loads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import keras
import nltk
import numpy as np
import tensorflow as tf

import chatbot
from chatbot.classifier.config import ModelConfig
from chatbot.classifier.model import average_models, build_model, with_vector_head
from chatbot.classifier.vocab import UNK_ID, Vocabulary, build_vocabulary
from chatbot.training.regression import fit_logistic_regression

if TYPE_CHECKING:
    from chatbot.training.train import Examples

log = logging.getLogger(__name__)

BUCKET_BATCHES = 50  # batches per chunk within which rows are sorted by length


class WordDropoutBatches:
    """Shuffled batches in which some known words become <unk>, so the <unk> embedding is trained.

    Rows of similar length share a batch (sorted within shuffled chunks of BUCKET_BATCHES batches)
    and each batch is cut to its longest row: the LSTM then runs over far fewer padding steps.
    """

    def __init__(
        self,
        x: np.ndarray,
        vectors: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray,
        batch_size: int,
        rate: float,
        seed: int,
    ) -> None:
        self.x, self.y, self.weights, self.batch_size, self.rate = x, y, weights, batch_size, rate
        self.vectors = vectors  # (rows, 0) when the model reads no sentence vectors
        self.lengths = np.maximum((x != 0).sum(axis=1), 1)
        self.rng = np.random.default_rng(seed)

    def epoch(self) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
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
            inputs = (x, self.vectors[rows]) if self.vectors.shape[1] else x
            yield inputs, self.y[rows], self.weights[rows]

    def dataset(self) -> tf.data.Dataset:
        """Return the batches as a dataset that declares their varying width (Keras would guess it)."""
        token_ids = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
        vectors = tf.TensorSpec(shape=(None, self.vectors.shape[1]), dtype=tf.float32)
        signature = (
            (token_ids, vectors) if self.vectors.shape[1] else token_ids,
            tf.TensorSpec(shape=(None, self.y.shape[1]), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.float32),
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


class StopWhenFitted(keras.callbacks.Callback):
    """Stop once past ``min_epochs`` and every example gets its own label with ``confidence``.

    The weights that passed are the ones kept: with weight averaging, Keras would otherwise end
    the training on the raw weights of the last step.
    """

    def __init__(self, x: Any, y: np.ndarray, min_epochs: int, confidence: float) -> None:
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


def fit_members(
    examples: Examples,
    num_labels: int,
    config: ModelConfig,
    validation: Examples | None,
    min_epochs: int = 1,
) -> tuple[keras.Model, Vocabulary, dict[str, list[float]]]:
    """Fit ``config.ensemble_size`` LSTMs with consecutive seeds and join them into one; with
    sentence vectors, one model (beside the vector, a second LSTM did not pay for its cost)."""
    members = 1 if examples.vectors.shape[1] else config.ensemble_size
    fits = [
        fit_one(examples, num_labels, config.replace(seed=config.seed + member), validation, min_epochs)
        for member in range(members)
    ]
    model, vocabulary, history = fits[0]  # every member builds the same sorted vocabulary
    if len(fits) > 1:
        model = average_models([member_model for member_model, _, _ in fits])
    return model, vocabulary, history


def fit_one(
    examples: Examples,
    num_labels: int,
    config: ModelConfig,
    validation: Examples | None,
    min_epochs: int = 1,
) -> tuple[keras.Model, Vocabulary, dict[str, list[float]]]:
    """Fit a new model; with validation data, stop early on it, else once all examples fit."""
    keras.utils.set_random_seed(config.seed)
    vocabulary = build_vocabulary(examples.tokens)  # fitted on training text only
    model = build_model(len(vocabulary), num_labels, config, examples.vectors.shape[1])
    x = vocabulary.encode_batch(examples.tokens, config.max_length)
    y = one_hot(examples.label_ids, num_labels)
    weights = examples.sample_weights(config.off_topic_weight)
    batches = WordDropoutBatches(
        x, examples.vectors, y, weights, config.batch_size, config.word_dropout, config.seed
    )
    callbacks: list[keras.callbacks.Callback] = [EpochLogger(every=1 if len(x) > 2000 else 25)]
    if config.ema_momentum:
        # First, so that the callbacks after it (and validation) see the averaged weights.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    validation_data = None
    if validation is not None:
        validation_data = (
            validation.inputs(config.max_length, vocabulary),
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
        # Generic off-topic queries need not fit: they only pull towards fallback.
        own = examples.subset(np.flatnonzero(examples.own))
        callbacks.append(
            StopWhenFitted(
                own.inputs(config.max_length, vocabulary),
                own.label_ids,
                min_epochs,
                config.fit_confidence * highest,
            )
        )
    history = model.fit(
        batches.dataset(),
        epochs=config.epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=False,  # the batches shuffle themselves, by length bucket
        verbose=0,
    )
    if examples.vectors.shape[1] and config.vector_head_c:
        own = examples.subset(np.flatnonzero(examples.own))
        predicted = np.asarray(model(own.inputs(config.max_length, vocabulary), training=False))
        confidence = float(np.mean(predicted[np.arange(len(own.label_ids)), own.label_ids]))
        model = with_vector_head(
            model, *vector_regression(examples, weights, num_labels, config.vector_head_c, confidence)
        )
    return model, vocabulary, history.history


def vector_regression(
    examples: Examples, weights: np.ndarray, num_labels: int, c: float, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the kernel and bias of a logistic regression on the sentence vectors alone
    (scikit-learn: it converges where a few epochs of gradient descent would not), its logits scaled
    so that it gives the bot's own texts their label with ``confidence`` on average."""
    vectors, label_ids = examples.vectors, examples.label_ids
    # An intent with no example (the fallback of a bot without generic queries): never likely.
    coef, intercept = fit_logistic_regression(
        vectors, label_ids, weights, num_labels, c, max_iter=500, absent_intercept=-10.0
    )
    own = examples.own
    sharpness = matching_sharpness(vectors[own] @ coef + intercept, label_ids[own], confidence)
    return coef * sharpness, intercept * sharpness


def matching_sharpness(logits: np.ndarray, label_ids: np.ndarray, confidence: float) -> float:
    """Return the factor on the logits that gives the training texts their own label with
    ``confidence`` on average: as sure as the joined softmax is of them. A regularised regression
    is far less sure, and averaged as it is, the joined softmax would outvote it wherever they
    disagree (CLINC150 10/intent: 81.7% of val, the regression alone 84%)."""
    rows = np.arange(len(label_ids))

    def mean_confidence(factor: float) -> float:
        scaled = logits * factor
        scaled -= scaled.max(axis=1, keepdims=True)
        probabilities = np.exp(scaled)
        return float(np.mean(probabilities[rows, label_ids] / probabilities.sum(axis=1)))

    low, high = 1.0, 256.0
    if mean_confidence(low) >= confidence:
        return low
    for _ in range(30):  # bisection: the mean confidence grows with the factor
        middle = (low + high) / 2
        low, high = (middle, high) if mean_confidence(middle) < confidence else (low, middle)
    return high


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
