"""Read the service's settings from the environment: the one place that knows their names.

Both the Flask app and app/gunicorn_conf.py take their settings from here, and a bad value stops the
server at start with a message naming the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import limits

from chatbot.classifier.config import DEFAULT_DATA_PATH, DEFAULT_MODEL_PATH, ENGINES
from chatbot.data.actions import is_http_url, normalize_url
from chatbot.learning.log_settings import DATABASE_URL_VARIABLE, check_database_url

T = TypeVar("T")
MIN_TOKEN_CHARS = 16
DEFAULT_RATE_LIMIT = "60/minute"
WORKER_CLASSES = ("gevent", "gthread")  # gunicorn's names
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # gunicorn's names
DEFAULT_SESSION_MEMORY_BYTES = 64 * 2**20  # in-memory sessions per worker: fits the 512 Mi of deploy/k8s
DEFAULT_ACTION_ALLOWLIST = ("http://127.0.0.1:8081/",)  # deploy/orders, beside the bot
# A CSP frame-ancestors source: a keyword, a scheme, or a host with optional scheme, wildcard and port.
_FRAME_SOURCE = re.compile(
    r"'self'|'none'|\*|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9.-]+(:(\d+|\*))?"
)


def app_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the Flask config values, with defaults, from environment variables."""
    return {
        "MODEL_PATH": environ.get("CHATBOT_MODEL", str(DEFAULT_MODEL_PATH)),
        "ENGINE": _read(environ, "CHATBOT_ENGINE", _engine, "numpy"),
        "THRESHOLD": _read(environ, "CHATBOT_THRESHOLD", _probability, None),  # None: the bundle's
        "CORS_ORIGINS": _origins(environ.get("CHATBOT_CORS_ORIGINS", "")),
        "MAX_MESSAGE_CHARS": _read(environ, "CHATBOT_MAX_MESSAGE_CHARS", _positive_int, 1000),
        "MAX_CONTENT_LENGTH": _read(environ, "CHATBOT_MAX_BODY_BYTES", _positive_int, 64 * 1024),
        "SESSION_TTL": _read(environ, "CHATBOT_SESSION_TTL", _positive_int, 30 * 60),
        "REDIS_URL": _read(environ, "REDIS_URL", _redis_url, None),  # None: sessions in memory
        # Bytes of in-memory sessions per worker; the least recently used go first beyond it.
        "SESSION_MEMORY_BYTES": _read(
            environ, "CHATBOT_SESSION_MEMORY_BYTES", _positive_int, DEFAULT_SESSION_MEMORY_BYTES
        ),
        # None: /admin/reload is disabled.
        "ADMIN_TOKEN": _read(environ, "CHATBOT_ADMIN_TOKEN", _token, None, secret=True),
        "METRICS_DIR": environ.get("PROMETHEUS_MULTIPROC_DIR") or None,  # set: multiprocess metrics
        # Per client, over the chatbot and admin endpoints together; None: no limit ("off").
        "RATE_LIMIT": _read(environ, "CHATBOT_RATE_LIMIT", _rate_limit, DEFAULT_RATE_LIMIT),
        "TRUSTED_PROXIES": _read(environ, "CHATBOT_TRUSTED_PROXIES", _count, 0),
        "FRAME_ANCESTORS": _read(environ, "CHATBOT_FRAME_ANCESTORS", _frame_ancestors, "'self'"),
        # The conversation log (app/log_writer.py): on by default; None: SQLite beside the model.
        "CONVERSATION_LOG": _read(environ, "CHATBOT_LOG", _on_off, True),
        "LOG_RETENTION_DAYS": _read(environ, "CHATBOT_LOG_RETENTION_DAYS", _positive_int, 30),
        # Messages one client may add to the log per minute and worker; the rest are answered, not logged.
        "LOG_CLIENT_ROWS_PER_MINUTE": _read(
            environ, "CHATBOT_LOG_CLIENT_ROWS_PER_MINUTE", _positive_int, 600
        ),
        "DATABASE_URL": _read(environ, DATABASE_URL_VARIABLE, check_database_url, None, secret=True),
        # The intents file that /admin/review adds phrases to (out_of_scope.txt goes beside it).
        "DATA_PATH": environ.get("CHATBOT_DATA", str(DEFAULT_DATA_PATH)),
        # URL prefixes an intent's action may call; the default is the example order service.
        "ACTION_ALLOWLIST": _read(environ, "CHATBOT_ACTION_ALLOWLIST", _urls, DEFAULT_ACTION_ALLOWLIST),
        # Signs every webhook event (X-Chatbot-Signature); None: events go out unsigned.
        "ACTION_SECRET": _read(environ, "CHATBOT_ACTION_SECRET", _token, None, secret=True),
        # Told about every handoff, with the transcript; None: handoffs are only marked and counted.
        "HANDOFF_URL": _read(environ, "CHATBOT_HANDOFF_URL", _url, None),
        # The channels (app/channels/): REST is on unless "off"; Telegram and Slack when their secrets are set.
        "REST_CHANNEL": _read(environ, "CHATBOT_REST_CHANNEL", _on_off, True),
        "TELEGRAM_TOKEN": _read(environ, "CHATBOT_TELEGRAM_TOKEN", _secret, None, secret=True),
        "TELEGRAM_SECRET": _read(environ, "CHATBOT_TELEGRAM_SECRET", _telegram_secret, None, secret=True),
        "TELEGRAM_API_URL": _read(environ, "CHATBOT_TELEGRAM_API_URL", _url, "https://api.telegram.org"),
        "SLACK_SIGNING_SECRET": _read(environ, "CHATBOT_SLACK_SIGNING_SECRET", _secret, None, secret=True),
        "SLACK_BOT_TOKEN": _read(environ, "CHATBOT_SLACK_BOT_TOKEN", _secret, None, secret=True),
        "SLACK_API_URL": _read(environ, "CHATBOT_SLACK_API_URL", _url, "https://slack.com/api"),
        # Never from FLASK_DEBUG: debug mode would serve tracebacks (create_app refuses it).
        "DEBUG": False,
    }


def server_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the gunicorn values that come from the environment."""
    return {
        "host": environ.get("HOST", "0.0.0.0"),
        "port": _read(environ, "PORT", _positive_int, 5000),
        "workers": _read(environ, "WEB_CONCURRENCY", _positive_int, 1),
        # gevent (the default) holds stalled clients cheaply; gthread is for measuring against it.
        "worker_class": _read(environ, "CHATBOT_WORKER_CLASS", _worker_class, "gevent"),
        "worker_connections": _read(environ, "CHATBOT_WORKER_CONNECTIONS", _positive_int, 1000),
        "threads": _read(environ, "CHATBOT_THREADS", _positive_int, 4),  # per gthread worker
        "timeout": _read(environ, "CHATBOT_WORKER_TIMEOUT", _positive_int, 30),
        "metrics_dir": environ.get("PROMETHEUS_MULTIPROC_DIR") or None,  # None: a temporary one
        "log_level": _read(environ, "CHATBOT_LOG_LEVEL", _log_level, "info"),  # `chatbot -v/-q serve` sets it
    }


def _read(
    environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, secret: bool = False
) -> T:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        shown = "<hidden>" if secret else repr(raw)  # a secret never reaches the logs, even a bad one
        raise ValueError(f"environment variable {name}={shown}: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _worker_class(raw: str) -> str:
    if raw not in WORKER_CLASSES:
        raise ValueError(f"must be one of {', '.join(WORKER_CLASSES)}")
    return raw


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or a positive integer")
    return value


def _on_off(raw: str) -> bool:
    if raw.lower() not in {"on", "off"}:
        raise ValueError("must be on or off")
    return raw.lower() == "on"


def _log_level(raw: str) -> str:
    if raw.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return raw.lower()


def _engine(raw: str) -> str:
    if raw not in ENGINES:
        raise ValueError(f"must be one of {', '.join(ENGINES)}")
    return raw


def _probability(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def _token(raw: str) -> str:
    # A short bearer token can be guessed; the endpoint it guards swaps the model in production.
    if len(raw) < MIN_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters")
    return raw


def _secret(raw: str) -> str:
    # Chosen by Telegram or Slack, not by us: only a length that no real one falls short of.
    if len(raw) < 8 or any(char.isspace() for char in raw):
        raise ValueError("must be at least 8 characters without spaces")
    return raw


def _telegram_secret(raw: str) -> str:
    # Telegram's setWebhook accepts 1-256 of A-Z, a-z, 0-9, _ and -; ours must also resist guessing.
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", raw):
        raise ValueError("must be 16 to 256 letters, digits, _ or -")
    return raw


def _url(raw: str) -> str:
    if not is_http_url(raw):
        raise ValueError("must be an http:// or https:// URL")
    if normalize_url(raw) is None:  # a bad port would otherwise fail on the first call, as a 500
        raise ValueError("has a bad port, user info, a backslash or an ambiguous path (..;, %25)")
    return raw


def _urls(raw: str) -> tuple[str, ...]:
    if raw.lower() == "none":  # no webhook may be called: a bot with actions will not start
        return ()
    return tuple(_url(url.strip()) for url in raw.split(",") if url.strip())


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())


def _rate_limit(raw: str) -> str | None:
    if raw.lower() == "off":
        return None
    limits.parse_many(raw)  # raises ValueError naming the part it cannot read
    return raw


def _frame_ancestors(raw: str) -> str:
    # The value goes into a Content-Security-Policy header: nothing may end the directive early.
    sources = raw.replace(",", " ").split()
    if bad := [source for source in sources if not _FRAME_SOURCE.fullmatch(source.lower())]:
        raise ValueError(f"{bad[0]!r} is not a CSP source such as 'self', https://shop.example or 'none'")
    return " ".join(sources)
