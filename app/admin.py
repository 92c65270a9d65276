"""Operator endpoints, behind a bearer token: ``POST /admin/reload`` swaps in a new model and
``POST /admin/sessions/{id}/release`` hands a conversation back from a person to the bot."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from app import payload
from app.bot import current_bot
from app.errors import ApiError, error_response
from app.reload import conversations_after_reload, reload_model
from app.turns import release
from chatbot.errors import BundleError

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    """Hide the endpoints when no token is set, and refuse requests without the right one."""
    token = current_app.config["ADMIN_TOKEN"]
    if token is None:
        raise ApiError(404, "not_found", "admin endpoints are disabled: set CHATBOT_ADMIN_TOKEN")
    if not is_authorized(request.headers.get("Authorization", ""), token):
        response, status = error_response(401, "unauthorized", "send Authorization: Bearer <admin token>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="chatbot admin"'
        return response, status
    return None


@bp.post("/reload")
def reload() -> tuple[Response, int]:
    """Load the bundle at CHATBOT_MODEL again; 422 and the old model keeps serving when it is bad."""
    bot = current_bot()
    old = bot.dialogue.bundle.fingerprint
    restarts_workers = bot.restart_workers is not None
    try:
        bundle = reload_model(current_app, restarts_workers).bundle
    except BundleError as exc:  # its messages name the file and the fault, for the operator
        log.warning("model reload refused, still serving model %s: %s", old, exc)
        message = without_directories(str(exc), current_app.config["MODEL_PATH"])
        raise ApiError(422, "invalid_model", f"{message}; still serving model {old}") from exc
    model = {"fingerprint": bundle.fingerprint, "previous": old, "trained_at": bundle.created_at}
    conversations = conversations_after_reload(current_app, restarts_workers)
    if not restarts_workers:
        return jsonify(status="reloaded", model=model, conversations=conversations), 200
    bot.restart_workers()  # this worker already serves it; the others are replaced by fresh ones
    return jsonify(status="restarting_workers", model=model, conversations=conversations), 202


@bp.post("/sessions/<session_id>/release")
def release_session(session_id: str) -> Response:
    """Hand a conversation a person took over back to the bot."""
    release(payload.session_id(session_id))
    return jsonify(session_id=session_id, status="released")


def is_authorized(header: str, token: str) -> bool:
    """Check ``Bearer <token>`` in constant time, so timing does not reveal a prefix of the token."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def without_directories(message: str, model_path: str) -> str:
    """Name the model file by its name alone: the server's directories are nobody's business."""
    path = Path(model_path)
    for shown in sorted({model_path, str(path), str(path.resolve())}, key=len, reverse=True):
        message = message.replace(shown, path.name)
    return message
