"""Security headers on every response, and the chat page's Content-Security-Policy.

The page may be framed only by CHATBOT_FRAME_ANCESTORS (``'self'`` by default). Sites that embed
the widget load it with a script tag, not a frame, so they need no entry there. Admin pages
(everything under ``/admin``) are never framed, whatever their own policy says: a framing site
could otherwise trick a signed-in operator into clicking (clickjacking).
"""

from __future__ import annotations

from flask import Flask, Response, request

# The page runs only its own static files, so the browser may refuse everything else: if bot text
# were ever put into the page as HTML, an injected script or event handler still would not run.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
# Everything else is data or a static file: nothing in it may run or be framed.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
# On every response; the page replaces the policy with its own.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a JSON answer never runs as script
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": DATA_POLICY,
}


def page_policy(frame_ancestors: str) -> str:
    """Return the chat page's policy, allowing the configured sites to frame it."""
    return f"{PAGE_POLICY}; frame-ancestors {frame_ancestors}"


ADMIN_PREFIX = "/admin"


def never_framed(policy: str) -> str:
    """Return a Content-Security-Policy with its frame-ancestors directive replaced by 'none'."""
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    kept = [directive for directive in directives if directive.split()[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, "frame-ancestors 'none'"])


def init_app(app: Flask) -> None:
    """Add the headers that keep browsers from sniffing, framing or leaking our responses."""

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # One pass over the headers, not one per name: Headers.setdefault scans them all each time.
        present = {name.lower() for name, _ in response.headers}
        for name, value in SECURITY_HEADERS.items():
            if name.lower() not in present:
                response.headers.add(name, value)
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            response.headers["Content-Security-Policy"] = never_framed(
                response.headers["Content-Security-Policy"]
            )
            response.headers["X-Frame-Options"] = "DENY"  # for browsers without frame-ancestors
        return response
