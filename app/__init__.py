"""The web layer: a Flask application factory serving the chatbot core over HTTP."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import admin, api, cors, errors, health, metrics, pages
from app.bot import Bot
from app.config import app_settings
from app.reload import load_configured_dialogue
from app.sessions import build_session_store
from chatbot.dialogue import Dialogue


def create_app(test_config: Mapping[str, Any] | None = None, dialogue: Dialogue | None = None) -> Flask:
    """Build the app; the model is loaded here, once per process, and a bad one stops the start."""
    app = Flask(__name__)
    app.config.from_mapping(app_settings(os.environ))
    if test_config:
        app.config.update(test_config)
    if dialogue is None:
        dialogue = load_configured_dialogue(app)
    bot = Bot(
        dialogue=dialogue, sessions=build_session_store(app.config["REDIS_URL"], app.config["SESSION_TTL"])
    )
    app.extensions["chatbot"] = bot
    metrics.init_app(app, bot)  # first: its timer starts before any other hook can answer
    errors.init_app(app)
    cors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    return app
