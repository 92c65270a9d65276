"""The chat page at ``/``: the same widget that other sites embed, shown inline."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template

bp = Blueprint("pages", __name__)

PAGE_TITLE = "Chat assistant"
# The page runs only its own static files, so the browser may refuse everything else: if bot text
# were ever put into the page as HTML, an injected script or event handler still would not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; object-src 'none'"
)


@bp.get("/")
def chat_page() -> Response:
    """Serve the chat page."""
    response = make_response(render_template("chat.html", title=PAGE_TITLE))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
