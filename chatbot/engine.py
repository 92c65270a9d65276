"""Run a bundle's classifier in numpy, without TensorFlow: fast to start, fast per request.

A bundle's probabilities mix two models: the LSTM (the "deep" part, weight ``deep_weight``) and
the n-gram model (the "wide" part, chatbot.ngrams), which carries small bots alone. The LSTM's forward pass reads the Keras architecture and weights from the bundle and implements the layers
the trainer builds (Embedding with masking, LSTM, Bidirectional LSTM, Dense, Dropout). Anything
else fails at load with UnsupportedModelError rather than giving wrong answers. A Keras forward
pass (``backend="keras"``, in chatbot.model) stays available for comparison and as a fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from chatbot.bundle import Bundle
from chatbot.config import ENGINES
from chatbot.errors import UnsupportedModelError
from chatbot.languages import LANGUAGES
from chatbot.segment import Segmenter
from chatbot.spelling import SpellingCorrector
from chatbot.text import stem, words

Array = np.ndarray
Step = Callable[[Array, Array], tuple[Array, Array]]  # (values, mask) -> (values, mask)
Forward = Callable[[Array], Array]  # padded token ids -> probabilities

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),  # Keras 3 definition
    "softmax": lambda x: _softmax(x),
}
PASS_THROUGH = frozenset({"InputLayer", "NotEqual", "Dropout", "SpatialDropout1D", "GaussianNoise"})
RECURRENT = frozenset({"LSTM", "Bidirectional"})
RANKING_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Ranking:
    """Every label with its probability, best first, and how many words of the text were known."""

    intents: tuple[tuple[str, float], ...]
    known_words: int
    words: int  # tokens in the text, known or not

    @property
    def top(self) -> tuple[str, float]:
        """Return the best label and its confidence."""
        return self.intents[0]


class Engine:
    """Classify texts with a bundle's model: the LSTM's probabilities mixed with the n-gram model's."""

    def __init__(
        self, bundle: Bundle, forward: Forward | None = None, cache_size: int = RANKING_CACHE_SIZE
    ) -> None:
        self.bundle = bundle
        self.labels = bundle.labels
        self.max_length = bundle.config.max_length
        self.language = bundle.config.language
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
    ) -> Engine:
        """Prepare the forward pass of a loaded bundle in numpy (default) or Keras."""
        if backend not in ENGINES:
            raise ValueError(f"unknown engine {backend!r}; choose one of {', '.join(ENGINES)}")
        if backend == "keras" and bundle.architecture is not None:
            from chatbot.model import keras_forward  # imports TensorFlow: only when asked for

            return cls(bundle, keras_forward(bundle), cache_size)
        return cls(bundle, cache_size=cache_size)

    def predict_proba(self, word_lists: Sequence[Sequence[str]]) -> Array:
        """Return (batch, labels) probabilities for texts split into words (chatbot.text.words)."""
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

    def _predict_proba(
        self, word_lists: Sequence[Sequence[str]], token_lists: Sequence[Sequence[str]]
    ) -> Array:
        if self.deep_weight > 0.0:
            deep = self.forward(self.bundle.vocabulary.encode_batch(token_lists, self.max_length))
            if self.deep_weight >= 1.0:
                return deep
        wide = self.ngram_model.predict_proba(list(zip(word_lists, token_lists, strict=True)))
        return wide if self.deep_weight <= 0.0 else self.deep_weight * deep + (1.0 - self.deep_weight) * wide

    def _ranking(self, tokens: Sequence[str], probabilities: Array) -> Ranking:
        ranked = sorted(zip(self.labels, probabilities.tolist(), strict=True), key=_score, reverse=True)
        return Ranking(tuple(ranked), self.bundle.vocabulary.count_known(tokens), len(tokens))


def numpy_forward(bundle: Bundle) -> Forward:
    """Compile the bundle's model into one numpy function: a chain of layers, or an ensemble of
    chains whose probabilities an Average layer joins."""
    layers = bundle.layers()
    outputs = [layer for layer in layers if layer["class_name"] == "Average"]
    if not outputs:
        chains = [layers]
    elif len(outputs) == 1 and outputs[0] is layers[-1]:
        by_name = {layer["name"]: layer for layer in layers}
        chains = [chain_to(name, by_name) for name in inbound_names(outputs[0])]
    else:
        raise UnsupportedModelError("the numpy engine runs an Average layer only as the model's output")
    branches = [chain_steps(chain, bundle.weights) for chain in chains]

    def forward(token_ids: Array) -> Array:
        # Padding is at the end: columns that are padding in every row change nothing, so skip them.
        used = np.flatnonzero(token_ids.any(axis=0))
        token_ids = token_ids[:, : used[-1] + 1 if used.size else 0]
        probabilities = [run_steps(steps, token_ids) for steps in branches]
        return probabilities[0] if len(probabilities) == 1 else np.mean(probabilities, axis=0)

    return forward


def run_steps(steps: list[Step], token_ids: Array) -> Array:
    """Run a chain of steps over padded token ids."""
    values, mask = token_ids, token_ids != 0
    for step in steps:
        values, mask = step(values, mask)
    return values


def inbound_names(layer: dict[str, Any]) -> list[str]:
    """Return the names of the layers whose outputs a layer takes as its data input."""
    nodes = layer.get("inbound_nodes") or [{"args": []}]
    first = nodes[0]["args"][0] if nodes[0]["args"] else []
    tensors = first if isinstance(first, list) else [first]
    return [tensor["config"]["keras_history"][0] for tensor in tensors]


def chain_to(name: str, by_name: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the layers from the model's input to the named layer, each feeding the next."""
    chain = []
    while name in by_name and by_name[name]["class_name"] != "InputLayer":
        layer = by_name[name]
        sources = inbound_names(layer)
        if len(sources) != 1:
            raise UnsupportedModelError(f"layer {name!r} has {len(sources)} inputs; the engine runs chains")
        chain.append(layer)
        name = sources[0]
    return chain[::-1]


def chain_steps(chain: list[dict[str, Any]], weights: dict[str, dict[str, Array]]) -> list[Step]:
    """Compile a chain of Keras layers into numpy steps."""
    layers = [layer for layer in chain if layer["class_name"] not in PASS_THROUGH]
    steps: list[Step] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if layer["class_name"] == "Embedding" and following and following["class_name"] in RECURRENT:
            # Fold the recurrent layer's input projection into the embedding table: one lookup
            # replaces a lookup and a matrix product per request.
            steps.append(embedded_recurrent_step(layer, following, weights))
            index += 2
        else:
            steps.append(build_step(layer, weights.get(layer["name"], {})))
            index += 1
    return steps


def build_step(layer: dict[str, Any], weights: dict[str, Array]) -> Step:
    """Return the numpy function of one Keras layer."""
    class_name, config = layer["class_name"], layer["config"]
    arrays = _arrays(weights)
    if class_name == "Embedding":
        table = arrays[0]
        return lambda token_ids, mask: (table[token_ids], mask)
    if class_name == "Dense":
        return dense_step(arrays, activation(config, "activation"), config.get("use_bias", True))
    if class_name in RECURRENT:
        runners, recurrent_config = recurrent_runners(layer, arrays)
        return recurrent_step(runners, [runner.project for runner in runners], recurrent_config)
    raise UnsupportedModelError(
        f"layer {layer['name']!r} ({class_name}) is not supported by the numpy engine; "
        "train the model with `chatbot train`"
    )


def embedded_recurrent_step(embedding: dict[str, Any], layer: dict[str, Any], weights: dict) -> Step:
    """Return an LSTM (or Bidirectional LSTM) step that reads token ids through projected tables."""
    if not embedding["config"].get("mask_zero"):
        raise UnsupportedModelError("the numpy engine expects Embedding(mask_zero=True) before an LSTM")
    table = _arrays(weights[embedding["name"]])[0]
    runners, config = recurrent_runners(layer, _arrays(weights[layer["name"]]))
    tables = [runner.project(table) for runner in runners]
    return recurrent_step(runners, [table.__getitem__ for table in tables], config)


def recurrent_step(
    runners: list[LSTMRunner], projections: list[Callable[[Array], Array]], config: dict
) -> Step:
    """Run one LSTM, or a forward and a backward one, and concatenate their outputs."""
    return_sequences = bool(config.get("return_sequences"))
    directions = [False, True] if len(runners) == 2 else [bool(config.get("go_backwards"))]

    def step(values: Array, mask: Array) -> tuple[Array, Array]:
        results = [
            runner.run(project(values), mask, backwards, return_sequences)
            for runner, project, backwards in zip(runners, projections, directions, strict=True)
        ]
        if len(results) == 1:
            outputs, last = results[0]
            return (outputs, mask) if return_sequences else (last, mask[:, :1])
        if return_sequences:
            return np.concatenate([outputs for outputs, _ in results], axis=-1), mask
        return np.concatenate([last for _, last in results], axis=-1), mask[:, :1]

    return step


def recurrent_runners(layer: dict[str, Any], arrays: list[Array]) -> tuple[list[LSTMRunner], dict[str, Any]]:
    """Return the LSTM directions of an LSTM or Bidirectional(LSTM) layer, and the LSTM's config."""
    config = layer["config"]
    if layer["class_name"] == "LSTM":
        return [LSTMRunner(arrays, config)], config
    inner = config["layer"]
    if inner["class_name"] != "LSTM" or config.get("merge_mode", "concat") != "concat":
        raise UnsupportedModelError("only Bidirectional(LSTM) with merge_mode='concat' is supported")
    half = len(arrays) // 2
    return [LSTMRunner(arrays[:half], inner["config"]), LSTMRunner(arrays[half:], inner["config"])], inner[
        "config"
    ]


class LSTMRunner:
    """One direction of a Keras LSTM, in its gate order (input, forget, cell, output)."""

    def __init__(self, arrays: list[Array], config: dict[str, Any]) -> None:
        if config.get("stateful") or config.get("return_state"):
            raise UnsupportedModelError(
                "stateful LSTMs and return_state are not supported by the numpy engine"
            )
        kernel, recurrent_kernel = arrays[0], arrays[1]
        self.units = units = recurrent_kernel.shape[0]
        bias = arrays[2] if config.get("use_bias", True) else np.zeros(4 * units, np.float32)
        self.act = activation(config, "activation")
        self.recurrent_act = activation(config, "recurrent_activation")
        # With Keras' default activations, sigmoid(x) = 0.5 + 0.5 * tanh(x / 2): halving the gate
        # columns lets one tanh call compute all four gates.
        self.fused = config.get("activation") == "tanh" and config.get("recurrent_activation") == "sigmoid"
        scale = np.full(4 * units, 0.5 if self.fused else 1.0, dtype=np.float32)
        scale[2 * units : 3 * units] = 1.0
        self.kernel, self.recurrent_kernel, self.bias = kernel * scale, recurrent_kernel * scale, bias * scale

    def project(self, values: Array) -> Array:
        """Apply the input kernel and bias: to every time step at once, outside the recurrence."""
        return values @ self.kernel + self.bias

    def run(self, inputs: Array, mask: Array, backwards: bool, sequences: bool) -> tuple[Array | None, Array]:
        """Return every step's output (if ``sequences``) and the last one; masked steps keep the state."""
        batch, length = inputs.shape[0], inputs.shape[1]
        units = self.units
        hidden = np.zeros((batch, units), dtype=np.float32)
        cell = np.zeros((batch, units), dtype=np.float32)
        outputs = np.empty((batch, length, units), dtype=np.float32) if sequences else None
        full = mask.all(axis=0).tolist()
        steps = range(length - 1, -1, -1) if backwards else range(length)
        for position, t in enumerate(steps):
            if position == 0:  # the state is still zero: skip the products with it
                gates, candidate = self._gates(inputs[:, t])
                new_cell = gates[:, :units] * candidate
            else:
                gates, candidate = self._gates(inputs[:, t] + hidden @ self.recurrent_kernel)
                new_cell = gates[:, units : 2 * units] * cell + gates[:, :units] * candidate
            new_hidden = gates[:, 3 * units :] * self.act(new_cell)
            if full[t]:
                cell, hidden = new_cell, new_hidden
            else:
                step_mask = mask[:, t : t + 1]
                cell = np.where(step_mask, new_cell, cell)
                hidden = np.where(step_mask, new_hidden, hidden)
            if outputs is not None:
                outputs[:, t] = hidden
        return outputs, hidden

    def _gates(self, z: Array) -> tuple[Array, Array]:
        """Return the gate activations (input, forget, -, output columns) and the cell candidate."""
        units = self.units
        if self.fused:
            activated = np.tanh(z)
            return activated * 0.5 + 0.5, activated[:, 2 * units : 3 * units]
        return self.recurrent_act(z), self.act(z[:, 2 * units : 3 * units])


def dense_step(arrays: list[Array], act: Callable[[Array], Array], use_bias: bool) -> Step:
    """Apply ``act(x @ kernel + bias)``."""
    kernel = arrays[0]
    bias = arrays[1] if use_bias else np.zeros(kernel.shape[1], dtype=np.float32)
    return lambda values, mask: (act(values @ kernel + bias), mask)


def activation(config: dict[str, Any], key: str) -> Callable[[Array], Array]:
    """Look up a layer's activation by name, failing clearly on one the engine lacks."""
    name = config.get(key, "linear")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedModelError(f"activation {name!r} is not supported by the numpy engine")
    return ACTIVATIONS[name]


def _arrays(weights: dict[str, Array]) -> list[Array]:
    return [np.asarray(values, dtype=np.float32) for values in weights.values()]


def _score(pair: tuple[str, float]) -> float:
    return pair[1]


def _softmax(x: Array) -> Array:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
