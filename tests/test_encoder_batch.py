"""The batcher: each caller gets its own message's vector, whether it led a batch or waited."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from chatbot.classifier.encoder import shared_encoder
from chatbot.classifier.encoder_batch import MessageBatcher

TEXTS = [f"where is my order number {number}" for number in range(40)] + ["hallo", "¿dónde está?", ""]


def test_a_message_alone_gets_its_vector():
    batcher = MessageBatcher(shared_encoder())
    np.testing.assert_allclose(batcher.encode("hello"), shared_encoder().encode(["hello"])[0], atol=1e-6)
    assert (batcher.batches, batcher.messages) == (1, 1)


def test_concurrent_callers_each_get_their_own_vector():
    encoder = shared_encoder()
    batcher = MessageBatcher(encoder, max_batch=8)
    vectors: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(TEXTS))

    def ask(index: int) -> None:
        start.wait()
        vectors[index] = batcher.encode(TEXTS[index])

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(len(TEXTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(vectors) == list(range(len(TEXTS)))
    np.testing.assert_allclose(
        np.vstack([vectors[index] for index in range(len(TEXTS))]), encoder.encode(TEXTS), atol=2e-6
    )
    assert batcher.messages == len(TEXTS) and batcher.batches <= len(TEXTS)


class FailingEncoder:
    def encode(self, texts):
        raise RuntimeError("the encoder failed")


def test_an_encoder_error_reaches_the_caller_and_the_batcher_recovers():
    batcher = MessageBatcher(FailingEncoder())
    with pytest.raises(RuntimeError, match="the encoder failed"):
        batcher.encode("hello")
    batcher.encoder = shared_encoder()
    assert batcher.encode("hello").shape == (512,)


def test_a_leader_interrupted_before_it_encodes_still_serves_the_batch(monkeypatch):
    from chatbot.classifier import encoder_batch

    batcher = MessageBatcher(shared_encoder())

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt  # a greenlet killed while it yields, or a signal

    monkeypatch.setattr(encoder_batch.time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batcher.encode("hello")
    assert (batcher.messages, batcher._pending, batcher._leading) == (1, [], False)
    monkeypatch.undo()
    assert batcher.encode("hello again").shape == (512,)  # a new leader, not a wait for the old one
