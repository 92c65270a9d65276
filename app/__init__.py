"""The web layer: a Flask application factory serving the chatbot core over HTTP."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import (
    admin,
    api,
    channels,
    console,
    cors,
    errors,
    handoff,
    health,
    log_writer,
    metrics,
    openapi,
    pages,
    payload,
    ratelimit,
    review,
    security,
    timer,
)
from app.actions import WebhookClient
from app.bot import Bot
from app.config import app_settings
from app.reload import load_configured_dialogue
from app.sessions import build_session_store
from chatbot.dialogue.decision import Dialogue
from chatbot.errors import ChatbotError

EXIT_BAD_SETUP = 2  # as the CLI's: a bad model or setting, which the operator must fix


def create_app(test_config: Mapping[str, Any] | None = None, dialogue: Dialogue | None = None) -> Flask:
    """Build the app; the model is loaded here, once per process, and a bad one stops the start."""
    app = Flask(__name__)
    # Routing never redirects (/static//x, /healthz/): a redirect is built from the Host header,
    # which the client chooses, and would send a browser to any site.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.config.from_mapping(app_settings(os.environ))
    if test_config:
        app.config.update(test_config)
    if app.debug:  # the debugger and its tracebacks would hand a stranger the code and a console
        raise ValueError("debug mode is never allowed: the server answers every error as JSON")
    if dialogue is None:
        dialogue = load_configured_dialogue(app)
    sessions = build_session_store(
        app.config["REDIS_URL"], app.config["SESSION_TTL"], app.config["SESSION_MEMORY_BYTES"]
    )
    bot = Bot(dialogue=dialogue, sessions=sessions, webhooks=WebhookClient(app.config["ACTION_SECRET"]))
    app.extensions["chatbot"] = bot
    timer.init_app(app)  # first: the clock starts before any other hook can answer
    metrics.init_app(app, bot)
    log_writer.init_app(app)
    errors.init_app(app)
    payload.init_app(app)
    security.init_app(app)
    cors.init_app(app)
    ratelimit.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    openapi.init_app(app)
    handoff.init_app(app)
    console.init_app(app)
    channels.init_app(app)
    return app


def create_app_or_exit() -> Flask:
    """Build the app for gunicorn; a bad model or setting stops the start with one line, no traceback."""
    try:
        return create_app()
    except (ChatbotError, ValueError) as exc:  # both carry messages written for the operator
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_SETUP) from exc
