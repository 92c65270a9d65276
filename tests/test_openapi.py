"""The OpenAPI description at /openapi.json describes every route, and only routes that exist."""

from __future__ import annotations

import json
import re

from app.openapi import SPEC_FILE
from tests.support import ROOT

AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every route; nobody calls them on purpose


def described(spec: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, operations in spec["paths"].items() for method in operations}


def test_every_route_is_described_and_every_description_is_a_route(app) -> None:
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - AUTOMATIC_METHODS
    }
    spec = json.loads((ROOT / "app" / SPEC_FILE).read_text())
    assert described(spec) == routes


def test_the_description_is_served(client) -> None:
    response = client.get("/openapi.json")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert response.get_json() == json.loads((ROOT / "app" / SPEC_FILE).read_text())
    assert response.get_json()["openapi"].startswith("3.")


def test_every_operation_documents_its_errors_and_the_rate_limit() -> None:
    spec = json.loads((ROOT / "app" / SPEC_FILE).read_text())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            # The chatbot and admin endpoints: rate limited, with bodies. Telegram and Slack call
            # from a few addresses of their own, so a limit per address would silence every chat.
            if method == "post" and not path.startswith(("/webhooks/telegram", "/webhooks/slack")):
                assert "429" in statuses, (method, path)
                assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
            assert any(status.startswith("2") for status in statuses), (method, path)
            # gunicorn answers these itself, before any route, to a request on any path
            assert {"414", "431"} <= statuses, (method, path)
