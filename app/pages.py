"""The chat page at ``/``: the same widget that other sites embed, shown inline."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, make_response, render_template

from app.bot import current_bot
from app.security import page_policy

bp = Blueprint("pages", __name__)

PAGE_TITLE = "Chat assistant"


@bp.get("/")
def chat_page() -> Response:
    """Serve the chat page, in the bot's language and with its widget texts."""
    bundle = current_bot().dialogue.bundle
    strings = bundle.widget_strings
    response = make_response(
        render_template(
            "chat.html",
            title=strings.get("title", PAGE_TITLE),
            language=bundle.config.language,
            widget_strings=strings,
        )
    )
    response.headers["Content-Security-Policy"] = page_policy(current_app.config["FRAME_ANCESTORS"])
    return response
