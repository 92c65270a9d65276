"""The per-process chatbot state that views reach through ``current_app``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.sessions import SessionStore
from chatbot.dialogue import Dialogue


@dataclass(frozen=True)
class Bot:
    """The loaded dialogue (model included) and the conversation store of this process."""

    dialogue: Dialogue
    sessions: SessionStore


def current_bot() -> Bot:
    """Return the bot of the app handling this request."""
    return current_app.extensions["chatbot"]
