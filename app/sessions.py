"""Keep each conversation's context and last turns between messages, behind a small store interface.

Two stores share the interface: ``MemorySessionStore`` keeps sessions in one process, the right
default for one machine; ``RedisSessionStore`` keeps them in Redis, so every worker and every
replica behind a load balancer sees the same conversation. ``build_session_store`` picks one from
the settings. When Redis cannot be reached, the bot answers without context rather than failing;
app/shared_redis.py's breaker then keeps calls away from it for a while.

Both stores keep each session within MAX_SESSION_BYTES (its oldest turns go first), and the memory
store keeps all of them within a byte budget (its least recently used sessions go first), so a
worker's memory is bounded in bytes whatever clients send.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from app.config import DEFAULT_SESSION_MEMORY_BYTES
from app.shared_redis import SharedRedis, shared_redis
from chatbot.data.builtin_entities import check_timezone

log = logging.getLogger(__name__)

MAX_TURNS = 5  # turns kept per session: enough to see how a conversation went, bounded in memory
MAX_SESSION_BYTES = 16 * 1024  # one session's encoded state; its oldest turns go first beyond it
# What Python's objects around one stored state take beyond its JSON: the dict entry, the id, the
# state, its turns and their strings' headers (measured: ~1.3 KB for 5 short turns).
SESSION_OVERHEAD_BYTES = 2048
KEY_PREFIX = "chatbot:session:"


@dataclass(frozen=True)
class Turn:
    """One message and the bot's answer to it."""

    message: str
    response: str
    intent: str


@dataclass(frozen=True)
class SessionState:
    """What the bot remembers of one conversation."""

    context: str | None = None
    turns: tuple[Turn, ...] = ()  # the last MAX_TURNS, oldest first
    slots: Mapping[str, str] = field(default_factory=dict)  # values remembered from earlier messages
    pending: str | None = None  # the intent waiting for a slot the bot asked for
    handoff: bool = False  # a person answers this conversation; the bot stays silent
    time_zone: str | None = None  # the customer's IANA zone for dates (None: the bot's), as last sent

    def after(self, turn: Turn, context: str | None, **changes: object) -> SessionState:
        """Return the state once the turn is answered and the conversation is in ``context``.

        ``changes`` sets other fields (slots, pending, handoff); those not named carry over.
        """
        return dataclasses.replace(self, context=context, turns=(*self.turns, turn)[-MAX_TURNS:], **changes)

    def encoded_within(self, max_bytes: int) -> tuple[SessionState, str]:
        """Return the state with its oldest turns dropped until its JSON fits, and that JSON."""
        state, encoded = self, self.to_json()
        while len(encoded) > max_bytes and state.turns:  # ASCII JSON: one byte a character
            state = dataclasses.replace(state, turns=state.turns[1:])
            encoded = state.to_json()
        return state, encoded

    def to_json(self) -> str:
        """Encode the state for a shared store (ASCII: \\u escapes for the rest)."""
        value = {"context": self.context, "turns": [vars(turn) for turn in self.turns]}
        if self.slots or self.pending or self.handoff:  # written only when used: older readers agree
            value |= {"slots": dict(self.slots), "pending": self.pending, "handoff": self.handoff}
        if self.time_zone is not None:
            value["time_zone"] = self.time_zone
        return json.dumps(value)

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionState:
        """Decode a state written by ``to_json``; raise ValueError for anything else."""
        try:
            value = json.loads(raw)
            slots = value.get("slots", {})
            if not isinstance(slots, dict) or not all(isinstance(item, str) for item in slots.values()):
                raise TypeError("slots must map names to strings")
            time_zone = value.get("time_zone")
            if time_zone is not None:
                check_timezone(time_zone if isinstance(time_zone, str) else "")  # ValueError if unknown
            return cls(
                value["context"],
                tuple(Turn(**turn) for turn in value["turns"]),
                slots,
                value.get("pending"),
                value.get("handoff") is True,
                time_zone,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # bad JSON, or another shape
            raise ValueError(f"not a session state: {exc!r}") from exc


class SessionStore(Protocol):
    """Get, save and clear conversation state by session id, and say whether the store works."""

    def get(self, session_id: str) -> SessionState:
        """Return the session's state, or a fresh one if unknown, expired or unreachable."""
        ...

    def save(self, session_id: str, state: SessionState) -> None:
        """Store the session's state and restart its time to live."""
        ...

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        ...

    def status(self) -> dict[str, Any]:
        """Describe the store for /readyz: its kind and whether it is available."""
        ...


def build_session_store(
    redis_url: str | None, ttl: int, memory_budget: int = DEFAULT_SESSION_MEMORY_BYTES
) -> SessionStore:
    """Return the Redis store when a URL is set, else the in-memory one."""
    if redis_url is None:
        return MemorySessionStore(ttl, memory_budget=memory_budget)
    return RedisSessionStore(shared_redis(redis_url), ttl)


class MemorySessionStore:
    """Sessions in this process's memory, expiring after ``ttl`` seconds without a message."""

    def __init__(
        self,
        ttl: float,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        memory_budget: int = DEFAULT_SESSION_MEMORY_BYTES,
    ) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions  # the oldest sessions go first beyond this bound...
        self.memory_budget = memory_budget  # ...or beyond this many bytes
        self.clock = clock
        self.bytes_used = 0
        # session id -> (expiry, state, its cost in bytes), least recently saved first
        self._sessions: OrderedDict[str, tuple[float, SessionState, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> SessionState:
        """Return the session's state, or a fresh one if unknown or expired."""
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None:
                return SessionState()
            expires_at, state, _ = entry
            if expires_at <= self.clock():
                self._remove(session_id)
                return SessionState()
            return state

    def save(self, session_id: str, state: SessionState) -> None:
        """Store the session's state and restart its time to live."""
        state, encoded = state.encoded_within(MAX_SESSION_BYTES)
        cost = len(encoded) + len(session_id) + SESSION_OVERHEAD_BYTES
        with self._lock:
            self._remove(session_id)
            self._sessions[session_id] = (self.clock() + self.ttl, state, cost)
            self.bytes_used += cost
            while len(self._sessions) > self.max_sessions or self.bytes_used > self.memory_budget:
                self._remove(next(iter(self._sessions)))

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        with self._lock:
            self._remove(session_id)

    def _remove(self, session_id: str) -> None:
        entry = self._sessions.pop(session_id, None)
        if entry is not None:
            self.bytes_used -= entry[2]

    def status(self) -> dict[str, Any]:
        """Describe the store: memory is always available."""
        return {"store": "memory", "available": True}


class RedisSessionStore:
    """Sessions in Redis, shared by every process that uses the same server; keys expire after ``ttl``.

    Every Redis error is caught: the bot then answers without context. The shared breaker
    (app/shared_redis.py) logs the outage once and keeps calls away from Redis for a while.
    """

    def __init__(self, shared: SharedRedis, ttl: int) -> None:
        self.client = shared.client
        self.breaker = shared.breaker
        self.ttl = ttl

    def get(self, session_id: str) -> SessionState:
        """Return the session's state, or a fresh one if unknown, expired, unreadable or unreachable."""
        raw = self._call(lambda: self.client.get(KEY_PREFIX + session_id))
        if raw is None:
            return SessionState()
        try:
            return SessionState.from_json(raw)
        except ValueError:
            log.warning("session %s holds an unreadable state; starting it afresh", session_id)
            return SessionState()

    def save(self, session_id: str, state: SessionState) -> None:
        """Store the session's state and restart its time to live (skipped while Redis is down)."""
        _, encoded = state.encoded_within(MAX_SESSION_BYTES)
        self._call(lambda: self.client.set(KEY_PREFIX + session_id, encoded, ex=self.ttl))

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        self._call(lambda: self.client.delete(KEY_PREFIX + session_id))

    def status(self) -> dict[str, Any]:
        """Describe the store, asking Redis unless the breaker holds calls back."""
        return {"store": "redis", "available": self._call(self.client.ping) is not None}

    def _call(self, command: Callable[[], Any]) -> Any:
        """Run a Redis command; return None instead of raising when Redis is down."""
        try:
            return command()
        except redis.RedisError:  # the breaker has logged the outage
            return None
