"""Answer cross-origin requests from the origins in CHATBOT_CORS_ORIGINS, and only those."""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Accept"
PREFLIGHT_MAX_AGE = "600"


def init_app(app: Flask) -> None:
    """Add CORS headers to responses for allowed origins; others get none."""
    origins = frozenset(app.config["CORS_ORIGINS"])

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        response.vary.add("Origin")
        origin = request.headers.get("Origin", "").rstrip("/")
        if not origin or ("*" not in origins and origin not in origins):
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
