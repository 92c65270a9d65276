"""Give every error the same JSON shape: ``{"error": {"code", "message"}}``, never an HTML page."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from app.security import SECURITY_HEADERS

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client error with a status, a stable code and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """Build the JSON error body."""
    return jsonify(error={"code": code, "message": message}), status


def raw_error_response(status: int, reason: str, message: str) -> bytes:
    """Return a whole HTTP response with the JSON error body and the security headers.

    For what the server refuses before the app sees it (a bad request line, headers too large),
    where gunicorn would write an HTML page without our headers.
    """
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = {"Connection": "close", "Content-Type": "application/json", **SECURITY_HEADERS}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def init_app(app: Flask) -> None:
    """Register the handlers that turn every error into JSON."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> tuple[Response, int]:
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> tuple[Response, int]:
        code = (error.name or "error").lower().replace(" ", "_")
        response, status = error_response(error.code or 500, code, error.description or error.name)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")  # the details go to the log, never to the client
        return error_response(500, "internal_server_error", InternalServerError.description)
