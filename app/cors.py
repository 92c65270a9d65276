"""Answer cross-origin requests from the origins in CHATBOT_CORS_ORIGINS, and only those."""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Accept"
PREFLIGHT_MAX_AGE = "600"


def init_app(app: Flask) -> None:
    """Add CORS headers to responses for allowed origins; others get none."""
    origins = frozenset(app.config["CORS_ORIGINS"])
    if not origins:
        return  # no cross-origin access: nothing to add to any response
    any_origin = "*" in origins

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        if not any_origin:
            response.vary.add("Origin")  # the answer differs by origin: caches must keep them apart
        origin = request.headers.get("Origin", "").rstrip("/")
        if not origin or not (any_origin or origin in origins):
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
