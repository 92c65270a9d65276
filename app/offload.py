"""Run blocking work (database calls, redaction, grouping) on a real OS thread under gevent.

gunicorn's gevent workers run every connection on one event loop: a call that blocks in C (SQLite
waiting for a write lock, a large DELETE) or computes for long freezes every other connection of
the worker, /healthz included. Under gevent this hands the work to the hub's pool of real threads
and lets the loop serve others while the calling greenlet waits; elsewhere (the Flask test client,
`chatbot serve` in development) it simply calls the work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def patched_by_gevent() -> bool:
    """Say whether gevent's monkey patching made this process's threads greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def off_loop(work: Callable[..., Result], *args: object) -> Result:
    """Return ``work(*args)``, computed on a real thread when gevent runs the event loop here."""
    if not patched_by_gevent():
        return work(*args)
    import gevent  # only where gevent already runs the process

    return gevent.get_hub().threadpool.apply(work, args)
