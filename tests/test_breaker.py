"""The one circuit breaker (app/breaker.py) that shared Redis and the webhook client both use."""

from __future__ import annotations

from app.breaker import CircuitBreaker


def test_it_opens_at_the_limit_lets_one_trial_through_and_tells_each_change_once() -> None:
    now = [0.0]
    told: list[str] = []
    breaker = CircuitBreaker(
        retry_after=10,
        failures_to_open=2,
        clock=lambda: now[0],
        on_open=lambda error: told.append(f"open: {error}"),
        on_close=lambda: told.append("closed"),
    )
    breaker.failed(OSError("one"))
    assert breaker.allow() and not breaker.down  # below the limit, calls still go out
    breaker.failed(OSError("two"))
    assert breaker.down and breaker.waiting() and not breaker.allow()
    now[0] = 10.0
    assert not breaker.waiting()
    assert breaker.allow() and not breaker.allow()  # the first caller tries, alone
    breaker.failed(OSError("three"))  # still down: not told again
    now[0] = 20.0
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.down and breaker.allow()
    assert told == ["open: two", "closed"]


def test_a_success_forgets_failures_below_the_limit() -> None:
    breaker = CircuitBreaker(retry_after=10, failures_to_open=2)
    breaker.failed(OSError("one"))
    breaker.succeeded()
    breaker.failed(OSError("two"))
    assert not breaker.down
