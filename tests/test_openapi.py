"""The OpenAPI description at /openapi.json describes every route, and only routes that exist."""

from __future__ import annotations

import json
import re

import pytest

from app.openapi import (
    INBOX_PAGE,
    MAX_BATCH,
    MAX_REVIEW_DAYS,
    MAX_SENDER_CHARS,
    OPERATOR_NAME,
    SPEC_FILE,
)
from chatbot.data.edit import MAX_PHRASE_CHARS, MAX_RESPONSE_CHARS
from chatbot.dialogue.turn import RANKING_SIZE
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


def test_the_description_is_served_with_this_servers_limits(app, client) -> None:
    app.config["MAX_MESSAGE_CHARS"] = 50
    response = client.get("/openapi.json")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    served, written = response.get_json(), json.loads((ROOT / "app" / SPEC_FILE).read_text())
    schemas = served["components"]["schemas"]
    assert (
        schemas["Message"]["maxLength"] == 50 and "at most 50 characters" in schemas["Message"]["description"]
    )
    assert (
        schemas["Texts"]["maxItems"]
        == schemas["ParseBatch"]["properties"]["results"]["maxItems"]
        == MAX_BATCH
    )
    assert schemas["SessionId"]["pattern"] == "^[A-Za-z0-9._:-]{1,128}$"
    # The fixed limits come from the constants the code checks with ...
    assert schemas["RasaMessage"]["properties"]["sender"]["maxLength"] == MAX_SENDER_CHARS
    assert schemas["OperatorAction"]["properties"]["operator"]["pattern"] == f"^{OPERATOR_NAME}$"
    assert schemas["ReviewDecision"]["properties"]["phrase"]["maxLength"] == MAX_PHRASE_CHARS
    assert schemas["ReviewDecision"]["properties"]["response"]["maxLength"] == MAX_RESPONSE_CHARS
    assert schemas["ReviewInbox"]["properties"]["groups"]["maxItems"] == INBOX_PAGE
    assert schemas["ParseResult"]["properties"]["ranking"]["maxItems"] == RANKING_SIZE
    days = served["paths"]["/admin/review/inbox"]["get"]["parameters"][0]
    assert (days["name"], days["schema"]["maximum"]) == ("days", MAX_REVIEW_DAYS)
    # ... and the file says the same; only the configured message length may differ from it.
    for name in ("Message", "Texts", "ParseBatch"):
        written["components"]["schemas"][name] = schemas[name]
    assert served == written and served["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "x" * 51}, 422, "message_too_long"),  # the served limit is the checked one
        ({"text": " \t"}, 422, "empty_message"),
        ({"text": 5}, 422, "invalid_field"),
        ({"texts": ["a"] * (MAX_BATCH + 1)}, 422, "invalid_field"),
        ({"texts": ["a", ""]}, 422, "empty_message"),
    ],
)
def test_requests_are_checked_against_the_served_schemas(
    app, client, body: dict, status: int, code: str
) -> None:
    app.config["MAX_MESSAGE_CHARS"] = 50
    response = client.post("/api/v1/parse", json=body)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    chat = client.post("/api/v1/chat", json={"message": "hi", "session_id": "s" * 129})
    assert (chat.status_code, chat.get_json()["error"]["code"]) == (422, "invalid_field")


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
