"""Limit how often one client may call the chatbot and admin endpoints (CHATBOT_RATE_LIMIT).

The counts live in Redis when REDIS_URL is set, so every worker and replica shares one budget per
client; otherwise each worker process counts on its own. A client over its limit gets a 429 in
the usual JSON error shape, with ``Retry-After``. Health checks, metrics, the page and static files
are never limited: a load balancer or Prometheus must not be locked out. Requests that match no
route (a made-up path or method) are limited like the API: nobody needs thousands of 404s.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from app.shared_redis import shared_redis

LIMITED_BLUEPRINTS = frozenset({"api", "admin", "review", "console", "rest_channel"})


def init_app(app: Flask) -> None:
    """Count requests per client address and answer 429 past the configured limit."""
    if proxies := app.config["TRUSTED_PROXIES"]:
        # Behind N proxies the client is the address the Nth one saw: without this every
        # client would share the load balancer's address, and so one budget.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    limit = app.config["RATE_LIMIT"]
    if limit is None:
        return
    redis_url = app.config["REDIS_URL"]
    Limiter(
        get_remote_address,
        app=app,
        application_limits=[limit],
        application_limits_exempt_when=lambda: is_exempt(redis_url),
        headers_enabled=True,  # X-RateLimit-* on limited answers, Retry-After on a 429
        storage_uri=storage_uri(app.config["REDIS_URL"]),
        # The session store's pool: one breaker keeps both away from a Redis that does not answer.
        storage_options={} if redis_url is None else {"connection_pool": shared_redis(redis_url).pool},
        strategy="moving-window",  # no burst of twice the limit across a window boundary
        swallow_errors=True,  # Redis down: answer unlimited rather than fail, like the session store
        key_prefix="chatbot",
        # flask-limiter skips a request without an endpoint; an unmatched one counts as "unmatched".
        request_identifier=lambda: request.endpoint or "unmatched",
    )


def is_exempt(redis_url: str | None) -> bool:
    """Say whether this request is left out of the limit: a route outside the API and admin, or
    any request while Redis is down (as when the limiter's call fails, but without the wait)."""
    if request.url_rule is not None and request.blueprint not in LIMITED_BLUEPRINTS:
        return True
    return redis_url is not None and shared_redis(redis_url).breaker.waiting()


def storage_uri(redis_url: str | None) -> str:
    """Return the limits library's URI for the configured Redis, or in-memory counting."""
    if redis_url is None:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url
