"""Slack: the Events API calls ``POST /webhooks/slack/events``; we answer by ``chat.postMessage``.

Every request is checked against the app's signing secret: ``v0=`` HMAC-SHA256 of
``v0:<timestamp>:<body>``, the timestamp within five minutes (a replayed or forged request: 401).
``url_verification`` answers the challenge. A message from a bot (ourselves included) is ignored,
and an event id seen before (Slack retries after 3 s, saying so in ``X-Slack-Retry-Num``) is
answered once. Each person in each channel is a session (``slack:<channel>:<user>``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import Counter

from app.channels import PlatformChannel, channel_session, platform_blueprint, start_platform
from app.errors import ApiError
from app.payload import message_text, read_json_object

CHANNEL = "slack"
MAX_AGE_SECONDS = 300  # Slack's own advice: older requests may be replays
SECRETS = ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN")  # the settings that turn the channel on
bp = platform_blueprint(CHANNEL, "/webhooks/slack", SECRETS)


class Slack(PlatformChannel):
    """The channel's settings, besides the sender and the event ids already answered."""

    channel = CHANNEL

    def __init__(self, app: Flask, sends: Counter) -> None:
        super().__init__(app, sends)
        self.signing_secret: str = app.config["SLACK_SIGNING_SECRET"]
        self.post_url = app.config["SLACK_API_URL"].rstrip("/") + "/chat.postMessage"
        self.headers = {"Authorization": f"Bearer {app.config['SLACK_BOT_TOKEN']}"}

    def deliver(self, channel_id: str, text: str, quick_replies: list[str]) -> None:
        """Post a message in a channel; quick replies are listed (buttons would need interactivity)."""
        if quick_replies:
            text += "\n" + " · ".join(quick_replies)
        self.sender.send(self.post_url, {"channel": channel_id, "text": text}, self.headers)

    def signed(self, timestamp: str, body: bytes, signature: str, now: float) -> bool:
        """Say whether the request is Slack's: a fresh timestamp and a matching v0 signature."""
        if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_AGE_SECONDS:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())


def init_app(app: Flask, sends: Counter) -> None:
    """Register the endpoint; it answers 404 until the signing secret and the bot token are set."""
    start_platform(app, bp, CHANNEL, SECRETS, lambda: Slack(app, sends))


@bp.post("/events")
def events() -> Response:
    """Answer one Events API request."""
    slack: Slack = current_app.extensions["slack"]
    body = request.get_data(cache=True)  # 413 past the body limit, before any HMAC work
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not slack.signed(timestamp, body, request.headers.get("X-Slack-Signature", ""), time.time()):
        raise ApiError(401, "unauthorized", "the request is not signed by Slack, or is over five minutes old")
    payload = read_json_object({"application/json"})
    kind = payload.get("type")
    if kind == "url_verification":
        return jsonify(challenge=str(payload.get("challenge", "")))
    if kind != "event_callback":
        return jsonify(status="ignored")
    event_id, event = payload.get("event_id"), payload.get("event")
    if not isinstance(event_id, str) or not event_id or not isinstance(event, dict):
        raise ApiError(422, "invalid_field", 'an event_callback needs "event_id" and an "event" object')
    if not _from_a_person(event, payload):
        return jsonify(status="ignored")
    channel_id, user_id = _text_field(event, "channel"), _text_field(event, "user")
    text = message_text(event.get("text"), "event.text")
    return slack.answer(event_id, channel_session(CHANNEL, f"{channel_id}:{user_id}"), text, channel_id)


def _from_a_person(event: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Say whether the event is a person's new message (not a bot's, an edit or a join)."""
    if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
        return False
    ours = {item.get("user_id") for item in payload.get("authorizations") or [] if isinstance(item, dict)}
    return event.get("user") not in ours


def _text_field(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ApiError(422, "invalid_field", f'"event.{name}" must be a Slack id')
    return value
