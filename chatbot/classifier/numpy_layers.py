"""Run a bundle's Keras model in numpy, without TensorFlow: the layers the trainer builds.

``numpy_forward`` reads the Keras architecture and weights from the bundle and compiles the layers
the trainer builds: Embedding with masking, LSTM, Bidirectional(LSTM), Dense, and the layers that do
nothing at inference (Dropout and the like). An ensemble (chains of such layers joined by an
Average layer) is supported too, and so is the model with a sentence vector beside the LSTM: the
LSTM's chain and the vector input joined by a Concatenate layer, then the Dense softmax, averaged
or not with a Dense softmax on the vector alone. Anything
else fails at load with UnsupportedModelError rather than giving wrong answers.

Every value carries a leading *member* axis, so the members of an ensemble run side by side: each
layer is one numpy call for all of them, and an LSTM time step is one batched matrix product for
every direction of every member (a 4-member BiLSTM ensemble makes one product per step, not 8).
Per-request cost is mostly numpy's per-call overhead, so the number of calls is what counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.classifier.bundle import Bundle
from chatbot.errors import UnsupportedModelError

Array = np.ndarray
Forward = Callable[[Array, Array | None], Array]  # padded token ids, sentence vectors -> probabilities
LayerConfig = dict[str, Any]  # one layer of a Keras architecture (class_name, name, config, ...)

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),  # Keras 3 definition
    "softmax": lambda x: softmax(x),
}
PASS_THROUGH = frozenset({"InputLayer", "NotEqual", "Dropout", "SpatialDropout1D", "GaussianNoise"})
TOKEN_INPUT = "token_ids"
VECTOR_INPUT = "sentence_vector"
RECURRENT = frozenset({"LSTM", "Bidirectional"})
KNOWN = frozenset(
    {"Embedding", "Dense", "Rescaling", "Concatenate", "Average", *RECURRENT}
)  # besides PASS_THROUGH


@dataclass(frozen=True, eq=False)
class Embedding:
    """Look token ids up in each member's table: (batch, length) -> (members, batch, length, dim)."""

    tables: Array  # (members, vocabulary, dim)

    def __call__(self, values: Array, mask: Array) -> tuple[Array, Array]:
        """Return the word vectors of every member, and the mask unchanged."""
        return self.tables[:, values], mask


@dataclass(frozen=True, eq=False)
class Dense:
    """Apply ``activation(values @ kernel + bias)`` with each member's kernel."""

    kernels: Array  # (members, inputs, units)
    biases: Array  # (members, units)
    activation: Callable[[Array], Array]

    def __call__(self, values: Array, mask: Array) -> tuple[Array, Array]:
        """Return the layer's output for (members, batch, [length,] inputs) values, and the mask."""
        members, inputs, units = self.kernels.shape
        time_axis = (1,) * (values.ndim - 3)  # when the input is a sequence
        kernels = self.kernels.reshape(members, *time_axis, inputs, units)
        biases = self.biases.reshape(members, 1, *time_axis, units)
        return self.activation(values @ kernels + biases), mask


@dataclass(frozen=True, eq=False)
class Rescaling:
    """Multiply the values by a constant and add another (Keras' Rescaling layer)."""

    scale: float
    offset: float

    def __call__(self, values: Array, mask: Array) -> tuple[Array, Array]:
        """Return the rescaled values, and the mask unchanged."""
        return values * np.float32(self.scale) + np.float32(self.offset), mask


@dataclass(frozen=True, eq=False)
class LSTM:
    """An LSTM or Bidirectional(LSTM) layer of every member, all of its directions run in one loop.

    Weights are stacked over *directions*: each member's own directions in Keras' order (forward,
    then backward), member after member. Gate columns keep Keras' order: input, forget, cell, output.
    """

    recurrent_kernels: Array  # (directions, units, 4 * units)
    backwards: Array  # (directions,) bool: which directions read the text from its end
    # Token id -> input projection (embedding folded in), or None when the input is a sequence.
    input_tables: Array | None  # (directions, vocabulary, 4 * units)
    input_kernels: Array | None  # (directions, inputs, 4 * units): used when input_tables is None
    biases: Array  # (directions, 4 * units); already added to input_tables
    directions_per_member: int  # 2 for Bidirectional, 1 for LSTM
    return_sequences: bool
    activation: Callable[[Array], Array]
    recurrent_activation: Callable[[Array], Array]
    # With Keras' default activations, sigmoid(x) = 0.5 + 0.5 * tanh(x / 2): the gate columns are
    # stored halved so that one tanh call computes all four gates.
    one_tanh_for_all_gates: bool

    def __call__(self, values: Array, mask: Array) -> tuple[Array, Array]:
        """Run the layer: every step's output, or the last one, of each member's directions joined."""
        outputs = self.run_recurrence(self.project_inputs(values), mask)
        members = outputs.shape[0] // self.directions_per_member
        # (members * directions, batch, [length,] units) -> (members, batch, [length,] directions * units)
        by_member = outputs.reshape(members, self.directions_per_member, *outputs.shape[1:])
        joined = np.moveaxis(by_member, 1, -2).reshape(*by_member.shape[:1], *by_member.shape[2:-1], -1)
        return (joined, mask) if self.return_sequences else (joined, mask[:, :1])

    def project_inputs(self, values: Array) -> Array:
        """Return (directions, batch, length, 4 * units): the input kernel and bias applied to every
        time step at once, outside the recurrence."""
        if self.input_tables is not None:  # values are token ids
            return self.input_tables[:, values]
        # values: (members, batch, length, inputs); each member's input feeds all of its directions.
        members = values.shape[0]
        kernels = self.input_kernels.reshape(
            members, self.directions_per_member, 1, *self.input_kernels.shape[1:]
        )
        biases = self.biases.reshape(members, self.directions_per_member, 1, 1, -1)
        projected = values[:, None] @ kernels + biases
        return projected.reshape(-1, *projected.shape[2:])

    def run_recurrence(self, inputs: Array, mask: Array) -> Array:
        """Return each direction's outputs, (directions, batch, [length,] units), for projected inputs.

        Masked steps keep the state. Backward directions read the time steps in reverse; their
        sequences are put back in text order.
        """
        directions, batch, length = inputs.shape[:3]
        units = self.recurrent_kernels.shape[1]
        # Time-major, each direction in its reading order: step_inputs[step, direction].
        order = np.where(self.backwards[:, None], np.arange(length)[::-1], np.arange(length))
        step_inputs = inputs.transpose(2, 0, 1, 3)[order.T, np.arange(directions)]
        step_masks = mask[:, order].transpose(2, 1, 0)[..., None]  # (length, directions, batch, 1)
        every_row_counts = step_masks.all(axis=(1, 2, 3)).tolist()
        # Every array the loop writes is allocated here once: a step only calls numpy ufuncs.
        hidden, cell, new_hidden, new_cell, scratch = np.zeros((5, directions, batch, units), np.float32)
        preactivation, gates = np.empty((2, directions, batch, 4 * units), np.float32)
        input_gate, forget_gate, output_gate = (gates[..., i * units : (i + 1) * units] for i in (0, 1, 3))
        outputs = np.empty((length, directions, batch, units), np.float32) if self.return_sequences else None
        for step in range(length):
            if step == 0:  # the state is still zero: skip the products with it
                np.copyto(preactivation, step_inputs[0])
            else:
                np.matmul(hidden, self.recurrent_kernels, out=preactivation)
                preactivation += step_inputs[step]
            candidate = self.activate_gates(preactivation, out=gates)
            np.multiply(input_gate, candidate, out=new_cell)
            if step > 0:
                np.multiply(forget_gate, cell, out=scratch)
                new_cell += scratch
            if self.one_tanh_for_all_gates:
                np.multiply(output_gate, np.tanh(new_cell, out=scratch), out=new_hidden)
            else:
                np.multiply(output_gate, self.activation(new_cell), out=new_hidden)
            if every_row_counts[step]:
                cell, new_cell, hidden, new_hidden = new_cell, cell, new_hidden, hidden
            else:
                np.copyto(cell, new_cell, where=step_masks[step])
                np.copyto(hidden, new_hidden, where=step_masks[step])
            if outputs is not None:
                outputs[step] = hidden
        if outputs is None:
            return hidden
        # Reversing the steps is its own inverse: the same order puts them back in text order.
        in_text_order = outputs[order.T, np.arange(directions)]
        return in_text_order.transpose(1, 2, 0, 3)

    def activate_gates(self, preactivation: Array, *, out: Array) -> Array:
        """Write the gate activations (input, forget, -, output columns) to ``out`` and return the
        cell candidate (the preactivation may be overwritten)."""
        units = self.recurrent_kernels.shape[1]
        if self.one_tanh_for_all_gates:
            activated = np.tanh(preactivation, out=preactivation)
            np.multiply(activated, 0.5, out=out)
            out += 0.5
            return activated[..., 2 * units : 3 * units]
        np.copyto(out, self.recurrent_activation(preactivation))
        return self.activation(preactivation[..., 2 * units : 3 * units])


Layer = Embedding | Dense | LSTM | Rescaling


def numpy_forward(bundle: Bundle) -> Forward:
    """Compile the bundle's model into one numpy function: a chain of layers, or an ensemble of
    chains whose probabilities an Average layer joins (its members stacked, to run side by side)."""
    if any(layer["class_name"] == "Concatenate" for layer in bundle.layers()):
        return joined_forward(bundle)
    chains = [compile_chain(chain, bundle.weights) for chain in model_chains(bundle.layers())]
    stacked_chains = stack_members(chains)

    def forward(token_ids: Array, sentence_vectors: Array | None = None) -> Array:
        token_ids = trim_padding(token_ids)
        outputs = [run_layers(layers, token_ids) for layers in stacked_chains]
        probabilities = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        return probabilities[0] if len(probabilities) == 1 else np.mean(probabilities, axis=0)

    return forward


def trim_padding(token_ids: Array) -> Array:
    """Drop the columns that are padding in every row: padding is at the end, and changes nothing."""
    used = np.flatnonzero(token_ids.any(axis=0))
    return token_ids[:, : used[-1] + 1 if used.size else 0]


def joined_forward(bundle: Bundle) -> Forward:
    """Compile a model whose LSTM output and sentence vector a Concatenate layer joins before the
    layers that end in the softmax: the LSTM's chain, the vector's chain and the head each run as
    chains of numpy layers."""
    layers = bundle.layers()
    for layer in layers:
        if layer["class_name"] not in PASS_THROUGH | KNOWN:
            raise unsupported(layer)
    by_name = {layer["name"]: layer for layer in layers}
    joins = [layer for layer in layers if layer["class_name"] == "Concatenate"]
    if len(joins) != 1:
        raise UnsupportedModelError("the numpy engine runs models with one Concatenate layer")
    join = joins[0]
    branches = []  # (input name, compiled chain), in the order the Concatenate layer joins them
    for name in inbound_names(join):
        chain = chain_to(name, by_name)
        source = inbound_names(chain[0])[0] if chain else name
        if source not in (TOKEN_INPUT, VECTOR_INPUT):
            raise UnsupportedModelError(f"the Concatenate layer joins an unknown input {source!r}")
        branches.append((source, compile_chain(chain, bundle.weights)))
    outputs = bundle.architecture["config"].get("output_layers") or [layers[-1]["name"]]
    output = outputs[0][0] if isinstance(outputs[0], list) else outputs[0]  # one output: not nested
    # The softmax after the join, or the average of it and a softmax on the sentence vector alone.
    head_names = inbound_names(by_name[output]) if by_name[output]["class_name"] == "Average" else [output]
    heads = []  # (what the chain reads: the joined values or the sentence vector, compiled chain)
    for name in head_names:
        chain = chain_to(name, by_name, stop=join["name"])
        source = inbound_names(chain[0])[0] if chain else name
        if source not in (join["name"], VECTOR_INPUT):
            raise UnsupportedModelError(f"the model's output reads an unknown input {source!r}")
        heads.append((source, compile_chain(chain, bundle.weights)))

    def forward(token_ids: Array, sentence_vectors: Array | None = None) -> Array:
        if sentence_vectors is None:
            raise ValueError("this model needs the sentence vectors of its texts")
        inputs = {TOKEN_INPUT: trim_padding(token_ids), VECTOR_INPUT: sentence_vectors[None]}
        inputs[join["name"]] = np.concatenate(
            [run_layers(chain, inputs[source]) for source, chain in branches], axis=-1
        )
        probabilities = []
        for source, chain in heads:
            values, mask = inputs[source], np.ones(inputs[source].shape[1:2], dtype=bool)
            for layer in chain:
                values, mask = layer(values, mask)
            probabilities.append(values[0])
        return probabilities[0] if len(probabilities) == 1 else np.mean(probabilities, axis=0)

    return forward


def run_layers(layers: list[Layer], inputs: Array) -> Array:
    """Run compiled layers over padded token ids (or vectors, for a chain with no Embedding):
    (members, batch, outputs)."""
    values, mask = inputs, inputs != 0
    for layer in layers:
        values, mask = layer(values, mask)
    return values


def model_chains(layers: list[LayerConfig]) -> list[list[LayerConfig]]:
    """Split a model into chains from its input to its output: one, or an ensemble's members."""
    outputs = [layer for layer in layers if layer["class_name"] == "Average"]
    if not outputs:
        return [layers]
    if len(outputs) == 1 and outputs[0] is layers[-1]:
        by_name = {layer["name"]: layer for layer in layers}
        return [chain_to(name, by_name) for name in inbound_names(outputs[0])]
    raise UnsupportedModelError("the numpy engine runs an Average layer only as the model's output")


def inbound_names(layer: LayerConfig) -> list[str]:
    """Return the names of the layers whose outputs a layer takes as its data input."""
    nodes = layer.get("inbound_nodes") or [{"args": []}]
    first = nodes[0]["args"][0] if nodes[0]["args"] else []
    tensors = first if isinstance(first, list) else [first]
    return [tensor["config"]["keras_history"][0] for tensor in tensors]


def chain_to(name: str, by_name: dict[str, LayerConfig], stop: str | None = None) -> list[LayerConfig]:
    """Return the layers from the model's input (or from after ``stop``) to the named layer, each
    feeding the next."""
    chain = []
    while name in by_name and name != stop and by_name[name]["class_name"] != "InputLayer":
        layer = by_name[name]
        sources = inbound_names(layer)
        if len(sources) != 1:
            raise UnsupportedModelError(f"layer {name!r} has {len(sources)} inputs; the engine runs chains")
        chain.append(layer)
        name = sources[0]
    return chain[::-1]


def stack_members(chains: list[list[Layer]]) -> list[list[Layer]]:
    """Join the chains into one whose arrays hold every member, when all have the same shapes;
    otherwise run them one after another."""
    shapes = {tuple(layer_shape(layer) for layer in chain) for chain in chains}
    if len(chains) == 1 or len(shapes) > 1:
        return chains
    return [[join_layers(layers) for layers in zip(*chains, strict=True)]]


def layer_shape(layer: Layer) -> tuple[Any, ...]:
    """Return what must match for two members' layers to be joined: all but the arrays' first axis."""
    values = (getattr(layer, field.name) for field in dataclasses.fields(layer))
    return (type(layer), *(value.shape[1:] if isinstance(value, np.ndarray) else value for value in values))


def join_layers(layers: tuple[Layer, ...]) -> Layer:
    """Concatenate the members' arrays along their first (member or direction) axis."""
    arrays = {
        field.name: np.concatenate([getattr(layer, field.name) for layer in layers])
        for field in dataclasses.fields(layers[0])
        if isinstance(getattr(layers[0], field.name), np.ndarray)
    }
    return dataclasses.replace(layers[0], **arrays)


def compile_chain(chain: list[LayerConfig], weights: dict[str, dict[str, Array]]) -> list[Layer]:
    """Compile a chain of Keras layers into numpy layers of one member."""
    layers = [layer for layer in chain if layer["class_name"] not in PASS_THROUGH]
    compiled: list[Layer] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if layer["class_name"] == "Embedding" and following and following["class_name"] in RECURRENT:
            # Fold the recurrent layer's input projection into the embedding table: one lookup
            # replaces a lookup and a matrix product per request.
            compiled.append(compile_embedded_lstm(layer, following, weights))
            index += 2
        else:
            compiled.append(compile_layer(layer, weights.get(layer["name"], {})))
            index += 1
    return compiled


def compile_layer(layer: LayerConfig, weights: dict[str, Array]) -> Layer:
    """Return the numpy version of one Keras layer."""
    class_name, config = layer["class_name"], layer["config"]
    arrays = float32_arrays(weights)
    if class_name == "Embedding":
        return Embedding(arrays[0][None])
    if class_name == "Dense":
        kernel = arrays[0]
        bias = arrays[1] if config.get("use_bias", True) else np.zeros(kernel.shape[1], dtype=np.float32)
        return Dense(kernel[None], bias[None], activation(config, "activation"))
    if class_name in RECURRENT:
        return compile_lstm(layer, arrays)
    if class_name == "Rescaling" and all(
        isinstance(config.get(key), int | float) for key in ("scale", "offset")
    ):
        return Rescaling(float(config["scale"]), float(config["offset"]))
    raise unsupported(layer)


def unsupported(layer: LayerConfig) -> UnsupportedModelError:
    """Return the error for a layer the numpy engine does not run."""
    return UnsupportedModelError(
        f"layer {layer['name']!r} ({layer['class_name']}) is not supported by the numpy engine; "
        "train the model with `chatbot train`"
    )


def compile_embedded_lstm(embedding: LayerConfig, layer: LayerConfig, weights: dict) -> LSTM:
    """Return an LSTM (or Bidirectional LSTM) that reads token ids through projected tables."""
    if not embedding["config"].get("mask_zero"):
        raise UnsupportedModelError("the numpy engine expects Embedding(mask_zero=True) before an LSTM")
    table = float32_arrays(weights[embedding["name"]])[0]
    lstm = compile_lstm(layer, float32_arrays(weights[layer["name"]]))
    tables = [table @ kernel + bias for kernel, bias in zip(lstm.input_kernels, lstm.biases, strict=True)]
    return dataclasses.replace(lstm, input_tables=np.stack(tables), input_kernels=None)


def compile_lstm(layer: LayerConfig, arrays: list[Array]) -> LSTM:
    """Return an LSTM or Bidirectional(LSTM) layer from its Keras config and weights."""
    config = layer["config"]
    if layer["class_name"] == "LSTM":
        direction_arrays, backwards = [arrays], [bool(config.get("go_backwards"))]
    else:
        inner = config["layer"]
        if inner["class_name"] != "LSTM" or config.get("merge_mode", "concat") != "concat":
            raise UnsupportedModelError("only Bidirectional(LSTM) with merge_mode='concat' is supported")
        config = inner["config"]
        half = len(arrays) // 2
        direction_arrays, backwards = [arrays[:half], arrays[half:]], [False, True]
    if config.get("stateful") or config.get("return_state"):
        raise UnsupportedModelError("stateful LSTMs and return_state are not supported by the numpy engine")
    units = direction_arrays[0][1].shape[0]
    one_tanh = config.get("activation") == "tanh" and config.get("recurrent_activation") == "sigmoid"
    gate_scale = np.full(4 * units, 0.5 if one_tanh else 1.0, dtype=np.float32)
    gate_scale[2 * units : 3 * units] = 1.0  # the cell candidate's own tanh is not halved
    use_bias = config.get("use_bias", True)
    kernels, recurrent_kernels, biases = [], [], []
    for kernel, recurrent_kernel, *bias in direction_arrays:
        kernels.append(kernel * gate_scale)
        recurrent_kernels.append(recurrent_kernel * gate_scale)
        biases.append((bias[0] if use_bias else np.zeros(4 * units, np.float32)) * gate_scale)
    return LSTM(
        recurrent_kernels=np.stack(recurrent_kernels),
        backwards=np.array(backwards),
        input_tables=None,
        input_kernels=np.stack(kernels),
        biases=np.stack(biases),
        directions_per_member=len(direction_arrays),
        return_sequences=bool(config.get("return_sequences")),
        activation=activation(config, "activation"),
        recurrent_activation=activation(config, "recurrent_activation"),
        one_tanh_for_all_gates=one_tanh,
    )


def activation(config: dict[str, Any], key: str) -> Callable[[Array], Array]:
    """Look up a layer's activation by name, failing clearly on one the engine lacks."""
    name = config.get(key, "linear")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnsupportedModelError(f"activation {name!r} is not supported by the numpy engine")
    return ACTIVATIONS[name]


def float32_arrays(weights: dict[str, Array]) -> list[Array]:
    """Return a layer's weights as float32 arrays, in Keras' order."""
    return [np.asarray(values, dtype=np.float32) for values in weights.values()]


def softmax(x: Array) -> Array:
    """Return the softmax over the last axis, shifted so that exp never overflows."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
