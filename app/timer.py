"""Time each request once: the metrics' latency and the conversation log's latency_ms read this clock."""

from __future__ import annotations

import time

from flask import Flask, g


def init_app(app: Flask) -> None:
    """Start the clock before any other hook can answer (register this first)."""
    app.before_request(start_timer)


def start_timer() -> None:
    """Note when this request started."""
    g.request_started = time.perf_counter()


def elapsed_seconds() -> float | None:
    """Return the seconds since this request started (None: the timer did not run for it)."""
    started = g.get("request_started")
    return None if started is None else time.perf_counter() - started
