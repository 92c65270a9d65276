"""The web layer: a Flask application factory serving the chatbot core over HTTP."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import api, cors, errors, health, pages
from app.bot import Bot
from app.config import app_settings
from app.sessions import MemorySessionStore
from chatbot.dialogue import Dialogue, load_dialogue


def create_app(test_config: Mapping[str, Any] | None = None, dialogue: Dialogue | None = None) -> Flask:
    """Build the app; the model is loaded here, once per process, and a bad one stops the start."""
    app = Flask(__name__)
    app.config.from_mapping(app_settings(os.environ))
    if test_config:
        app.config.update(test_config)
    if dialogue is None:
        dialogue = load_dialogue(app.config["MODEL_PATH"], app.config["THRESHOLD"], app.config["ENGINE"])
    app.extensions["chatbot"] = Bot(dialogue=dialogue, sessions=MemorySessionStore(app.config["SESSION_TTL"]))
    errors.init_app(app)
    cors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    return app
