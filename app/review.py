"""The review inbox in the browser: ``/admin/review`` and the JSON calls its page makes.

The page itself holds no data, so a browser may load it without credentials; its script asks for
the admin token and sends it as ``Authorization: Bearer`` on every JSON call, as any admin client
does. The page keeps the chat page's Content-Security-Policy: scripts and styles from static files
only, charts as server-drawn SVG ``data:`` images.

Every database call runs off the event loop (app/offload.py), so a large inbox or a waiting write
lock never stalls the worker's other connections. Storage that cannot be written (a read-only file
system, the k8s and compose defaults) answers 503 with what to change, counted in
``chatbot_review_failures_total``. Messages past the log's retention are deleted here too (when the
log is off no writer sweeps them) and never served.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, make_response, render_template, request
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError

from app import charts
from app.admin import require_token
from app.errors import ApiError
from app.log_writer import RETENTION_SWEEP_INTERVAL, database_url, delete_expired
from app.offload import off_loop
from app.openapi import INBOX_PAGE, MAX_REVIEW_DAYS
from app.payload import field, read_json_object
from app.security import page_policy
from chatbot.data.intents import load_intents
from chatbot.errors import EditError, IntentsError
from chatbot.learning import review
from chatbot.learning.message_log import ConversationStore

bp = Blueprint("review", __name__, url_prefix="/admin/review")

PAGE_TITLE = "Review inbox"
ACTIONS = ("assign", "new_intent", "out_of_scope")


@bp.before_request
def guard() -> tuple[Response, int] | None:
    """Hide everything without an admin token; the JSON calls need the token itself."""
    if request.endpoint == "review.page":
        if current_app.config["ADMIN_TOKEN"] is None:
            raise ApiError(404, "not_found", "admin endpoints are disabled: set CHATBOT_ADMIN_TOKEN")
        return None
    return require_token()


@bp.get("")
def page() -> Response:
    """Serve the inbox page; its script loads the data with the token the reviewer types."""
    response = make_response(render_template("review.html", title=PAGE_TITLE))
    response.headers["Content-Security-Policy"] = page_policy(current_app.config["FRAME_ANCESTORS"])
    return response


@bp.get("/inbox")
def inbox() -> Response:
    """List the groups awaiting review and the intents they may join."""
    days, below = _window()
    groups, total = _with_store(lambda store: review.inbox_page(store, days, below, limit=INBOX_PAGE))
    return jsonify(groups=[group.to_dict() for group in groups], total=total, intents=_intent_tags())


@bp.get("/stats")
def stats() -> Response:
    """Return the fallback rate per day and the top intents, with their charts."""
    figures = _with_store(review.stats)
    per_day = [(row["day"][5:], row["rate"]) for row in figures["fallback_rate_per_day"]]
    tops = {
        window: [(row["intent"], row["count"]) for row in rows]
        for window, rows in figures["top_intents"].items()
    }
    return jsonify(
        stats=figures,
        charts={
            "fallback_rate": charts.data_url(charts.column_chart(per_day)),
            **{
                f"top_intents_{window}": charts.data_url(charts.bar_chart(rows))
                for window, rows in tops.items()
            },
        },
    )


@bp.post("/groups/<int:group_id>")
def decide(group_id: int) -> Response:
    """Apply a reviewer's decision to a group: assign, new_intent or out_of_scope."""
    payload = read_json_object({"application/json"})
    action = field(payload, "action")
    if action not in ACTIONS:
        raise ApiError(422, "invalid_field", f'"action" must be one of {", ".join(ACTIONS)}')
    phrase = _optional_text(payload, "phrase")
    data_path = current_app.config["DATA_PATH"]
    days, below = _window()

    def apply(store: ConversationStore) -> str:
        group = review.find_group(store, group_id, days, below)
        if action == "assign":
            return review.assign(store, group, data_path, _text(payload, "intent"), phrase)
        if action == "new_intent":
            return review.create_intent(
                store, group, data_path, _text(payload, "intent"), _text(payload, "response"), phrase
            )
        return review.mark_out_of_scope(store, group, data_path, phrase)

    try:
        message = _with_store(apply)
    except EditError as exc:  # written for the reviewer: names the phrase, intent or file at fault
        raise ApiError(422, "review_refused", str(exc)) from exc
    return jsonify(status="done", message=message)


def _window() -> tuple[int, float]:
    try:
        days = int(request.args.get("days", review.DEFAULT_DAYS))
        below = float(request.args.get("below", review.DEFAULT_BELOW))
    except ValueError as exc:
        raise ApiError(422, "invalid_field", '"days" must be a whole number and "below" a number') from exc
    if not (1 <= days <= MAX_REVIEW_DAYS and 0.0 <= below <= 1.0):
        raise ApiError(422, "invalid_field", f'"days" must be 1 to {MAX_REVIEW_DAYS} and "below" 0 to 1')
    return min(days, current_app.config["LOG_RETENTION_DAYS"]), below


def _text(payload: dict[str, Any], name: str) -> str:
    value = field(payload, name)
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f'"{name}" must be a string')
    return value


def _optional_text(payload: dict[str, Any], name: str) -> str | None:
    return _text(payload, name) if payload.get(name) not in (None, "") else None


def _intent_tags() -> list[str]:
    try:
        return sorted(intent.tag for intent in load_intents(current_app.config["DATA_PATH"]))
    except IntentsError as exc:
        raise ApiError(503, "intents_unavailable", f"cannot read the intents file: {exc}") from exc


def _with_store(work: Any) -> Any:
    """Run ``work(store)`` on this process's store, off the event loop; a storage fault is a 503."""
    app = current_app._get_current_object()
    try:
        return off_loop(lambda: work(review_store(app)))
    except SQLAlchemyError as exc:
        _failures(app).labels("database").inc()
        raise ApiError(503, "log_unavailable", "the conversation log's database is unavailable") from exc
    except OSError as exc:  # a read-only or full file system: the database, its lock or the intents
        _failures(app).labels("storage").inc()
        raise ApiError(
            503,
            "storage_unavailable",
            f"cannot write beside the conversation log or the intents file ({exc.strerror or exc}): "
            "review needs writable storage (a volume for the model folder, or CHATBOT_DATABASE_URL)",
        ) from exc


def _failures(app: Flask) -> Counter:
    failures = app.extensions.get("review_failures")
    if failures is None:
        failures = app.extensions["review_failures"] = Counter(
            "chatbot_review_failures",
            "Review calls answered 503 because storage failed, by what failed.",
            ["reason"],
            registry=app.extensions["metrics"].registry,
        )
    return failures


def review_store(app: Flask) -> ConversationStore:
    """Return this process's store for the review calls, made after the fork and migrated once."""
    cached = app.extensions.get("review_store")
    if cached is None or cached[0] != os.getpid():
        store = ConversationStore(database_url(app.config))
        store.migrate()
        app.extensions["review_store"] = cached = (os.getpid(), store, [0.0])
    _, store, next_sweep = cached
    if time.monotonic() >= next_sweep[0]:  # also when the log is off: no writer sweeps then
        delete_expired(store, dt.timedelta(days=app.config["LOG_RETENTION_DAYS"]))
        next_sweep[0] = time.monotonic() + RETENTION_SWEEP_INTERVAL
    return store
