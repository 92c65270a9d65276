"""Training: splits, word dropout, and a reproducible model that knows its own patterns."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.config import ModelConfig
from chatbot.engine import Engine
from chatbot.vocab import UNK_ID


def test_stratified_split_holds_out_every_label() -> None:
    from chatbot.train import stratified_split

    labels = np.array([0] * 10 + [1] * 5 + [2] * 20)
    train_rows, validation_rows = stratified_split(labels, 0.2, seed=1)
    assert sorted(train_rows + validation_rows) == list(range(len(labels)))
    assert np.bincount(labels[validation_rows]).tolist() == [2, 1, 4]
    assert stratified_split(labels, 0.2, seed=1) == (train_rows, validation_rows)


def test_can_split_needs_enough_patterns_per_label() -> None:
    from chatbot.train import can_split

    config = ModelConfig(min_patterns_for_validation=5)
    assert can_split(np.array([0] * 5 + [1] * 6), config)
    assert not can_split(np.array([0] * 4 + [1] * 6), config)
    assert not can_split(np.array([0] * 9 + [1] * 9), ModelConfig(validation_split=0))


def test_word_dropout_replaces_only_known_words() -> None:
    from chatbot.train import WordDropoutBatches

    x = np.tile(np.array([[5, 6, 7, 1, 0, 0]], dtype=np.int32), (400, 1))
    batches = WordDropoutBatches(x, np.zeros(400, dtype=np.int32), batch_size=400, rate=0.25, seed=0)
    dropped, _ = batches[0]
    assert (dropped[:, 4:] == 0).all() and (dropped[:, 3] == UNK_ID).all()
    share = (dropped[:, :3] == UNK_ID).mean()
    assert 0.2 < share < 0.3
    assert (x[:, :3] == [5, 6, 7]).all()  # the source array is untouched


@pytest.mark.slow
def test_tiny_bot_knows_every_pattern(tiny_bundle, tiny_intents) -> None:
    engine = Engine.from_bundle(tiny_bundle)
    for intent in tiny_intents:
        for pattern in intent.patterns:
            assert engine.rank(pattern).top[0] == intent.tag, pattern
    assert tiny_bundle.metrics["train_accuracy"] == 1.0
    assert tiny_bundle.config.max_length == 4  # the longest pattern, within the configured bound


@pytest.mark.slow
def test_training_is_reproducible(tiny_bundle, tiny_intents) -> None:
    from chatbot.train import train
    from tests.conftest import TINY_CONFIG

    assert train(tiny_intents, TINY_CONFIG).fingerprint == tiny_bundle.fingerprint
