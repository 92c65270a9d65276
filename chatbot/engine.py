"""Run a bundle's classifier in numpy, without TensorFlow: fast to start, fast per request.

The forward pass reads the Keras architecture and weights from the bundle and implements the layers
the trainer builds (Embedding with masking, LSTM, Bidirectional LSTM, Dense, Dropout). Anything
else fails at load with UnsupportedModelError rather than giving wrong answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.bundle import Bundle
from chatbot.errors import UnsupportedModelError
from chatbot.text import tokenize

Array = np.ndarray
Step = Callable[[Array, Array], tuple[Array, Array]]  # (values, mask) -> (values, mask)

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),  # Keras 3 definition
    "softmax": lambda x: _softmax(x),
}
PASS_THROUGH = frozenset({"InputLayer", "NotEqual", "Dropout", "SpatialDropout1D", "GaussianNoise"})


@dataclass(frozen=True)
class Ranking:
    """Every label with its probability, best first, and how many words of the text were known."""

    intents: tuple[tuple[str, float], ...]
    known_words: int

    @property
    def top(self) -> tuple[str, float]:
        """Return the best label and its confidence."""
        return self.intents[0]


class Engine:
    """Classify texts with a bundle's model in plain numpy."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.labels = bundle.labels
        self.max_length = bundle.config.max_length
        self.steps = [build_step(layer, bundle.weights.get(layer["name"], {})) for layer in bundle.layers()]

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> Engine:
        """Prepare the forward pass for a loaded bundle."""
        return cls(bundle)

    def predict_proba(self, token_ids: Array) -> Array:
        """Return (batch, labels) probabilities for padded token ids."""
        values, mask = token_ids, token_ids != 0
        for step in self.steps:
            values, mask = step(values, mask)
        return values

    def rank(self, text: str) -> Ranking:
        """Classify one text."""
        return self.rank_batch([text])[0]

    def rank_batch(self, texts: Sequence[str]) -> list[Ranking]:
        """Classify several texts in one forward pass."""
        token_lists = [tokenize(text) for text in texts]
        token_ids = self.bundle.vocabulary.encode_batch(token_lists, self.max_length)
        probabilities = self.predict_proba(token_ids)
        rankings = []
        for tokens, row in zip(token_lists, probabilities, strict=True):
            order = np.argsort(-row, kind="stable")
            rankings.append(
                Ranking(
                    intents=tuple((self.labels[i], float(row[i])) for i in order),
                    known_words=self.bundle.vocabulary.count_known(tokens),
                )
            )
        return rankings


def build_step(layer: dict[str, Any], weights: dict[str, Array]) -> Step:
    """Return the numpy function of one Keras layer."""
    class_name, config = layer["class_name"], layer["config"]
    arrays = [np.asarray(values, dtype=np.float32) for values in weights.values()]
    if class_name in PASS_THROUGH:
        return lambda values, mask: (values, mask)
    if class_name == "Embedding":
        return embedding_step(arrays[0], bool(config.get("mask_zero")))
    if class_name == "Dense":
        return dense_step(arrays, activation(config, "activation"), config.get("use_bias", True))
    if class_name == "LSTM":
        return lstm_step(arrays, config)
    if class_name == "Bidirectional":
        return bidirectional_step(arrays, config)
    raise UnsupportedModelError(
        f"layer {layer['name']!r} ({class_name}) is not supported by the numpy engine; "
        "train the model with `chatbot train`"
    )


def activation(config: dict[str, Any], key: str) -> Callable[[Array], Array]:
    """Look up a layer's activation by name, failing clearly on one the engine lacks."""
    name = config.get(key, "linear")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedModelError(f"activation {name!r} is not supported by the numpy engine")
    return ACTIVATIONS[name]


def embedding_step(table: Array, mask_zero: bool) -> Step:
    """Look up word vectors; with mask_zero, id 0 is padding."""

    def step(token_ids: Array, mask: Array) -> tuple[Array, Array]:
        return table[token_ids], (token_ids != 0) if mask_zero else np.ones(token_ids.shape, dtype=bool)

    return step


def dense_step(arrays: list[Array], act: Callable[[Array], Array], use_bias: bool) -> Step:
    """Apply ``act(x @ kernel + bias)``."""
    kernel = arrays[0]
    bias = arrays[1] if use_bias else np.zeros(kernel.shape[1], dtype=np.float32)
    return lambda values, mask: (act(values @ kernel + bias), mask)


def lstm_step(arrays: list[Array], config: dict[str, Any]) -> Step:
    """Run an LSTM over the masked sequence, in Keras' gate order (input, forget, cell, output)."""
    _check_recurrent_config(config)
    run = lstm_runner(arrays, config)
    return_sequences = bool(config.get("return_sequences"))
    backwards = bool(config.get("go_backwards"))

    def step(values: Array, mask: Array) -> tuple[Array, Array]:
        outputs, last = run(values, mask, backwards)
        return (outputs, mask) if return_sequences else (last, mask[:, :1])

    return step


def bidirectional_step(arrays: list[Array], config: dict[str, Any]) -> Step:
    """Run a forward and a backward LSTM and concatenate their outputs."""
    inner = config["layer"]
    if inner["class_name"] != "LSTM" or config.get("merge_mode", "concat") != "concat":
        raise UnsupportedModelError("only Bidirectional(LSTM) with merge_mode='concat' is supported")
    _check_recurrent_config(inner["config"])
    half = len(arrays) // 2
    forward = lstm_runner(arrays[:half], inner["config"])
    backward = lstm_runner(arrays[half:], inner["config"])
    return_sequences = bool(inner["config"].get("return_sequences"))

    def step(values: Array, mask: Array) -> tuple[Array, Array]:
        forward_outputs, forward_last = forward(values, mask, False)
        backward_outputs, backward_last = backward(values, mask, True)
        if return_sequences:
            return np.concatenate([forward_outputs, backward_outputs], axis=-1), mask
        return np.concatenate([forward_last, backward_last], axis=-1), mask[:, :1]

    return step


def lstm_runner(
    arrays: list[Array], config: dict[str, Any]
) -> Callable[[Array, Array, bool], tuple[Array, Array]]:
    """Return a function computing all outputs and the last output of one LSTM direction."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    units = recurrent_kernel.shape[0]
    bias = arrays[2] if config.get("use_bias", True) else np.zeros(4 * units, dtype=np.float32)
    act = activation(config, "activation")
    recurrent_act = activation(config, "recurrent_activation")

    def run(values: Array, mask: Array, backwards: bool) -> tuple[Array, Array]:
        batch, length = values.shape[0], values.shape[1]
        inputs = values @ kernel + bias  # all time steps at once; only the recurrence is a loop
        hidden = np.zeros((batch, units), dtype=np.float32)
        cell = np.zeros((batch, units), dtype=np.float32)
        outputs = np.zeros((batch, length, units), dtype=np.float32)
        for t in range(length - 1, -1, -1) if backwards else range(length):
            gates = inputs[:, t] + hidden @ recurrent_kernel
            input_gate = recurrent_act(gates[:, :units])
            forget_gate = recurrent_act(gates[:, units : 2 * units])
            new_cell = forget_gate * cell + input_gate * act(gates[:, 2 * units : 3 * units])
            new_hidden = recurrent_act(gates[:, 3 * units :]) * act(new_cell)
            step_mask = mask[:, t : t + 1]  # masked steps carry the state over unchanged
            cell = np.where(step_mask, new_cell, cell)
            hidden = np.where(step_mask, new_hidden, hidden)
            outputs[:, t] = hidden
        return outputs, hidden

    return run


def _check_recurrent_config(config: dict[str, Any]) -> None:
    if config.get("stateful") or config.get("return_state"):
        raise UnsupportedModelError("stateful LSTMs and return_state are not supported by the numpy engine")


def _softmax(x: Array) -> Array:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
