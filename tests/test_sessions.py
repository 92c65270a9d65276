"""The session stores: in memory (TTL, bound) and in a real Redis (sharing, expiry, outages)."""

from __future__ import annotations

import logging
import signal
import statistics
import time
import tracemalloc
from pathlib import Path

import pytest
import redis

from app.sessions import (
    KEY_PREFIX,
    MAX_SESSION_BYTES,
    MAX_TURNS,
    MemorySessionStore,
    RedisSessionStore,
    SessionState,
    Turn,
    build_session_store,
)
from tests.harness import free_port, wait_until
from tests.support import RedisServer, record_figures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_unknown_session_is_fresh() -> None:
    assert MemorySessionStore(ttl=60).get("nobody") == SessionState()


def test_save_get_clear() -> None:
    store = MemorySessionStore(ttl=60)
    store.save("a", SessionState("ctx"))
    assert store.get("a").context == "ctx"
    assert store.get("b").context is None
    store.clear("a")
    assert store.get("a").context is None


def test_sessions_expire_after_ttl_without_messages() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl=60, clock=clock)
    store.save("a", SessionState("ctx"))
    clock.now += 59
    assert store.get("a").context == "ctx"
    store.save("a", SessionState("ctx"))  # a message restarts the TTL
    clock.now += 59
    assert store.get("a").context == "ctx"
    clock.now += 2
    assert store.get("a").context is None


def big_state(number: int) -> SessionState:
    """Return a state of MAX_TURNS turns of 1,000 four-byte characters, new strings each time."""
    turns = tuple(
        Turn(f"{number} {turn} " + "\U0001f600" * 1000, f"answer {number}", "greeting")
        for turn in range(MAX_TURNS)
    )
    return SessionState(f"context {number}", turns)


def test_memory_store_keeps_its_sessions_within_a_byte_budget() -> None:
    """Issue 13, finding 5: 100k sessions of 5 long turns would take ~1.8 GB; now a budget holds."""
    budget = 4 * 2**20
    store = MemorySessionStore(ttl=60, memory_budget=budget)
    offered = 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(1500):
            state = big_state(number)
            offered += sum(4 * len(turn.message) for turn in state.turns)  # four bytes a character
            store.save(f"session-{number}", state)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.bytes_used <= budget
    assert held <= 1.25 * budget  # the accounting covers what Python really holds
    assert store.get("session-1499").context == "context 1499"  # the newest stay...
    assert store.get("session-0") == SessionState()  # ...the oldest went first
    state = store.get("session-1499")
    assert len(state.to_json()) <= MAX_SESSION_BYTES and state.turns[-1].message.startswith("1499 4 ")
    record_figures(
        "session_budget",
        {
            "sessions": 1500,
            "offered_mib": round(offered / 2**20),
            "budget_mib": budget // 2**20,
            "held_mib": round(held / 2**20, 1),
        },
    )


def test_oldest_sessions_are_dropped_past_the_bound() -> None:
    store = MemorySessionStore(ttl=60, max_sessions=2)
    for name in ("a", "b", "c"):
        store.save(name, SessionState(name))
    assert [store.get(name).context for name in ("a", "b", "c")] == [None, "b", "c"]


def test_state_keeps_the_last_turns() -> None:
    state = SessionState()
    for number in range(MAX_TURNS + 2):
        state = state.after(Turn(f"message {number}", "answer", "greeting"), context=f"c{number}")
    assert state.context == f"c{MAX_TURNS + 1}"
    assert [turn.message for turn in state.turns] == [f"message {n}" for n in range(2, MAX_TURNS + 2)]


def test_state_survives_json() -> None:
    state = SessionState("order_number", (Turn("where is my order?", "Your number?", "order"),))
    assert SessionState.from_json(state.to_json()) == state
    assert SessionState.from_json(SessionState().to_json()) == SessionState()


@pytest.mark.parametrize("raw", ["{", "[]", '{"context": null}', '{"context": null, "turns": [{"x": 1}]}'])
def test_unreadable_state_is_a_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="not a session state"):
        SessionState.from_json(raw)


def test_memory_store_is_always_available() -> None:
    assert MemorySessionStore(ttl=60).status() == {"store": "memory", "available": True}
    assert isinstance(build_session_store(None, 60), MemorySessionStore)


# ---- Redis: a real redis-server on loopback ----------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path, processes) -> RedisServer:
    """Start a redis-server for one test; the processes fixture stops it."""
    server = RedisServer(tmp_path / "redis")
    processes.append(server)
    return server.start()


def store_messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    names = {"app.sessions", "app.shared_redis"}
    return [r.getMessage() for r in caplog.records if r.name in names and r.levelno >= level]


@pytest.mark.slow
def test_redis_store_shares_sessions_between_processes(redis_server: RedisServer) -> None:
    first, second = build_session_store(redis_server.url, 60), build_session_store(redis_server.url, 60)
    assert isinstance(first, RedisSessionStore)
    state = SessionState("order_number", (Turn("where is my order?", "Your number?", "order"),))
    first.save("a", state)
    assert second.get("a") == state
    assert second.get("b") == SessionState()
    assert 55 <= redis.Redis.from_url(redis_server.url).ttl(KEY_PREFIX + "a") <= 60
    second.clear("a")
    assert first.get("a") == SessionState()
    assert first.status() == {"store": "redis", "available": True}


@pytest.mark.slow
def test_redis_sessions_expire_after_ttl(redis_server: RedisServer) -> None:
    store = build_session_store(redis_server.url, 1)
    store.save("a", SessionState("ctx"))
    assert store.get("a").context == "ctx"
    wait_until(lambda: store.get("a") == SessionState(), timeout=5)


@pytest.mark.slow
def test_an_unreadable_redis_value_starts_afresh(redis_server: RedisServer, caplog) -> None:
    redis.Redis.from_url(redis_server.url).set(KEY_PREFIX + "a", b"\xff not json")
    assert build_session_store(redis_server.url, 60).get("a") == SessionState()
    assert store_messages(caplog) == ["session a holds an unreadable state; starting it afresh"]


@pytest.mark.slow
def test_redis_down_at_start_answers_fresh_states_with_one_warning(caplog) -> None:
    store = build_session_store(f"redis://127.0.0.1:{free_port()}/0", 60)  # nothing listens there
    store.breaker.retry_after = 0.0  # every call tries Redis again: still one warning for the outage
    started = time.monotonic()
    for _ in range(20):
        store.save("a", SessionState("ctx"))
        assert store.get("a") == SessionState()
    assert time.monotonic() - started < 2.0
    assert store.status() == {"store": "redis", "available": False}
    assert len(store_messages(caplog)) == 1
    assert "Redis unavailable" in store_messages(caplog)[0]


@pytest.mark.slow
def test_redis_outage_backs_off_and_recovers(redis_server: RedisServer, caplog) -> None:
    caplog.set_level(logging.INFO, logger="app.shared_redis")
    clock = Clock()
    store = build_session_store(redis_server.url, 60)
    store.breaker.clock = clock
    store.save("a", SessionState("ctx"))
    redis_server.stop(signal.SIGKILL)
    assert store.get("a") == SessionState()  # the failed call starts the outage
    redis_server.start()  # same port, empty: nothing was persisted
    store.save("a", SessionState("ctx"))  # within the back-off: not even tried
    assert store.get("a") == SessionState()
    assert store.status()["available"] is False
    clock.now += store.breaker.retry_after
    store.save("a", SessionState("ctx"))
    assert store.get("a").context == "ctx"
    assert store.status()["available"] is True
    assert [message.split(" (")[0] for message in store_messages(caplog, logging.INFO)] == [
        "Redis unavailable",
        "Redis available again: conversation context and rate limits are back",
    ]


@pytest.mark.slow
def test_a_hung_redis_costs_one_short_timeout_per_back_off(redis_server: RedisServer) -> None:
    store = build_session_store(redis_server.url, 60)
    store.save("a", SessionState("ctx"))
    redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        assert store.get("a") == SessionState()
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(100):
            store.get("a")
        rest = time.monotonic() - started
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert first < 1.0  # two tries (one retry) of REDIS_TIMEOUT each, at most
    assert rest < 0.1  # within the back-off Redis is not called


@pytest.mark.slow
def test_what_goes_to_redis_is_bounded_per_session(redis_server: RedisServer) -> None:
    store = build_session_store(redis_server.url, 60)
    store.save("a", big_state(1))
    stored = redis.Redis.from_url(redis_server.url).get(KEY_PREFIX + "a")
    assert len(stored) <= MAX_SESSION_BYTES
    assert store.get("a").turns[-1].message.startswith("1 4 ")  # the newest turn is kept


@pytest.mark.slow
def test_a_paused_redis_costs_requests_a_few_ms_not_its_timeout(
    redis_server: RedisServer, serve, tiny_model_path: Path
) -> None:
    """Issue 13, finding 6: with Redis paused, the rate limiter waited its timeout on every request."""
    server = serve(tiny_model_path, {"REDIS_URL": redis_server.url, "CHATBOT_RATE_LIMIT": "100000/minute"})

    def latencies(count: int) -> list[float]:
        measured = []
        for number in range(count):
            started = time.monotonic()
            if number % 2:
                response = server.post("/predict", {"data": f"hello {number}"})
            else:
                response = server.post("/api/v1/chat", {"message": f"hello {number}", "session_id": "s"})
            measured.append(time.monotonic() - started)
            assert response.status_code == 200
        return measured

    normal = latencies(20)
    redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        paused = latencies(40)
        elapsed = time.monotonic() - started
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    slow = [latency for latency in paused if latency > 0.2]  # a try of Redis: its timeout
    assert statistics.median(paused) < statistics.median(normal) + 0.02
    assert len(slow) <= 1 + elapsed / 1.0  # at most one try per back-off second
    record_figures(
        "redis_paused",
        {
            "requests": len(paused),
            "normal_median_ms": round(1000 * statistics.median(normal), 1),
            "paused_median_ms": round(1000 * statistics.median(paused), 1),
            "slow_requests": len(slow),
        },
    )
