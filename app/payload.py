"""Read and check request bodies, turning every problem into a clear ApiError.

The fields' rules come from the API description (app/openapi.py); what JSON Schema cannot say
(lengths after NFKC, a batch's characters in all) is checked here too.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any
from urllib.parse import unquote

from flask import Flask, current_app, request

from app.errors import ApiError
from app.openapi import MAX_BATCH_CHARS, contract
from chatbot.data.builtin_entities import check_timezone
from chatbot.learning.message_log import MAX_SESSION_CHARS
from chatbot.text.tokens import normalize

JSON_TYPES = {"application/json", "text/plain"}  # text/plain: what the original clients send
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def init_app(app: Flask) -> None:
    """Read chunked bodies whole before any view parses them."""
    app.before_request(buffer_chunked_body)


def buffer_chunked_body() -> None:
    """Read a chunked body into memory (at most the body limit) and give it a Content-Length.

    Without a length werkzeug cuts a body at MAX_CONTENT_LENGTH instead of refusing it (a cut
    JSON then read as "invalid JSON"), and a malformed chunk raises the server's own parse error
    from deep inside a view. Read here, both get their status: 413 and 400.
    """
    environ = request.environ
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body = environ["wsgi.input"].read(limit + 1)
    # The WSGI server's reader raises its own classes for a malformed chunk (gunicorn's
    # InvalidChunkSize is no OSError): whatever it raises, the client sent a broken body.
    except Exception as exc:
        raise ApiError(400, "invalid_body", "the chunked request body is malformed") from exc
    if len(body) > limit:
        raise ApiError(413, "request_entity_too_large", f"the body is larger than the limit of {limit} bytes")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING")


def read_json_object(accepted_types: frozenset[str] | set[str] = JSON_TYPES) -> dict[str, Any]:
    """Parse the body as a JSON object."""
    if request.mimetype not in accepted_types:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {' or '.join(sorted(accepted_types))}, not {request.mimetype or 'no content type'}",
        )
    body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    if not body.strip():
        raise ApiError(400, "empty_body", "the request body is empty: send a JSON object")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", "the JSON is nested too deeply") from exc
    except ValueError as exc:  # Python refuses to convert integers of more than 4,300 digits
        raise ApiError(400, "invalid_json", "a number in the body has too many digits") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", f"the body must be a JSON object, not {json_type(value)}")
    return value


def read_legacy_data() -> Any:
    """Return the ``data`` value of a /predict request in any form the original clients send."""
    if not request.content_length and "data" in request.args:
        return request.args["data"]
    if request.mimetype in FORM_TYPES:
        if "data" not in request.form:
            raise ApiError(400, "missing_field", 'the form has no "data" field')
        return request.form["data"]
    data = field(read_json_object(), "data")
    # The original curl line sends "What's%20up?" in JSON: its percent escapes are decoded.
    return unquote(data) if isinstance(data, str) else data


def field(payload: dict[str, Any], name: str) -> Any:
    """Return a required field of a JSON object."""
    if name not in payload:
        raise ApiError(400, "missing_field", f'the JSON object has no "{name}" field')
    return payload[name]


def message_text(value: Any, name: str) -> str:
    """Check that a message is a non-empty string within the length limit (the Message schema)."""
    return _checked_message(value, name)[0]


def message_texts(value: Any, name: str) -> list[str]:
    """Check a batch (the Texts schema), then its characters after NFKC in all."""
    spec = contract()
    if not isinstance(value, list) or not spec.validators["Texts"].is_valid(_encodable(value)):
        schema = spec.schema("Texts")
        if not isinstance(value, list) or not schema["minItems"] <= len(value) <= schema["maxItems"]:
            raise ApiError(
                422,
                "invalid_field",
                f'"{name}" must be an array of {schema["minItems"]} to {schema["maxItems"]} strings',
            )
    checked = [_checked_message(text, f"{name}[{i}]") for i, text in enumerate(value)]
    total = sum(length for _, length in checked)
    if total > MAX_BATCH_CHARS:
        raise ApiError(
            413,
            "batch_too_large",
            f'"{name}" has {total} characters in all once normalised (NFKC); the limit is {MAX_BATCH_CHARS}: '
            "send fewer or shorter texts per request",
        )
    return [text for text, _ in checked]


def _checked_message(value: Any, name: str) -> tuple[str, int]:
    """Return the message and its length once normalised, the work it costs; raise ApiError."""
    spec = contract()
    limit = spec.schema("Message")["maxLength"]
    if not spec.validators["Message"].is_valid(_encodable(value)):
        error = next(spec.validators["Message"].iter_errors(_encodable(value)))
        rule = error.schema_path[-1]  # the keyword of the Message schema that refused it
        if rule == "type":
            raise ApiError(422, "invalid_field", f'"{name}" must be a string, not {json_type(value)}')
        if rule in ("minLength", "pattern"):
            raise ApiError(422, "empty_message", f'"{name}" is empty')
        raise ApiError(422, "message_too_long", f'"{name}" has {len(value)} characters; the limit is {limit}')
    # NFKC turns one character into up to 18 (U+FDFA): the limit holds after it too, or a short
    # message could cost the work of a long one.
    length = len(normalize(value))
    if length > limit:
        raise ApiError(
            422,
            "message_too_long",
            f'"{name}" has {length} characters once normalised (NFKC); the limit is {limit}',
        )
    return value, length


def session_id(value: Any) -> str:
    """Check a client's session id against the SessionId schema."""
    if not contract().validators["SessionId"].is_valid(_encodable(value)):
        raise ApiError(
            422, "invalid_field", f'"session_id" must be 1-{MAX_SESSION_CHARS} letters, digits or . _ : -'
        )
    return value


def time_zone(payload: dict[str, Any]) -> str | None:
    """Return the request's optional ``time_zone`` (the TimeZone schema, and a zone this server knows)."""
    if "time_zone" not in payload:
        return None
    value = payload["time_zone"]
    if not contract().validators["TimeZone"].is_valid(_encodable(value)):
        raise ApiError(
            422, "invalid_field", '"time_zone" must be an IANA time zone name such as "Europe/Berlin"'
        )
    try:
        return check_timezone(value)
    except ValueError as exc:
        raise ApiError(422, "unknown_time_zone", f'"time_zone": {exc}') from exc


def json_type(value: Any) -> str:
    """Name a JSON value's type as the client wrote it."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    """Return a value as the schema validator can read it: JSON may carry lone UTF-16 surrogates,
    which cannot be encoded as UTF-8, so they stand as U+FFFD (the same length) while it checks."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value
