"""Keep each conversation's context and last turns between messages, behind a small store interface.

Two stores share the interface: ``MemorySessionStore`` keeps sessions in one process, the right
default for one machine; ``RedisSessionStore`` keeps them in Redis, so every worker and every
replica behind a load balancer sees the same conversation. ``build_session_store`` picks one from
the settings. When Redis cannot be reached, the bot answers without context rather than failing.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

MAX_TURNS = 5  # turns kept per session: enough to see how a conversation went, bounded in memory
REDIS_TIMEOUT = 0.25  # seconds; a slow Redis must not make every answer slow
REDIS_RETRY_AFTER = 1.0  # seconds without calling Redis after a failure: no storm while it is down
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

    def after(self, turn: Turn, context: str | None, **changes: object) -> SessionState:
        """Return the state once the turn is answered and the conversation is in ``context``.

        ``changes`` sets other fields (slots, pending, handoff); those not named carry over.
        """
        return dataclasses.replace(self, context=context, turns=(*self.turns, turn)[-MAX_TURNS:], **changes)

    def to_json(self) -> str:
        """Encode the state for a shared store."""
        value = {"context": self.context, "turns": [vars(turn) for turn in self.turns]}
        if self.slots or self.pending or self.handoff:  # written only when used: older readers agree
            value |= {"slots": dict(self.slots), "pending": self.pending, "handoff": self.handoff}
        return json.dumps(value)

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionState:
        """Decode a state written by ``to_json``; raise ValueError for anything else."""
        try:
            value = json.loads(raw)
            slots = value.get("slots", {})
            if not isinstance(slots, dict) or not all(isinstance(item, str) for item in slots.values()):
                raise TypeError("slots must map names to strings")
            return cls(
                value["context"],
                tuple(Turn(**turn) for turn in value["turns"]),
                slots,
                value.get("pending"),
                value.get("handoff") is True,
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


def build_session_store(redis_url: str | None, ttl: int) -> SessionStore:
    """Return the Redis store when a URL is set, else the in-memory one."""
    if redis_url is None:
        return MemorySessionStore(ttl)
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1),  # one retry on a fresh connection: a restarted Redis is no outage
    )
    return RedisSessionStore(client, ttl)


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

    def status(self) -> dict[str, Any]:
        """Describe the store: memory is always available."""
        return {"store": "memory", "available": True}


class RedisSessionStore:
    """Sessions in Redis, shared by every process that uses the same server; keys expire after ``ttl``.

    Every Redis error is caught: the bot then answers without context. The first failure logs one
    warning and starts an outage; during it, Redis is tried again at most once per
    ``retry_after`` seconds, so a dead server costs one short timeout per second, not one per
    request. The first success after an outage logs that context works again.
    """

    def __init__(
        self,
        client: redis.Redis,
        ttl: int,
        retry_after: float = REDIS_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.retry_after = retry_after
        self.clock = clock
        self._down = False
        self._next_try = 0.0
        self._lock = threading.Lock()

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
        self._call(lambda: self.client.set(KEY_PREFIX + session_id, state.to_json(), ex=self.ttl))

    def clear(self, session_id: str) -> None:
        """Forget the session."""
        self._call(lambda: self.client.delete(KEY_PREFIX + session_id))

    def status(self) -> dict[str, Any]:
        """Describe the store, asking Redis unless an outage is waiting for its next try."""
        return {"store": "redis", "available": self._call(self.client.ping) is not None}

    def _call(self, command: Callable[[], Any]) -> Any:
        """Run a Redis command; return None instead of raising when Redis is down."""
        if self._down and self.clock() < self._next_try:
            return None
        try:
            result = command()
        except redis.RedisError as exc:
            self._mark_down(exc)
            return None
        if self._down:
            self._mark_up()
        return result

    def _mark_down(self, error: redis.RedisError) -> None:
        with self._lock:
            self._next_try = self.clock() + self.retry_after
            if self._down:
                return
            self._down = True
        log.warning("session store unavailable (%s): answering without conversation context", error)

    def _mark_up(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        log.info("session store available again: conversation context is back")
