"""Limit how often one client may call the chatbot and admin endpoints (CHATBOT_RATE_LIMIT).

The counts live in Redis when REDIS_URL is set, so every worker and replica shares one budget per
client; otherwise each worker process counts on its own. A client over its limit gets a 429 in
the usual JSON error shape, with ``Retry-After``. Health checks, metrics, the page and static files
are never limited: a load balancer or Prometheus must not be locked out.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from app.sessions import REDIS_TIMEOUT  # a slow Redis must not slow every answer

LIMITED_BLUEPRINTS = frozenset({"api", "admin", "review"})


def init_app(app: Flask) -> None:
    """Count requests per client address and answer 429 past the configured limit."""
    if proxies := app.config["TRUSTED_PROXIES"]:
        # Behind N proxies the client is the address the Nth one saw: without this every
        # client would share the load balancer's address, and so one budget.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    limit = app.config["RATE_LIMIT"]
    if limit is None:
        return
    Limiter(
        get_remote_address,
        app=app,
        application_limits=[limit],
        application_limits_exempt_when=lambda: request.blueprint not in LIMITED_BLUEPRINTS,
        headers_enabled=True,  # X-RateLimit-* on limited answers, Retry-After on a 429
        storage_uri=storage_uri(app.config["REDIS_URL"]),
        storage_options=_storage_options(app.config["REDIS_URL"]),
        strategy="moving-window",  # no burst of twice the limit across a window boundary
        swallow_errors=True,  # Redis down: answer unlimited rather than fail, like the session store
        key_prefix="chatbot",
    )


def storage_uri(redis_url: str | None) -> str:
    """Return the limits library's URI for the configured Redis, or in-memory counting."""
    if redis_url is None:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def _storage_options(redis_url: str | None) -> dict[str, float]:
    if redis_url is None:
        return {}
    return {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}
