"""The in-memory session store: TTL, bound, isolation."""

from __future__ import annotations

from app.sessions import MemorySessionStore, SessionState


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
