"""The operator console at ``/admin/inbox``, and the live events a customer's widget listens to.

Operators open the page, type the admin token and their name, and see the conversations handed
to a person, updated live (the page long-polls ``/admin/inbox/events``: a fetch can carry the token,
an EventSource cannot). One operator claims a conversation, replies, and gives it back to the bot.
The widget listens to ``/api/v1/sessions/<id>/events`` (Server-Sent Events) while its conversation
is handed over, so a reply shows within a second, whichever replica or worker the operator used
when Redis is shared (app/inbox.py). The page keeps the review page's Content-Security-Policy.

Every waiting request holds a greenlet and, with Redis, a connection: at most MAX_LISTENERS per
process wait at once (503 beyond), each for at most WAIT_SECONDS / STREAM_SECONDS.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Blueprint, Flask, Response, jsonify, make_response, render_template, request

from app import payload
from app.admin import require_token
from app.errors import ApiError
from app.handoff import closed, current_inbox, operator_wrote
from app.inbox import INBOX_TOPIC, MAX_LISTENERS, Conversation, Inbox, session_topic
from app.log_writer import log_operator_reply
from app.openapi import OPERATOR_NAME
from app.payload import field, message_text, read_json_object
from app.security import page_policy
from app.turns import release

bp = Blueprint("console", __name__, url_prefix="/admin/inbox")
events_bp = Blueprint("customer_events", __name__)

PAGE_TITLE = "Operator console"
WAIT_SECONDS = 20.0  # one long poll of the console; the page asks again at once
STREAM_SECONDS = 30.0  # one SSE response; the browser reconnects with Last-Event-ID
HEARTBEAT_SECONDS = 10.0  # a comment line on a quiet stream keeps proxies from closing it
OPERATOR_PATTERN = re.compile(OPERATOR_NAME)
_listeners = threading.BoundedSemaphore(MAX_LISTENERS)


def init_app(app: Flask) -> None:
    """Serve the console and the customers' event streams (404 until an admin token is set)."""
    app.register_blueprint(bp)
    app.register_blueprint(events_bp)


@bp.before_request
def guard() -> tuple[Response, int] | None:
    """The page loads without credentials (it holds no data); the JSON calls need the token."""
    _inbox()
    return None if request.endpoint == "console.page" else require_token()


@bp.get("")
def page() -> Response:
    """Serve the console page; its script asks for the token and the operator's name."""
    response = make_response(render_template("console.html", title=PAGE_TITLE))
    response.headers["Content-Security-Policy"] = page_policy("'none'")
    return response


@bp.get("/conversations")
def conversations() -> Response:
    """List the conversations handed to a person, the longest waiting first, and the events cursor."""
    inbox = _inbox()
    cursor = _redis(lambda: inbox.cursor(INBOX_TOPIC))
    found = _redis(inbox.open_conversations)
    return jsonify(conversations=[conversation.to_dict() for conversation in found], cursor=cursor)


@bp.get("/conversations/<session_id>")
def conversation(session_id: str) -> Response:
    """Return one conversation with its whole transcript."""
    inbox = _inbox()
    held = _redis(lambda: inbox.get(payload.session_id(session_id)))
    if held is None:
        raise ApiError(404, "not_found", f"session {session_id} is not waiting for a person")
    found, entries = held
    return jsonify(conversation=found.to_dict(), transcript=[vars(entry) for entry in entries])


@bp.post("/conversations/<session_id>/claim")
def claim(session_id: str) -> Response:
    """Take a conversation: from now on only this operator replies to it (409 if another has it)."""
    inbox, operator = _inbox(), _operator(read_json_object({"application/json"}))
    found = _redis(lambda: inbox.claim(payload.session_id(session_id), operator))
    _check_holder(found, session_id, operator)
    _redis(lambda: inbox.publish(INBOX_TOPIC, {"type": "changed", "session_id": session_id}))
    return jsonify(conversation=found.to_dict())


@bp.post("/conversations/<session_id>/reply")
def reply(session_id: str) -> Response:
    """Send the customer a reply from the operator who has the conversation."""
    body = read_json_object({"application/json"})
    inbox, operator = _inbox(), _operator(body)
    text = message_text(field(body, "text"), "text")
    found = _redis(lambda: inbox.get(payload.session_id(session_id)))
    conversation = _check_holder(found[0] if found else None, session_id, operator)
    _redis(lambda: operator_wrote(inbox, conversation, operator, text))
    log_operator_reply(text, session_id, operator)
    return jsonify(status="sent")


@bp.post("/conversations/<session_id>/release")
def give_back(session_id: str) -> Response:
    """Give the conversation back to the bot (the operator who has it, or anyone while it waits)."""
    inbox, operator = _inbox(), _operator(read_json_object({"application/json"}))
    found = _redis(lambda: inbox.get(payload.session_id(session_id)))
    if found is not None and found[0].operator not in (None, operator):
        raise ApiError(409, "claimed", f"{found[0].operator} has this conversation")
    try:
        release(session_id)
    except ApiError as exc:
        if exc.status != 409 or found is None:
            raise
        closed(session_id)  # the session expired while it waited: only the inbox still held it
    return jsonify(session_id=session_id, status="released")


@bp.get("/events")
def inbox_events() -> Response:
    """Wait up to WAIT_SECONDS for a change of the inbox after ``cursor``; return the changes."""
    inbox = _inbox()
    cursor = request.args.get("cursor") or _redis(lambda: inbox.cursor(INBOX_TOPIC))
    events, cursor = _listen(inbox, INBOX_TOPIC, cursor, WAIT_SECONDS)
    return jsonify(events=[event for _, event in events], cursor=cursor)


@events_bp.get("/api/v1/sessions/<session_id>/events")
def customer_events(session_id: str) -> Response:
    """Stream a handed-over conversation's events to the customer's widget (text/event-stream).

    Anyone who knows the session id may listen, as anyone who knows it may write into it.
    """
    inbox = _inbox()
    topic = session_topic(payload.session_id(session_id))
    if _redis(lambda: inbox.get(session_id)) is None:  # nothing to wait for: no stream is held open
        raise ApiError(404, "not_handed_over", f"session {session_id} is not waiting for a person")
    # The browser sends Last-Event-ID when it reconnects; the widget passes ?cursor= after a reload.
    given = request.headers.get("Last-Event-ID") or request.args.get("cursor")
    cursor = given or _redis(lambda: inbox.cursor(topic))
    if not _listeners.acquire(blocking=False):
        raise ApiError(503, "too_many_listeners", "too many live connections: try again shortly")

    def stream(cursor: str) -> Iterator[str]:
        try:
            yield "retry: 1000\n\n"  # reconnect after a second when the stream ends
            ends = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < ends:
                try:
                    try:
                        events, cursor = inbox.wait(topic, cursor, HEARTBEAT_SECONDS)
                    except ValueError:  # a cursor of another store (the server moved to Redis): from now
                        cursor, events = inbox.cursor(topic), []
                except redis.RedisError:
                    return  # the browser reconnects in a second
                for event_id, event in events:
                    yield f"id: {event_id}\ndata: {json.dumps(event)}\n\n"
                if not events:
                    yield ": still here\n\n"
        finally:
            _listeners.release()

    response = Response(stream(cursor), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx must pass each event on at once
    return response


def _listen(inbox: Inbox, topic: str, cursor: str, timeout: float) -> tuple[list[tuple[str, dict]], str]:
    if not _listeners.acquire(blocking=False):
        raise ApiError(503, "too_many_listeners", "too many live connections: try again shortly")
    try:
        return _redis(lambda: inbox.wait(topic, cursor, timeout))
    except ValueError as exc:
        raise ApiError(422, "invalid_field", '"cursor" is not one this server gave') from exc
    finally:
        _listeners.release()


def _inbox() -> Inbox:
    inbox = current_inbox()
    if inbox is None:
        raise ApiError(404, "not_found", "the operator console is off: set CHATBOT_ADMIN_TOKEN")
    return inbox


def _operator(body: dict[str, Any]) -> str:
    """Return the operator's name from the JSON body: who claims, replies and gives back."""
    name = field(body, "operator")
    if not isinstance(name, str) or not OPERATOR_PATTERN.fullmatch(name):
        raise ApiError(
            422, "invalid_field", '"operator" must be a name of 1 to 64 letters, digits, spaces or .\'-'
        )
    return name


def _check_holder(found: Conversation | None, session_id: str, operator: str) -> Conversation:
    if found is None:
        raise ApiError(404, "not_found", f"session {session_id} is not waiting for a person")
    if found.operator != operator:
        holder = found.operator or "nobody"
        raise ApiError(409, "claimed", f"{holder} has this conversation: claim it before replying")
    return found


def _redis(work: Any) -> Any:
    """Run inbox work for the console: a shared inbox that cannot be reached is a 503."""
    try:
        return work()
    except redis.RedisError as exc:
        raise ApiError(503, "inbox_unavailable", "the shared inbox (Redis) is unavailable") from exc
