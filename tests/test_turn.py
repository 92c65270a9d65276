"""Conversations with slots, webhook actions and handoff, through the API of an in-process app.

Webhooks are real HTTP servers on 127.0.0.1 (tests/support.py WebhookServer).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time

import pytest

from app import create_app
from chatbot.classifier.ranker import Ranker
from chatbot.data.actions import SIGNATURE_HEADER, verify
from chatbot.data.entities import EntityDefinition
from chatbot.dialogue.decision import Dialogue
from tests.harness import free_port
from tests.support import ASK_NUMBER, WebhookServer, with_slots

SECRET = "webhook-secret-0123456789"
ADMIN = "admin-token-0123456789abcdef"
TIMEOUT_MS = 600


def make_client(tiny_bundle, action_url: str | None = None, **config):
    dialogue = Dialogue(
        Ranker.from_bundle(with_slots(tiny_bundle, action_url, TIMEOUT_MS)), 0.5, random.Random(0)
    )
    settings = {"TESTING": True, "RATE_LIMIT": None, "ACTION_SECRET": SECRET, "ADMIN_TOKEN": ADMIN}
    return create_app(settings | config, dialogue=dialogue).test_client()


def chat(client, message: str, session: str = "s1") -> dict:
    response = client.post("/api/v1/chat", json={"session_id": session, "message": message})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_missing_slot_is_asked_for_then_filled_and_remembered(tiny_bundle) -> None:
    client = make_client(tiny_bundle)
    asked = chat(client, "where is my order")
    assert (asked["response"], asked["intent"]["name"], asked["slots"]) == (ASK_NUMBER, "order", {})
    given = chat(client, "it is ACM-20931")
    assert given["response"] == "Order ACM-20931, noted."
    assert given["entities"] == [
        {"entity": "order_number", "value": "ACM-20931", "start": 6, "end": 15, "extractor": "regex"}
    ]
    again = chat(client, "where is my order")  # a filled slot is not asked again
    assert again["response"] == "Order ACM-20931 is on its way."
    assert chat(client, "where is my order", session="other")["response"] == ASK_NUMBER


def test_a_value_given_up_front_skips_the_question(tiny_bundle) -> None:
    reply = chat(make_client(tiny_bundle), "where is my order 12345")
    assert reply["response"] == "Order 12345 is on its way."


def test_a_bare_answer_continues_the_waiting_intent(tiny_bundle) -> None:
    client = make_client(tiny_bundle)
    chat(client, "where is my order")
    reply = chat(client, "ACM-20931")  # no known word: the classifier alone would fall back
    assert (reply["intent"]["name"], reply["fallback"]) == ("order", False)
    assert reply["response"] == "Order ACM-20931 is on its way."


@pytest.mark.parametrize("value", ["{__class__}", "{0.__globals__}", "<script>"])
def test_slot_values_come_out_as_text(tiny_bundle, value: str) -> None:
    bundle = with_slots(tiny_bundle)
    braces = EntityDefinition("order_number", regex=r"\{[\w.]+\}|<\w+>")  # lets the user type them
    bundle = dataclasses.replace(bundle, domain=dataclasses.replace(bundle.domain, entities=(braces,)))
    app = create_app(
        {"TESTING": True, "RATE_LIMIT": None}, dialogue=Dialogue(Ranker.from_bundle(bundle), 0.5)
    )
    reply = chat(app.test_client(), f"where is my order {value}")
    assert reply["response"] == f"Order {value} is on its way."


def test_the_webhook_is_called_signed_and_its_answer_shown(tiny_bundle) -> None:
    with WebhookServer("ok") as webhook:
        client = make_client(tiny_bundle, webhook.url)
        assert chat(client, "where is my order")["response"] == ASK_NUMBER
        assert webhook.received == []  # not called while a required slot is missing
        reply = chat(client, "the number is ACM-20931")
    assert reply["response"] == "Order ACM-20931 ships today."
    assert reply["quick_replies"] == ["Thanks"]
    ((event, headers),) = webhook.received
    assert event["slots"] == {"order_number": "ACM-20931"} and event["session_id"] == "s1"
    assert event["intent"] == "order_number" and event["entities"][0]["value"] == "ACM-20931"
    assert verify(json.dumps(event).encode(), SECRET, headers[SIGNATURE_HEADER])
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'chatbot_action_calls_total{intent="order_number",outcome="ok"} 1.0' in metrics


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [("hang", "timeout"), ("500", "http_error"), ("invalid", "invalid_reply"), ("huge", "too_large")],
)
def test_a_failing_webhook_gives_the_fallback_text_within_the_timeout(
    tiny_bundle, mode: str, outcome: str
) -> None:
    with WebhookServer(mode) as webhook:
        client = make_client(tiny_bundle, webhook.url)
        started = time.monotonic()
        reply = chat(client, "where is my order 12345")
        elapsed = time.monotonic() - started
    assert reply["response"] == "No lookup for 12345 now."
    assert elapsed < TIMEOUT_MS / 1000 + 0.5, elapsed
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'chatbot_action_calls_total{{intent="order",outcome="{outcome}"}} 1.0' in metrics


def test_an_unreachable_webhook_gives_the_fallback_text(tiny_bundle) -> None:
    client = make_client(tiny_bundle, f"http://127.0.0.1:{free_port()}/hook")
    assert chat(client, "where is my order 12345")["response"] == "No lookup for 12345 now."
    assert 'outcome="unreachable"} 1.0' in client.get("/metrics").get_data(as_text=True)


def test_handoff_silences_the_bot_until_an_operator_releases_it(tiny_bundle) -> None:
    with WebhookServer("ok") as operator:
        client = make_client(tiny_bundle, HANDOFF_URL=operator.url)
        chat(client, "hello")
        handed = chat(client, "bye")
        assert (handed["response"], handed["handoff"]) == ("A person will answer here.", True)
        silent = chat(client, "hello?")
        assert (silent["response"], silent["handoff"], silent["intent"]) == ("", True, None)
        assert chat(client, "hello", session="other")["handoff"] is False
    events = [event for event, _ in operator.received]
    assert [event["event"] for event in events] == ["handoff", "message"]
    assert [turn["message"] for turn in events[0]["transcript"]] == ["hello", "bye"]
    assert events[1]["transcript"][-1]["message"] == "hello?"

    release = "/admin/sessions/s1/release"
    assert client.post(release).status_code == 401
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert client.post(release, headers=auth).get_json() == {"session_id": "s1", "status": "released"}
    assert client.post(release, headers=auth).status_code == 409  # no person has it any more
    assert client.post("/admin/sessions/bad id/release", headers=auth).status_code == 422
    back = chat(client, "hello")
    assert back["handoff"] is False and back["response"] in ("Hello!", "Hi there.")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'chatbot_handoffs_total{event="started"} 1.0' in metrics
    assert 'chatbot_handoffs_total{event="released"} 1.0' in metrics


def test_stateless_endpoints_render_templates_and_ask_without_calling_webhooks(tiny_bundle) -> None:
    with WebhookServer("ok") as webhook:
        client = make_client(tiny_bundle, webhook.url)
        assert (
            client.post("/predict", json={"data": "where is my order"}).get_data(as_text=True) == ASK_NUMBER
        )
        parsed = client.post("/api/v1/parse", json={"text": "where is my order 12345"}).get_json()
        batch = client.post("/api/v1/parse", json={"texts": ["where is my order", "order 55512"]}).get_json()
    assert parsed["response"] == "Order 12345 is on its way."  # the intent's own response, rendered
    assert parsed["entities"] == [
        {"entity": "order_number", "value": "12345", "start": 18, "end": 23, "extractor": "regex"}
    ]
    assert batch["results"][0]["response"] == ASK_NUMBER
    assert batch["results"][1]["entities"][0]["value"] == "55512"
    assert webhook.received == []


def test_reload_refuses_a_model_calling_urls_outside_the_allowlist(tiny_bundle, tmp_path) -> None:
    model = with_slots(tiny_bundle, "http://127.0.0.1:9/elsewhere").save(tmp_path / "model.h5")
    client = make_client(tiny_bundle, MODEL_PATH=str(model), ACTION_ALLOWLIST=("http://127.0.0.1:8081/",))
    response = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 422
    message = response.get_json()["error"]["message"]
    assert "intent 'order': action url 'http://127.0.0.1:9/elsewhere' is not in the allowlist" in message
    assert str(tmp_path) not in message  # the server's directories stay private


def test_a_parse_batch_takes_the_same_turns_as_single_messages(tiny_bundle) -> None:
    client = make_client(tiny_bundle)
    texts = ["where is my order", "where is my order 12345", "hello there"]
    batch = client.post("/api/v1/parse", json={"texts": texts}).get_json()["results"]
    singles = [client.post("/api/v1/parse", json={"text": text}).get_json() for text in texts]
    random_answer = "response"  # greeting has several answers, picked at random
    assert [{**result, random_answer: None} for result in batch] == [
        {**result, random_answer: None} for result in singles
    ]
    assert batch[0]["response"] == ASK_NUMBER and batch[1]["response"] == "Order 12345 is on its way."
    # parse's chosen_intent is what chat calls intent; parse's intent is the classifier's top label.
    assert batch[0]["chosen_intent"] == chat(client, texts[0], session="parse")["intent"]
    assert [result["intent"] for result in batch] == [result["ranking"][0] for result in batch]
