"""Rasa's REST channel: ``POST /webhooks/rest/webhook``, so front-ends written for Rasa work unchanged.

The request is ``{"sender": ..., "message": ..., "metadata": {...}}``; the answer is a list of
``{"recipient_id", "text"}`` messages, the last carrying the quick replies as Rasa's ``buttons``.
While a person has the conversation the bot is silent, and the operators' replies written since
the customer's last message come first in the list (REST has no way to push them).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from app.channels import channel_session
from app.errors import ApiError
from app.handoff import Recipient, picked_up
from app.openapi import MAX_SENDER_CHARS
from app.payload import JSON_TYPES, field, json_type, message_text, read_json_object
from app.turns import converse

bp = Blueprint("rest_channel", __name__, url_prefix="/webhooks/rest")

CHANNEL = "rest"


def init_app(app: Flask) -> None:
    """Serve the channel; it answers 404 when CHATBOT_REST_CHANNEL=off."""
    app.register_blueprint(bp)


@bp.before_request
def require_on() -> None:
    """Answer 404 while the channel is off, as for a route that does not exist."""
    if not current_app.config["REST_CHANNEL"]:
        raise ApiError(404, "not_found", "the REST channel is off: CHATBOT_REST_CHANNEL=off")


@bp.get("/")
def health() -> Response:
    """Answer Rasa's channel health check."""
    return jsonify(status="ok")


@bp.post("/webhook")
def webhook() -> Response:
    """Answer one message from a Rasa-style client with the bot's messages for it."""
    payload = read_json_object(JSON_TYPES)
    sender = _sender(field(payload, "sender"))
    message = message_text(field(payload, "message"), "message")
    metadata = payload.get("metadata", {})
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(422, "invalid_field", f'"metadata" must be an object, not {json_type(metadata)}')
    session = channel_session(CHANNEL, sender)
    answer = converse(session, message, payload, Recipient(CHANNEL))
    messages: list[dict[str, Any]] = [{"recipient_id": sender, "text": text} for text in picked_up(session)]
    if answer["response"]:
        messages.append({"recipient_id": sender, "text": answer["response"]})
    if answer["quick_replies"] and messages:
        messages[-1]["buttons"] = [{"title": label, "payload": label} for label in answer["quick_replies"]]
    return jsonify(messages)


def _sender(value: Any) -> str:
    # Rasa front-ends send a string (some a number); either names the conversation.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SENDER_CHARS:
        raise ApiError(
            422, "invalid_field", f'"sender" must be a string of 1 to {MAX_SENDER_CHARS} characters'
        )
    return value
