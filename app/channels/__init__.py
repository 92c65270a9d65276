"""Where customers talk besides the widget: one module per channel, all on the same conversation engine.

Each channel turns its platform's message into ``app.turns.converse`` (context, slots, actions,
handoff, conversation log, redaction) with a session id derived from the platform's user or chat
id, and turns the answer into the platform's shape:

- ``rest``: Rasa's REST channel, ``POST /webhooks/rest/webhook``; on unless CHATBOT_REST_CHANNEL=off.
- ``telegram``: a Bot API webhook; on when CHATBOT_TELEGRAM_TOKEN and CHATBOT_TELEGRAM_SECRET are set.
- ``slack``: an Events API endpoint; on when CHATBOT_SLACK_SIGNING_SECRET and CHATBOT_SLACK_BOT_TOKEN are set.

A channel that is off registers no route, so it answers 404. This module holds what they share:
session ids, ``PlatformChannel`` (Telegram's and Slack's common part: each message answered once
through the turn), the record of deliveries already answered, and the ``Sender`` that calls a platform's
API off the request with the actions' discipline (app/actions.py: deadline, size cap, breaker)
plus retries with back-off, each call counted in ``chatbot_channel_sends_total{channel,outcome}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import Counter

from app.actions import WebhookClient, WebhookError
from app.errors import ApiError
from app.handoff import Recipient, register_delivery
from app.openapi import SESSION_ID_PATTERN
from app.shared_redis import shared_redis
from app.turns import converse

log = logging.getLogger(__name__)

SEND_TIMEOUT_MS = 5000  # one deadline per attempt to call a platform's API
RETRY_BACKOFF = (0.5, 2.0)  # seconds before the second and third attempts
RETRIED = frozenset({"unreachable", "http_error", "timeout"})  # worth another try; the rest is not
MAX_PENDING_SENDS = 200  # sends waiting or running per process and channel; beyond, dropped and counted
SEEN_IDS = 10_000  # delivery ids remembered per process without Redis
SEEN_TTL = 3600  # seconds a delivery id is remembered in Redis (platforms retry within minutes)
MAX_ID_CHARS = 100  # a platform's user or chat id in a session id; longer ones are hashed


def channel_session(channel: str, user_id: str) -> str:
    """Return the session id of a platform's user or chat: readable when it can be, hashed when not."""
    candidate = f"{channel}:{user_id}"
    if len(user_id) <= MAX_ID_CHARS and re.fullmatch(SESSION_ID_PATTERN, candidate):
        return candidate
    return f"{channel}:h{hashlib.sha256(user_id.encode()).hexdigest()[:40]}"


class SeenDeliveries:
    """Remember the ids of deliveries already answered, so a platform's retry is answered once."""

    def __init__(self, redis_url: str | None, channel: str) -> None:
        self.client = None if redis_url is None else shared_redis(redis_url).client
        self.prefix = f"chatbot:channel:{channel}:seen:"
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str) -> bool:
        """Record the id; say whether it was new (Redis down: treated as new, answered again)."""
        if self.client is not None:
            try:
                return bool(self.client.set(self.prefix + delivery_id, 1, nx=True, ex=SEEN_TTL))
            except redis.RedisError:  # the shared breaker logs the outage
                return True
        with self._lock:
            if delivery_id in self._ids:
                return False
            self._ids[delivery_id] = None
            while len(self._ids) > SEEN_IDS:
                self._ids.popitem(last=False)
            return True


class Sender:
    """Call a platform's API in the background, bounded, retried and counted.

    The webhook that brought the customer's message is answered at once (Slack wants an answer
    within 3 s and retries otherwise); a hanging or failing API costs its own greenlet (a thread
    outside gunicorn), never the request or the worker's other connections.
    """

    def __init__(self, channel: str, sends: Counter, check: Callable[[bytes], None]) -> None:
        self.channel = channel
        self.sends = sends
        self.check = check  # raises WebhookError("api_error", ...) when the answer says it failed
        self.client = WebhookClient(secret=None)  # the actions' secret is not the platform's business
        self._slots = threading.BoundedSemaphore(MAX_PENDING_SENDS)

    def send(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Start sending; count ``dropped`` when too many sends are already pending."""
        if not self._slots.acquire(blocking=False):
            self.sends.labels(self.channel, "dropped").inc()
            return
        thread = threading.Thread(target=self._run, args=(url, body, headers), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread can start (the process is at its limit): count, never raise
            self._slots.release()
            self.sends.labels(self.channel, "dropped").inc()

    def _run(self, url: str, body: dict[str, Any], headers: dict[str, str] | None) -> None:
        outcome = "ok"
        try:
            for delay in (0.0, *RETRY_BACKOFF):
                time.sleep(delay)
                try:
                    self.check(self.client.post(url, body, SEND_TIMEOUT_MS, headers))
                except WebhookError as exc:
                    outcome = exc.outcome
                    if outcome not in RETRIED:
                        break
                else:
                    outcome = "ok"
                    break
            if outcome != "ok":  # the outcome only: the URL may hold the bot's token
                log.warning("%s: a message to a customer was not delivered (%s)", self.channel, outcome)
        finally:
            self._slots.release()
            self.sends.labels(self.channel, outcome).inc()


def check_ok_field(reply: bytes) -> None:
    """Raise WebhookError unless a Telegram or Slack answer is JSON with ``"ok": true``."""
    try:
        ok = json.loads(reply).get("ok") is True
    except (ValueError, AttributeError) as exc:
        raise WebhookError("invalid_reply", "the API's answer is not a JSON object") from exc
    if not ok:
        raise WebhookError("api_error", 'the API answered "ok": false')


class HideSecrets(logging.Filter):
    """Replace the channels' secrets in log records (a token is part of Telegram's API URLs)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a record whose message holds a secret."""
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "<hidden>")
            record.msg, record.args = message, None
        return True


_hide_secrets = HideSecrets()


def hide_in_logs(secrets: Iterable[str | None]) -> None:
    """Keep these secrets out of the records of the loggers that see platform URLs."""
    _hide_secrets.secrets.update(secret for secret in secrets if secret)
    for name in ("app.actions", __name__, f"{__name__}.telegram", f"{__name__}.slack"):
        logger = logging.getLogger(name)
        if _hide_secrets not in logger.filters:
            logger.addFilter(_hide_secrets)


class PlatformChannel:
    """What the platform channels (Telegram, Slack) share: the ``Sender`` that calls the platform's
    API, the deliveries already answered, and the answer to a user's message. A subclass names its
    ``channel`` and says how to ``deliver`` a message to one of its users."""

    channel: str

    def __init__(self, app: Flask, sends: Counter) -> None:
        self.sender = Sender(self.channel, sends, check_ok_field)
        self.seen = SeenDeliveries(app.config["REDIS_URL"], self.channel)

    def deliver(self, user_id: str, text: str, quick_replies: list[str]) -> None:
        """Send a message and its quick replies (operator replies come this way too)."""
        raise NotImplementedError

    def answer(self, delivery_id: str, session_id: str, text: str, user_id: str) -> Response:
        """Answer a user's message through the bot's turn, once however often the platform retries it."""
        if not self.seen.first_time(delivery_id):
            return jsonify(status="duplicate")
        answer = converse(session_id, text, None, Recipient(self.channel, user_id))
        if answer["response"]:
            self.deliver(user_id, answer["response"], answer["quick_replies"])
        return jsonify(status="answered")


def platform_blueprint(channel: str, url_prefix: str, secrets: tuple[str, ...]) -> Blueprint:
    """Return a platform channel's blueprint. It answers 404 while the channel is off, as for a route
    that does not exist, naming the settings that turn it on (``secrets``: their config keys)."""
    bp = Blueprint(f"{channel}_channel", __name__, url_prefix=url_prefix)
    settings = " and ".join(f"CHATBOT_{key}" for key in secrets)

    @bp.before_request
    def require_on() -> None:
        if channel not in current_app.extensions:
            raise ApiError(404, "not_found", f"the {channel} channel is off: set {settings}")

    return bp


def start_platform(
    app: Flask, bp: Blueprint, channel: str, secrets: tuple[str, ...], build: Callable[[], PlatformChannel]
) -> None:
    """Register a platform's endpoint, and turn the channel on when all its secret settings are set:
    its secrets are then kept out of the logs and operator replies reach its users (``deliver``)."""
    app.register_blueprint(bp)
    if any(app.config[key] is None for key in secrets):
        return
    hide_in_logs(app.config[key] for key in secrets)
    platform = app.extensions[channel] = build()
    register_delivery(app, channel, platform.deliver)


def init_app(app: Flask) -> None:
    """Register the channels that are on, and their shared send counter."""
    from app.channels import rest, slack, telegram  # each module registers its own blueprint

    sends = Counter(
        "chatbot_channel_sends",
        "Messages sent to customers through a platform's API, by channel and outcome.",
        ["channel", "outcome"],
        registry=app.extensions["metrics"].registry,
    )
    rest.init_app(app)
    telegram.init_app(app, sends)
    slack.init_app(app, sends)
