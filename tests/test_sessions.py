"""The session stores: in memory (TTL, bound) and in a real Redis (sharing, expiry, outages)."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytest
import redis

from app.sessions import (
    KEY_PREFIX,
    MAX_TURNS,
    MemorySessionStore,
    RedisSessionStore,
    SessionState,
    Turn,
    build_session_store,
)
from tests.conftest import RedisServer, free_port, wait_until


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
    return [r.getMessage() for r in caplog.records if r.name == "app.sessions" and r.levelno >= level]


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
    store.retry_after = 0.0  # every call tries Redis again: still one warning for the outage
    started = time.monotonic()
    for _ in range(20):
        store.save("a", SessionState("ctx"))
        assert store.get("a") == SessionState()
    assert time.monotonic() - started < 2.0
    assert store.status() == {"store": "redis", "available": False}
    assert len(store_messages(caplog)) == 1
    assert "session store unavailable" in store_messages(caplog)[0]


@pytest.mark.slow
def test_redis_outage_backs_off_and_recovers(redis_server: RedisServer, caplog) -> None:
    caplog.set_level(logging.INFO, logger="app.sessions")
    clock = Clock()
    store = build_session_store(redis_server.url, 60)
    store.clock = clock
    store.save("a", SessionState("ctx"))
    redis_server.stop(signal.SIGKILL)
    assert store.get("a") == SessionState()  # the failed call starts the outage
    redis_server.start()  # same port, empty: nothing was persisted
    store.save("a", SessionState("ctx"))  # within the back-off: not even tried
    assert store.get("a") == SessionState()
    assert store.status()["available"] is False
    clock.now += store.retry_after
    store.save("a", SessionState("ctx"))
    assert store.get("a").context == "ctx"
    assert store.status()["available"] is True
    assert [message.split(" (")[0] for message in store_messages(caplog, logging.INFO)] == [
        "session store unavailable",
        "session store available again: conversation context is back",
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
