"""The channels (Rasa REST, Telegram, Slack) through an in-process app; the platforms' APIs are real
HTTP servers on 127.0.0.1 that record what they receive and answer as the real APIs document."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time

import pytest

from app import create_app
from app.actions import WebhookError
from app.channels import channel_session
from chatbot.classifier.ranker import Ranker
from chatbot.dialogue.decision import Dialogue
from tests.harness import wait_until
from tests.support import (
    ASK_NUMBER,
    BOT_USER,
    SLACK_SECRET,
    SLACK_TOKEN,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    PlatformApi,
    platform_config,
    post_telegram,
    rest,
    slack_body,
    slot_bot_app,
    telegram_update,
)

# ---- REST (Rasa-compatible) -------------------------------------------------------------------


def test_rest_channel_answers_in_rasas_shape_with_context_per_sender(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    assert client.get("/webhooks/rest/").get_json() == {"status": "ok"}
    assert rest(client, "alice", "where is my order", metadata={"page": "/shop"}) == [
        {"recipient_id": "alice", "text": ASK_NUMBER}
    ]
    assert (
        rest(client, "bob", "it is 12345")[0]["text"] != "Order 12345, noted."
    )  # bob has no pending question
    assert rest(client, "alice", "it is 12345") == [{"recipient_id": "alice", "text": "Order 12345, noted."}]


def test_rest_channel_turns_quick_replies_into_buttons(tiny_bundle) -> None:
    labels = ("Track it", "Talk to a person")
    intents = tuple(dataclasses.replace(intent, quick_replies=labels) for intent in tiny_bundle.intents)
    bundle = dataclasses.replace(tiny_bundle, intents=intents)
    dialogue = Dialogue(Ranker.from_bundle(bundle), 0.5, random.Random(0))
    client = create_app({"TESTING": True, "RATE_LIMIT": None}, dialogue=dialogue).test_client()
    (message,) = rest(client, "carol", "hello")
    assert message["buttons"] == [{"title": label, "payload": label} for label in labels]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": "hi"}, 400, "missing_field"),
        ({"sender": "a"}, 400, "missing_field"),
        ({"sender": "", "message": "hi"}, 422, "invalid_field"),
        ({"sender": ["a"], "message": "hi"}, 422, "invalid_field"),
        ({"sender": "a", "message": 5}, 422, "invalid_field"),
        ({"sender": "a", "message": "x" * 1001}, 422, "message_too_long"),
        ({"sender": "a", "message": "hi", "metadata": [1]}, 422, "invalid_field"),
    ],
)
def test_rest_channel_refuses_bad_input_with_json(tiny_bundle, body: dict, status: int, code: str) -> None:
    response = slot_bot_app(tiny_bundle).test_client().post("/webhooks/rest/webhook", json=body)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)


def test_rest_channel_off_answers_404(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle, REST_CHANNEL=False).test_client()
    response = client.post("/webhooks/rest/webhook", json={"sender": "a", "message": "hi"})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_a_senders_odd_id_still_makes_a_valid_session() -> None:
    assert channel_session("rest", "alice@example.com") == channel_session("rest", "alice@example.com")
    assert channel_session("rest", "alice@example.com").startswith("rest:h")
    assert channel_session("telegram", "-100123") == "telegram:-100123"


# ---- Telegram ---------------------------------------------------------------------------------


def test_telegram_answers_through_send_message_with_a_reply_keyboard(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        assert post_telegram(client, telegram_update(1, "where is my order")).get_json() == {
            "status": "answered"
        }
        assert post_telegram(client, telegram_update(2, "it is 12345")).status_code == 200
        wait_until(lambda: len(api.received) == 2, timeout=5)
    (path, first, _), (_, second, _) = sorted(api.received, key=lambda call: call[1]["text"] != ASK_NUMBER)
    assert path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert first == {"chat_id": 42, "text": ASK_NUMBER}
    assert second == {"chat_id": 42, "text": "Order 12345, noted."}  # the same session: chat 42
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'chatbot_channel_sends_total{channel="telegram",outcome="ok"} 2.0' in metrics


@pytest.mark.parametrize(
    ("update", "secret", "status"),
    [
        (telegram_update(1, "hi"), "wrong-secret-0123456789", 401),
        (telegram_update(1, "hi"), "", 401),
        ({"message": {"text": "hi"}}, TELEGRAM_SECRET, 422),
        ({"update_id": 1, "message": {"text": "hi", "chat": {"id": "x"}}}, TELEGRAM_SECRET, 422),
        (telegram_update(1, "x" * 5000), TELEGRAM_SECRET, 422),
    ],
)
def test_telegram_refuses_forged_or_malformed_updates(
    tiny_bundle, update: dict, secret: str, status: int
) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        response = post_telegram(client, update, secret)
    assert response.status_code == status and "error" in response.get_json()
    assert api.received == []


def test_telegram_oversized_and_non_json_bodies_are_refused(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
        huge = client.post("/webhooks/telegram", data=b"{" + b" " * 70_000 + b"}", headers=headers)
        broken = client.post("/webhooks/telegram", data=b"{not json", headers=headers)
    assert (huge.status_code, broken.status_code) == (413, 400)
    assert broken.get_json()["error"]["code"] == "invalid_json"


def test_telegram_duplicate_update_is_answered_once_and_non_text_ignored(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        assert post_telegram(client, telegram_update(7, "hello")).get_json() == {"status": "answered"}
        assert post_telegram(client, telegram_update(7, "hello")).get_json() == {"status": "duplicate"}
        sticker = {"update_id": 8, "message": {"chat": {"id": 42}, "sticker": {}}}
        assert post_telegram(client, sticker).get_json() == {"status": "ignored"}
        wait_until(lambda: len(api.received) == 1, timeout=5)
        time.sleep(0.3)
    assert len(api.received) == 1


def test_telegram_off_without_its_secrets(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    assert post_telegram(client, telegram_update(1, "hi")).status_code == 404


@pytest.mark.parametrize(
    ("mode", "outcome"), [("500", "http_error"), ("refuse", "api_error"), ("hang", "timeout")]
)
def test_a_failing_telegram_api_is_counted_and_the_message_still_logged(
    tiny_bundle, tmp_path, mode: str, outcome: str, monkeypatch, caplog
) -> None:
    monkeypatch.setattr("app.channels.SEND_TIMEOUT_MS", 300)
    monkeypatch.setattr("app.channels.RETRY_BACKOFF", (0.05, 0.05))
    database = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    with PlatformApi(mode) as api, caplog.at_level(logging.WARNING):
        app = slot_bot_app(
            tiny_bundle, CONVERSATION_LOG=True, DATABASE_URL=database, **platform_config(api.url)
        )
        client = app.test_client()
        started = time.monotonic()
        assert post_telegram(client, telegram_update(1, "hello there")).status_code == 200
        answered_in = time.monotonic() - started
        metric = f'chatbot_channel_sends_total{{channel="telegram",outcome="{outcome}"}} 1.0'
        wait_until(lambda: metric in client.get("/metrics").get_data(as_text=True), timeout=10)
        assert len(api.received) == (1 if mode == "refuse" else 3)  # refused: retrying won't help
        app.extensions["conversation_log"].close()
    assert answered_in < 0.25, answered_in  # the webhook never waits for the API
    from chatbot.learning.message_log import ConversationStore

    rows = ConversationStore(database).recent()
    assert [(row["text"], row["session_id"]) for row in rows] == [("hello there", "telegram:42")]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert TELEGRAM_TOKEN not in logged and "not delivered" in logged


# ---- Slack ------------------------------------------------------------------------------------


def slack_headers(body: bytes, timestamp: int | None = None, secret: str = SLACK_SECRET) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/json",
    }


def post_slack(client, payload: dict, **signing):
    body = json.dumps(payload).encode()
    headers = slack_headers(body, **signing)
    headers.update(signing.pop("extra", {}) if "extra" in signing else {})
    return client.post("/webhooks/slack/events", data=body, headers=headers)


def test_slack_verifies_urls_and_answers_by_post_message(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        challenge = post_slack(client, {"type": "url_verification", "challenge": "abc123"})
        assert challenge.get_json() == {"challenge": "abc123"}
        assert post_slack(client, slack_body("Ev1", "where is my order")).get_json() == {"status": "answered"}
        wait_until(lambda: len(api.received) == 1, timeout=5)
    ((path, body, headers),) = api.received
    assert path == "/chat.postMessage" and headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert body == {"channel": "C1", "text": ASK_NUMBER}


@pytest.mark.parametrize(
    ("secret", "age_seconds"),
    [
        ("another-signing-secret-0123", 0),  # forged
        (SLACK_SECRET, 301),  # stale: a replay
        (SLACK_SECRET, -400),  # from the future
    ],
)
def test_slack_refuses_forged_or_stale_signatures(tiny_bundle, secret: str, age_seconds: int) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        signing = {"secret": secret, "timestamp": int(time.time()) - age_seconds}  # now, not at collection
        response = post_slack(client, slack_body("Ev1", "hello"), **signing)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert api.received == []


def test_slack_ignores_its_own_messages_and_answers_a_retried_event_once(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        assert post_slack(client, slack_body("Ev1", "hello")).get_json() == {"status": "answered"}
        body = json.dumps(slack_body("Ev1", "hello")).encode()
        retry = client.post(
            "/webhooks/slack/events", data=body, headers={**slack_headers(body), "X-Slack-Retry-Num": "1"}
        )
        assert retry.get_json() == {"status": "duplicate"}
        assert post_slack(client, slack_body("Ev2", "Hello!", user=BOT_USER)).get_json() == {
            "status": "ignored"
        }
        assert post_slack(client, slack_body("Ev3", "Hi", bot_id="B1")).get_json() == {"status": "ignored"}
        edited = slack_body("Ev4", "hello", subtype="message_changed")
        assert post_slack(client, edited).get_json() == {"status": "ignored"}
        bad = slack_body("Ev5", "hello")
        del bad["event"]["channel"]
        assert post_slack(client, bad).status_code == 422
        wait_until(lambda: len(api.received) == 1, timeout=5)
        time.sleep(0.3)
    assert len(api.received) == 1


def test_slack_off_without_its_secrets(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    assert post_slack(client, slack_body("Ev1", "hello")).status_code == 404


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHATBOT_TELEGRAM_SECRET", "short"),
        ("CHATBOT_TELEGRAM_SECRET", "has spaces in it 0123456789"),
        ("CHATBOT_TELEGRAM_TOKEN", "tiny"),
        ("CHATBOT_SLACK_SIGNING_SECRET", "with space 0123"),
        ("CHATBOT_SLACK_API_URL", "ftp://slack.example"),
        ("CHATBOT_REST_CHANNEL", "maybe"),
    ],
)
def test_bad_channel_settings_stop_the_start_without_showing_secrets(name: str, value: str) -> None:
    from app.config import app_settings

    with pytest.raises(ValueError, match=name) as caught:
        app_settings({name: value})
    if "SECRET" in name or "TOKEN" in name:
        assert value not in str(caught.value)


def test_the_breakers_log_line_never_shows_the_telegram_token(tiny_bundle, caplog) -> None:
    from app.actions import BreakersByUrl

    slot_bot_app(tiny_bundle, **platform_config("http://127.0.0.1:9"))  # registers the secrets to hide
    breaker = BreakersByUrl(failures=1)
    with caplog.at_level(logging.WARNING, logger="app.actions"):
        breaker.record(
            f"http://127.0.0.1:9/bot{TELEGRAM_TOKEN}/sendMessage", WebhookError("unreachable", "refused")
        )
    (record,) = caplog.records
    assert TELEGRAM_TOKEN not in record.getMessage() and "<hidden>" in record.getMessage()
