"""Map tokens to integer ids with a fixed, sorted vocabulary saved alongside the model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PAD_ID = 0  # masked out by the embedding layer
UNK_ID = 1  # every word the training data did not contain
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"


@dataclass(frozen=True)
class Vocabulary:
    """Sorted list of known tokens; a token's id is its position, after <pad> and <unk>."""

    tokens: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD_TOKEN, UNK_TOKEN):
            raise ValueError(f"vocabulary must start with {PAD_TOKEN!r} and {UNK_TOKEN!r}")
        object.__setattr__(self, "_index", {token: i for i, token in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_length: int) -> np.ndarray:
        """Return the ids of the first ``max_length`` tokens, padded with PAD_ID at the end."""
        ids = np.full(max_length, PAD_ID, dtype=np.int32)
        for position, token in enumerate(tokens[:max_length]):
            ids[position] = self._index.get(token, UNK_ID)
        return ids

    def encode_batch(self, token_lists: Sequence[Sequence[str]], max_length: int) -> np.ndarray:
        """Encode several token lists into one (batch, max_length) int32 array."""
        batch = np.full((len(token_lists), max_length), PAD_ID, dtype=np.int32)
        for row, tokens in enumerate(token_lists):
            batch[row] = self.encode(tokens, max_length)
        return batch

    def count_known(self, tokens: Iterable[str]) -> int:
        """Count the tokens the vocabulary knows as words (not the padding or unknown marker)."""
        return sum(self._index.get(token, UNK_ID) > UNK_ID for token in tokens)


def build_vocabulary(token_lists: Iterable[Iterable[str]]) -> Vocabulary:
    """Build a vocabulary from training tokens in sorted order, so ids never depend on hashing."""
    words = sorted({token for tokens in token_lists for token in tokens} - {PAD_TOKEN, UNK_TOKEN})
    return Vocabulary((PAD_TOKEN, UNK_TOKEN, *words))
