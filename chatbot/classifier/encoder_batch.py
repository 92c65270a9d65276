"""Encode the messages of requests that arrive together in one call, where a worker serves many.

A batch streams each weight matrix once for all its messages, so under load a batch of eight
costs far less than eight single messages (``bench/encoder_cost.py`` prints both). Under gevent
(gunicorn's worker class here) a request runs until it waits: the first request to ask becomes
the leader, lets the other ready requests run up to their own ask (``time.sleep(0)``, which
gevent's patch makes a switch), then encodes everything asked so far and hands each its row.
A message alone pays one switch. Under threads the same code batches the requests that arrive
while the leader works.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from chatbot.classifier.encoder import SentenceEncoder

MAX_BATCH = 32  # beyond this a batch gains little per message and holds the first message longer


@dataclass
class _Request:
    """One message waiting for its vector."""

    text: str
    done: threading.Event = field(default_factory=threading.Event)
    vector: np.ndarray | None = None
    error: BaseException | None = None


class MessageBatcher:
    """Encode one message at a time for callers, in batches for the encoder."""

    def __init__(self, encoder: SentenceEncoder, max_batch: int = MAX_BATCH) -> None:
        self.encoder = encoder
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._leading = False
        self.batches = 0  # calls to the encoder, for benchmarks and tests
        self.messages = 0

    def encode(self, text: str) -> np.ndarray:
        """Return the message's vector, (DIMENSION,) float32."""
        request = _Request(text)
        with self._lock:
            self._pending.append(request)
            lead = not self._leading
            self._leading = True
        if lead:
            try:
                time.sleep(0)  # let the other ready requests add their messages
            finally:  # even when this request is interrupted there, the others' wait must end
                self._encode_pending()
        else:
            request.done.wait()
        if request.error is not None:
            raise request.error
        return request.vector  # set before done, whenever error is not

    def _encode_pending(self) -> None:
        """Encode what is pending, batch by batch, until nothing is; then stop leading."""
        while True:
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not batch:
                    self._leading = False
                    return
            try:
                vectors = self.encoder.encode([request.text for request in batch])
            except BaseException as exc:  # every waiter must wake, and each raises it itself
                for request in batch:
                    request.error = exc
                    request.done.set()
                continue
            self.batches += 1
            self.messages += len(batch)
            for request, vector in zip(batch, vectors, strict=True):
                request.vector = vector
                request.done.set()
