"""Keep each conversation's context between messages, behind a small store interface.

The in-memory store lives in one process: with several gunicorn workers, each has its own, so a
deployment with more than one worker needs a shared store behind the same interface.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SessionState:
    """What the bot remembers of one conversation."""

    context: str | None = None


class SessionStore(Protocol):
    """Get, save and clear conversation state by session id."""

    def get(self, session_id: str) -> SessionState:
        """Return the session's state, or a fresh one if unknown or expired."""
        ...

    def save(self, session_id: str, state: SessionState) -> None:
        """Store the session's state and restart its time to live."""
        ...

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        ...


class MemorySessionStore:
    """Sessions in this process's memory, expiring after ``ttl`` seconds without a message."""

    def __init__(
        self, ttl: float, max_sessions: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions  # the oldest sessions go first beyond this bound
        self.clock = clock
        self._sessions: OrderedDict[str, tuple[float, SessionState]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> SessionState:
        """Return the session's state, or a fresh one if unknown or expired."""
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None:
                return SessionState()
            expires_at, state = entry
            if expires_at <= self.clock():
                del self._sessions[session_id]
                return SessionState()
            return state

    def save(self, session_id: str, state: SessionState) -> None:
        """Store the session's state and restart its time to live."""
        with self._lock:
            self._sessions[session_id] = (self.clock() + self.ttl, state)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        with self._lock:
            self._sessions.pop(session_id, None)
