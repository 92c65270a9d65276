"""The per-process chatbot state that views reach through ``current_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from app.actions import WebhookClient
from app.sessions import SessionStore
from chatbot.dialogue.decision import Dialogue


@dataclass
class Bot:
    """The loaded dialogue (model included) and the conversation store of this process.

    ``dialogue`` is replaced whole by a model reload; a view reads it once per request, so each
    answer comes from one model.
    """

    dialogue: Dialogue
    sessions: SessionStore
    webhooks: WebhookClient  # actions and the handoff hook, with this process's circuit breakers
    # Under gunicorn: ask the master to restart every worker on the new model (set by post_fork).
    restart_workers: Callable[[], None] | None = None


def current_bot() -> Bot:
    """Return the bot of the app handling this request."""
    return current_app.extensions["chatbot"]
