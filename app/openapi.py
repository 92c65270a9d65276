"""Serve the API's OpenAPI 3 description, ``app/openapi.json``, at ``/openapi.json``.

The file is written by hand and kept next to the code; tests/test_openapi.py checks that it
describes every route and only routes that exist, and the fuzz test holds responses to it.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("openapi", __name__)
SPEC_FILE = "openapi.json"


@bp.get("/openapi.json")
def openapi() -> Response:
    """Serve the OpenAPI description."""
    with current_app.open_resource(SPEC_FILE, "rb") as spec:
        return Response(spec.read(), mimetype="application/json")
