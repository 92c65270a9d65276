"""One Redis connection pool per URL and process, shared by the session store and the rate limiter,
behind one breaker.

A hung Redis (paused, or a network that drops packets) answers nothing: every command would wait
for its timeout, on every request. The breaker stops that for every user of the pool at once:
after a failure, no command reaches Redis for ``retry_after`` seconds (each fails at once with a
ConnectionError); then the first command tries again, alone, while the others keep failing fast.
So an outage costs one short timeout per back-off period per process, not one per request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.breaker import CircuitBreaker

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 0.25  # seconds; a slow Redis must not make every answer slow
REDIS_RETRY_AFTER = 1.0  # seconds without calling Redis after a failure: no storm while it is down


def _redis_breaker() -> CircuitBreaker:
    """Return a breaker that opens at the first failure and logs each outage once."""
    return CircuitBreaker(retry_after=REDIS_RETRY_AFTER, on_open=_log_outage, on_close=_log_recovery)


def _log_outage(error: Exception) -> None:
    log.warning(
        "Redis unavailable (%s): conversations go on without context and requests are not "
        "rate-limited; trying again every %s s",
        error,
        REDIS_RETRY_AFTER,
    )


def _log_recovery() -> None:
    log.info("Redis available again: conversation context and rate limits are back")


class _GuardedConnection:
    """A redis-py connection that asks the breaker before each command and tells it the outcome.

    The pool connects before the command is sent, so the permission is asked once, at whichever
    comes first, and holds until the answer is read.
    """

    def __init__(self, *args: Any, breaker: CircuitBreaker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.breaker = breaker
        self._permitted = False

    def connect(self) -> None:
        """Connect, unless the breaker holds calls back."""
        self._ask()
        self._guard(super().connect)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Send a command, unless the breaker holds calls back."""
        self._ask()
        self._guard(super().send_packed_command, command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """Read an answer; a timeout or a lost connection opens the breaker, an answer closes it."""
        try:
            response = self._guard(super().read_response, *args, **kwargs)
        finally:
            self._permitted = False
        self.breaker.succeeded()
        return response

    def _ask(self) -> None:
        if not self._permitted:
            self._permitted = self.breaker.allow()
        if not self._permitted:
            raise redis.ConnectionError("Redis is unavailable: waiting before trying again")

    def _guard(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._permitted = False
            self.breaker.failed(exc)
            raise


@dataclass(frozen=True)
class SharedRedis:
    """A connection pool, a client on it and the breaker that guards them."""

    pool: redis.ConnectionPool
    client: redis.Redis
    breaker: CircuitBreaker


@functools.cache
def shared_redis(url: str) -> SharedRedis:
    """Return this process's pool, client and breaker for a Redis URL (made on first use)."""
    pool = redis.ConnectionPool.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1),  # one retry on a fresh connection: a restarted Redis is no outage
    )
    breaker = _redis_breaker()
    # from_url chose the class for the URL's scheme (TCP, TLS or a Unix socket); guard that one.
    base = pool.connection_class
    pool.connection_class = type(f"Guarded{base.__name__}", (_GuardedConnection, base), {})
    pool.connection_kwargs["breaker"] = breaker
    return SharedRedis(pool, redis.Redis(connection_pool=pool), breaker)
