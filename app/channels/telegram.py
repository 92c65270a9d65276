"""Telegram: the Bot API calls ``POST /webhooks/telegram`` with each update; we answer by ``sendMessage``.

Telegram sends the secret given to ``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token``; a request
without it is refused (401). Each chat is a session (``telegram:<chat id>``); quick replies become
a one-time reply keyboard. An update id seen before (Telegram retries when unsure) is answered once.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import Counter

from app.channels import PlatformChannel, channel_session, platform_blueprint, start_platform
from app.errors import ApiError
from app.payload import message_text, read_json_object

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRETS = ("TELEGRAM_TOKEN", "TELEGRAM_SECRET")  # the settings that turn the channel on
bp = platform_blueprint(CHANNEL, "/webhooks/telegram", SECRETS)


class Telegram(PlatformChannel):
    """The channel's settings, besides the sender and the update ids already answered."""

    channel = CHANNEL

    def __init__(self, app: Flask, sends: Counter) -> None:
        super().__init__(app, sends)
        self.secret: str = app.config["TELEGRAM_SECRET"]
        base = app.config["TELEGRAM_API_URL"].rstrip("/")
        self.send_url = f"{base}/bot{app.config['TELEGRAM_TOKEN']}/sendMessage"

    def deliver(self, chat_id: str, text: str, quick_replies: list[str]) -> None:
        """Send a message to a chat, with its quick replies as a reply keyboard."""
        body: dict[str, Any] = {"chat_id": int(chat_id), "text": text}
        if quick_replies:
            keyboard = [[{"text": label}] for label in quick_replies]
            body["reply_markup"] = {"keyboard": keyboard, "one_time_keyboard": True, "resize_keyboard": True}
        self.sender.send(self.send_url, body)


def init_app(app: Flask, sends: Counter) -> None:
    """Register the webhook; it answers 404 until the bot's token and the webhook's secret are set."""
    start_platform(app, bp, CHANNEL, SECRETS, lambda: Telegram(app, sends))


@bp.post("")
def webhook() -> Response:
    """Answer one update: a text message gets the bot's answer; anything else is acknowledged."""
    telegram: Telegram = current_app.extensions["telegram"]
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), telegram.secret.encode()):
        raise ApiError(401, "unauthorized", f"send the webhook's secret token in {SECRET_HEADER}")
    update = read_json_object({"application/json"})
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise ApiError(422, "invalid_field", '"update_id" must be an integer')
    message = update.get("message")
    if not isinstance(message, dict) or "text" not in message:
        return jsonify(status="ignored")  # edits, joins, stickers...: nothing to answer
    chat_id = _chat_id(message)
    text = message_text(message["text"], "message.text")
    return telegram.answer(str(update_id), channel_session(CHANNEL, chat_id), text, chat_id)


def _chat_id(message: dict[str, Any]) -> str:
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        raise ApiError(422, "invalid_field", '"message.chat.id" must be an integer')
    return str(chat_id)
