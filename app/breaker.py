"""The one circuit breaker: stop calling something that keeps failing, then try it again alone.

Shared Redis (app/shared_redis.py) keeps one for its pool; the webhook client (app/actions.py)
keeps one per URL. After ``failures_to_open`` failures in a row the circuit opens: calls are
refused at once for ``retry_after`` seconds, then one caller may try; its success closes the
circuit, its failure holds calls back for another period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    """Say whether a call may go out now, and learn from each call whether the other side is up."""

    retry_after: float  # seconds an open circuit refuses calls before one trial call
    failures_to_open: int = 1  # failures in a row that open the circuit
    clock: Callable[[], float] = time.monotonic
    on_open: Callable[[Exception], None] | None = None  # told once, when the circuit opens
    on_close: Callable[[], None] | None = None  # told once, when a success closes an open circuit
    _failures: int = 0
    _next_try: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def down(self) -> bool:
        """Say whether the circuit is open: the last calls failed and none succeeded since."""
        return self._failures >= self.failures_to_open

    def waiting(self) -> bool:
        """Say whether calls are held back now, without claiming the next try."""
        return self.down and self.clock() < self._next_try

    def allow(self) -> bool:
        """Say whether a call may go out; once the wait is over, only one caller may."""
        if not self.down:
            return True
        with self._lock:
            now = self.clock()
            if now < self._next_try:
                return False
            self._next_try = now + self.retry_after  # this caller tries; the others wait for it
            return True

    def failed(self, error: Exception) -> None:
        """Count a failure; hold calls back for ``retry_after`` seconds once the circuit is open."""
        with self._lock:
            self._next_try = self.clock() + self.retry_after
            self._failures += 1
            opened = self._failures == self.failures_to_open
        if opened and self.on_open is not None:
            self.on_open(error)

    def succeeded(self) -> None:
        """Close the circuit and forget earlier failures."""
        if not self._failures:
            return
        with self._lock:
            was_open, self._failures = self.down, 0
        if was_open and self.on_close is not None:
            self.on_close()
