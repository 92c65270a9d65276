"""The handoff inbox: conversations waiting for a person, their transcripts, claims and live events.

Two stores share one interface, as the session stores do: ``MemoryInbox`` keeps everything in this
process (one process, no Redis: as before), ``RedisInbox`` keeps it in Redis, so an operator on one
replica answers a customer connected to another. Events (an operator's reply, a conversation given
back, the inbox changing) go to topics: the customer's widget listens to ``session:<id>``, the
operators' console to ``inbox``. In memory a topic is a short deque with a condition; in Redis it is
a stream, read with a blocking XREAD on connections of their own (the shared pool's 250 ms timeout
is for commands that answer at once).

Everything is bounded: transcripts keep their last MAX_ENTRIES entries, a topic its last
TOPIC_EVENTS events, the memory store MAX_CONVERSATIONS conversations, and a process at most
MAX_LISTENERS waiting listeners (app/console.py refuses more with a 503).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from app.shared_redis import SharedRedis, shared_redis

MAX_ENTRIES = 200  # transcript entries kept per conversation, oldest dropped first
MAX_CONVERSATIONS = 10_000  # open conversations the memory store keeps; the oldest go beyond it
TOPIC_EVENTS = 100  # events kept per topic, for listeners that reconnect with their cursor
MAX_TOPICS = 20_000  # topics the memory store keeps; the least recently used go beyond it
MAX_LISTENERS = 200  # waiting listeners (SSE streams, long polls) per process
CONVERSATION_TTL = 24 * 3600  # seconds a handed-over conversation lives in Redis after its last change
KEY_PREFIX = "chatbot:handoff:"
OPERATOR_PREFIX = "operator:"  # the author of an operator's entry is "operator:<name>"
INBOX_TOPIC = "inbox"


def session_topic(session_id: str) -> str:
    """Return the topic a customer's widget listens to."""
    return f"session:{session_id}"


@dataclass(frozen=True)
class Entry:
    """One line of a handed-over conversation: who wrote it ("customer", "bot", "operator:<name>")."""

    author: str
    text: str
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class Conversation:
    """A conversation handed over to a person: where the customer is, and who has it."""

    session_id: str
    channel: str  # web, rest, telegram or slack
    address: str | None  # the channel's chat or user id to answer through; None for web and rest
    started_at: float
    updated_at: float
    operator: str | None = None  # who claimed it; None while it waits

    def to_dict(self) -> dict[str, Any]:
        """Return the conversation as the console shows it."""
        return dataclasses.asdict(self) | {"status": "claimed" if self.operator else "waiting"}


class Inbox(Protocol):
    """Open, read, claim and close handed-over conversations, and publish and await their events."""

    def open(self, conversation: Conversation, entries: list[Entry]) -> None:
        """Put a conversation in the inbox with the transcript so far (replacing an older one)."""
        ...

    def add(self, session_id: str, entry: Entry) -> Conversation | None:
        """Append an entry to an open conversation; return it, or None when it is not open."""
        ...

    def get(self, session_id: str) -> tuple[Conversation, list[Entry]] | None:
        """Return an open conversation and its transcript, oldest entry first."""
        ...

    def open_conversations(self) -> list[Conversation]:
        """Return the open conversations, the longest waiting first."""
        ...

    def claim(self, session_id: str, operator: str) -> Conversation | None:
        """Give the conversation to ``operator`` unless another has it; return it as it stands."""
        ...

    def close(self, session_id: str) -> Conversation | None:
        """Take the conversation out of the inbox (given back to the bot); return what it was."""
        ...

    def queue_for_pickup(self, session_id: str, text: str) -> None:
        """Keep an operator's reply for a channel that fetches it with the next message (REST)."""
        ...

    def pick_up(self, session_id: str) -> list[str]:
        """Return and forget the replies kept for the session."""
        ...

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Send an event to the topic's listeners."""
        ...

    def cursor(self, topic: str) -> str:
        """Return the position after the topic's newest event."""
        ...

    def wait(self, topic: str, cursor: str, timeout: float) -> tuple[list[tuple[str, dict]], str]:
        """Return the events after ``cursor`` (waiting up to ``timeout`` s for one) and the new cursor."""
        ...


def build_inbox(redis_url: str | None) -> Inbox:
    """Return the Redis inbox when a URL is set, else the in-memory one."""
    if redis_url is None:
        return MemoryInbox()
    return RedisInbox(shared_redis(redis_url), redis_url)


class MemoryInbox:
    """The inbox in this process's memory: what one process (or one worker) needs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._conversations: OrderedDict[str, tuple[Conversation, deque[Entry]]] = OrderedDict()
        self._pickups: dict[str, list[str]] = {}
        self._topics: OrderedDict[str, deque[tuple[int, dict]]] = OrderedDict()
        self._sequence = 0
        self._changed = threading.Condition()  # cooperative under gevent's patched threading

    def open(self, conversation: Conversation, entries: list[Entry]) -> None:
        """Put a conversation in the inbox with the transcript so far."""
        with self._changed:
            self._conversations.pop(conversation.session_id, None)
            self._conversations[conversation.session_id] = (conversation, deque(entries, maxlen=MAX_ENTRIES))
            while len(self._conversations) > MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)

    def add(self, session_id: str, entry: Entry) -> Conversation | None:
        """Append an entry to an open conversation."""
        with self._changed:
            held = self._conversations.get(session_id)
            if held is None:
                return None
            conversation = dataclasses.replace(held[0], updated_at=entry.at)
            held[1].append(entry)
            self._conversations[session_id] = (conversation, held[1])
            return conversation

    def get(self, session_id: str) -> tuple[Conversation, list[Entry]] | None:
        """Return an open conversation and its transcript."""
        with self._changed:
            held = self._conversations.get(session_id)
            return None if held is None else (held[0], list(held[1]))

    def open_conversations(self) -> list[Conversation]:
        """Return the open conversations, the longest waiting first."""
        with self._changed:
            conversations = [conversation for conversation, _ in self._conversations.values()]
        return sorted(conversations, key=lambda conversation: conversation.started_at)

    def claim(self, session_id: str, operator: str) -> Conversation | None:
        """Give the conversation to ``operator`` unless another has it."""
        with self._changed:
            held = self._conversations.get(session_id)
            if held is None:
                return None
            if held[0].operator is None:
                self._conversations[session_id] = (dataclasses.replace(held[0], operator=operator), held[1])
            return self._conversations[session_id][0]

    def close(self, session_id: str) -> Conversation | None:
        """Take the conversation out of the inbox."""
        with self._changed:
            self._pickups.pop(session_id, None)
            held = self._conversations.pop(session_id, None)
            return None if held is None else held[0]

    def queue_for_pickup(self, session_id: str, text: str) -> None:
        """Keep a reply for the session's next message."""
        with self._changed:
            if session_id in self._conversations:
                self._pickups.setdefault(session_id, []).append(text)
                del self._pickups[session_id][:-MAX_ENTRIES]

    def pick_up(self, session_id: str) -> list[str]:
        """Return and forget the replies kept for the session."""
        with self._changed:
            return self._pickups.pop(session_id, [])

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Append the event to the topic and wake the listeners."""
        with self._changed:
            self._sequence += 1
            events = self._topics.pop(topic, None) or deque(maxlen=TOPIC_EVENTS)
            events.append((self._sequence, event))
            self._topics[topic] = events
            while len(self._topics) > MAX_TOPICS:
                self._topics.popitem(last=False)
            self._changed.notify_all()

    def cursor(self, topic: str) -> str:
        """Return the position after the newest event of any topic (sequence numbers are global)."""
        with self._changed:
            return str(self._sequence)

    def wait(self, topic: str, cursor: str, timeout: float) -> tuple[list[tuple[str, dict]], str]:
        """Return the events after ``cursor``, waiting up to ``timeout`` seconds for one."""
        after = _sequence_of(cursor)
        deadline = time.monotonic() + timeout
        with self._changed:
            if after > self._sequence:  # a cursor from before this process started: from now on
                after = self._sequence
            while True:
                events = [
                    (str(number), event) for number, event in self._topics.get(topic, ()) if number > after
                ]
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return events, events[-1][0] if events else str(max(after, 0))
                self._changed.wait(remaining)


def _sequence_of(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError as exc:
        raise ValueError("not a cursor of this inbox") from exc


class RedisInbox:
    """The inbox in Redis, shared by every worker and replica that uses the same server.

    Commands go through the shared pool and its breaker; a RedisError reaches the caller, which
    answers 503 (console) or carries on without the inbox (a customer's message).
    """

    def __init__(self, shared: SharedRedis, url: str) -> None:
        self.client = shared.client
        self.url = url

    def _key(self, kind: str, session_id: str = "") -> str:
        return f"{KEY_PREFIX}{kind}:{session_id}" if session_id else f"{KEY_PREFIX}{kind}"

    def open(self, conversation: Conversation, entries: list[Entry]) -> None:
        """Put a conversation in the inbox with the transcript so far."""
        session_id = conversation.session_id
        transcript = self._key("transcript", session_id)
        pipe = self.client.pipeline()
        pipe.set(self._key("conversation", session_id), _encode(conversation), ex=CONVERSATION_TTL)
        pipe.delete(transcript, self._key("claim", session_id), self._key("pickup", session_id))
        if entries:
            pipe.rpush(transcript, *[_encode(entry) for entry in entries[-MAX_ENTRIES:]])
            pipe.expire(transcript, CONVERSATION_TTL)
        pipe.zadd(self._key("open"), {session_id: conversation.started_at})
        pipe.execute()

    def add(self, session_id: str, entry: Entry) -> Conversation | None:
        """Append an entry to an open conversation."""
        conversation = self._conversation(session_id)
        if conversation is None:
            return None
        transcript = self._key("transcript", session_id)
        conversation = dataclasses.replace(conversation, updated_at=entry.at)
        pipe = self.client.pipeline()
        pipe.rpush(transcript, _encode(entry))
        pipe.ltrim(transcript, -MAX_ENTRIES, -1)
        pipe.expire(transcript, CONVERSATION_TTL)
        pipe.set(self._key("conversation", session_id), _encode(conversation), ex=CONVERSATION_TTL)
        pipe.execute()
        return self._with_claim(conversation)

    def get(self, session_id: str) -> tuple[Conversation, list[Entry]] | None:
        """Return an open conversation and its transcript."""
        conversation = self._conversation(session_id)
        if conversation is None:
            return None
        raw_entries = self.client.lrange(self._key("transcript", session_id), 0, -1)
        return self._with_claim(conversation), [Entry(**json.loads(raw)) for raw in raw_entries]

    def open_conversations(self) -> list[Conversation]:
        """Return the open conversations, the longest waiting first (expired ones are dropped)."""
        session_ids = [
            raw.decode() for raw in self.client.zrange(self._key("open"), 0, MAX_CONVERSATIONS - 1)
        ]
        if not session_ids:
            return []
        raw_conversations = self.client.mget([self._key("conversation", sid) for sid in session_ids])
        claims = self.client.mget([self._key("claim", sid) for sid in session_ids])
        found, expired = [], []
        for session_id, raw, claim in zip(session_ids, raw_conversations, claims, strict=True):
            if raw is None:
                expired.append(session_id)
            else:
                operator = claim.decode() if claim else None
                found.append(dataclasses.replace(Conversation(**json.loads(raw)), operator=operator))
        if expired:
            self.client.zrem(self._key("open"), *expired)
        return found

    def claim(self, session_id: str, operator: str) -> Conversation | None:
        """Give the conversation to ``operator`` unless another has it (SET NX: one winner)."""
        conversation = self._conversation(session_id)
        if conversation is None:
            return None
        self.client.set(self._key("claim", session_id), operator, nx=True, ex=CONVERSATION_TTL)
        return self._with_claim(conversation)

    def close(self, session_id: str) -> Conversation | None:
        """Take the conversation out of the inbox."""
        conversation = self._conversation(session_id)
        keys = [self._key(kind, session_id) for kind in ("conversation", "transcript", "claim", "pickup")]
        pipe = self.client.pipeline()
        pipe.delete(*keys)
        pipe.zrem(self._key("open"), session_id)
        pipe.execute()
        return conversation

    def queue_for_pickup(self, session_id: str, text: str) -> None:
        """Keep a reply for the session's next message."""
        key = self._key("pickup", session_id)
        pipe = self.client.pipeline()
        pipe.rpush(key, text)
        pipe.ltrim(key, -MAX_ENTRIES, -1)
        pipe.expire(key, CONVERSATION_TTL)
        pipe.execute()

    def pick_up(self, session_id: str) -> list[str]:
        """Return and forget the replies kept for the session."""
        key = self._key("pickup", session_id)
        pipe = self.client.pipeline()
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw_texts, _ = pipe.execute()
        return [raw.decode() for raw in raw_texts]

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Append the event to the topic's stream."""
        stream = self._key("events", topic)
        pipe = self.client.pipeline()
        pipe.xadd(stream, {"event": json.dumps(event)}, maxlen=TOPIC_EVENTS, approximate=True)
        pipe.expire(stream, CONVERSATION_TTL)
        pipe.execute()

    def cursor(self, topic: str) -> str:
        """Return the id of the stream's newest event ("0-0" for an empty stream)."""
        newest = self.client.xrevrange(self._key("events", topic), count=1)
        return newest[0][0].decode() if newest else "0-0"

    def wait(self, topic: str, cursor: str, timeout: float) -> tuple[list[tuple[str, dict]], str]:
        """Return the events after ``cursor``, blocking on the stream up to ``timeout`` seconds."""
        if not _is_stream_id(cursor):
            raise ValueError("not a cursor of this inbox")
        answer = _blocking_client(self.url, timeout).xread(
            {self._key("events", topic): cursor}, count=TOPIC_EVENTS, block=max(1, int(timeout * 1000))
        )
        events = [
            (raw_id.decode(), json.loads(fields[b"event"]))
            for _, entries in answer
            for raw_id, fields in entries
        ]
        return events, events[-1][0] if events else cursor

    def _conversation(self, session_id: str) -> Conversation | None:
        raw = self.client.get(self._key("conversation", session_id))
        return None if raw is None else Conversation(**json.loads(raw))

    def _with_claim(self, conversation: Conversation) -> Conversation:
        claim = self.client.get(self._key("claim", conversation.session_id))
        return dataclasses.replace(conversation, operator=claim.decode() if claim else None)


def _is_stream_id(cursor: str) -> bool:
    milliseconds, _, sequence = cursor.partition("-")
    return milliseconds.isdigit() and sequence.isdigit() and len(cursor) <= 41


@functools.cache
def _blocking_client(url: str, timeout: float) -> redis.Redis:
    """Return this process's client for blocking reads: its socket waits longer than the block."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_LISTENERS,
        timeout=1.0,
        socket_timeout=timeout + 2,
        socket_connect_timeout=1.0,
    )
    return redis.Redis(connection_pool=pool)


def _encode(value: Conversation | Entry) -> str:
    return json.dumps(dataclasses.asdict(value))
