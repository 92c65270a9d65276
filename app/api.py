"""The chatbot endpoints: the original ``/predict`` and the JSON API under ``/api/v1``."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from app.bot import current_bot
from app.log_writer import log_replies
from app.metrics import observe_replies
from app.payload import (
    field,
    message_text,
    message_texts,
    read_json_object,
    read_legacy_data,
    session_id,
    time_zone,
)
from app.turns import converse
from chatbot.dialogue.turn import Step, parse_result, take_turn, take_turns

bp = Blueprint("api", __name__)


@bp.post("/predict")
def predict() -> Response:
    """Answer the original clients: plain text, or the parse result when JSON is accepted."""
    text = message_text(read_legacy_data(), "data")
    step = answer(text)
    log_replies([text], [step.reply])
    if wants_json():
        return jsonify(parse_result(text, step))
    return Response(step.reply.response, mimetype="text/plain")


@bp.post("/api/v1/parse")
def parse() -> Response:
    """Classify one text (``text``) or a batch (``texts``) without conversation context."""
    payload = read_json_object({"application/json"})
    zone = time_zone(payload)
    if "texts" in payload:
        texts = message_texts(payload["texts"], "texts")
        steps = take_turns(current_bot().dialogue, texts, zone)
        replies = [step.reply for step in steps]
        observe_replies(replies)
        log_replies(texts, replies, payload=payload)
        return jsonify(results=[parse_result(text, step) for text, step in zip(texts, steps, strict=True)])
    text = message_text(field(payload, "text"), "text")
    step = answer(text, zone)
    log_replies([text], [step.reply], payload=payload)
    return jsonify(parse_result(text, step))


@bp.post("/api/v1/chat")
def chat() -> Response:
    """Answer a message in a conversation, honouring and updating its context."""
    payload = read_json_object({"application/json"})
    message = message_text(field(payload, "message"), "message")
    session = session_id(payload["session_id"]) if "session_id" in payload else uuid.uuid4().hex
    return jsonify(session_id=session, **converse(session, message, payload, time_zone=time_zone(payload)))


def answer(text: str, zone: str | None = None) -> Step:
    """Reply to one message with no conversation (no webhook is called) and count it in the metrics;
    dates are read in ``zone`` (None: the bot's time zone)."""
    step = take_turn(current_bot().dialogue, text, time_zone=zone)
    observe_replies([step.reply])
    return step


def wants_json() -> bool:
    """Say whether the client prefers JSON to plain text (most send ``*/*``: plain text)."""
    if "json" not in request.headers.get("Accept", ""):
        return False  # skips parsing the Accept header on the common path
    return request.accept_mimetypes.best_match(["text/plain", "application/json"]) == "application/json"
